"""One place for how tsops draws text: a Hangul-capable font that ships with the install, for matplotlib
figures, self-contained HTML (the report) and the dashboard's CSS/SVG.

Series ids are often Korean (``광주 A|C02``, ``서울 1층|TEMP``). A fresh machine has no CJK system font, so
matplotlib and browsers would draw boxes. The font comes from the PyPI package ``koreanize-matplotlib``
(NanumGothic, SIL Open Font License 1.1), a dependency of tsops. Only its bundled TTF files are used: the
package itself is never imported (its import changes matplotlib's global font settings as a side effect and
imports ``distutils``).

- :func:`setup_matplotlib` registers NanumGothic with matplotlib (``fontManager.addfont``) and makes it the
  first font family, with DejaVu Sans as per-glyph fallback (e.g. for U+2212 MINUS, which Nanum lacks).
  Every tsops module drawing with matplotlib calls it before plotting.
- :func:`font_face_css` gives an ``@font-face`` rule for a page: a ``url(...)`` (the dashboard serves
  :func:`web_font`) or, for a self-contained file, the font subset to the characters used, inlined as a
  data URI. Browsers refuse the TTF as shipped ("OTS parsing error: TSI3: zero-length table": it carries
  empty VTT hinting-source tables), so what a browser gets is always rewritten without them.
- :func:`format_duration` writes a number of seconds the way a person reads it (``10 min``, ``597.1 s``).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
from functools import cache
from pathlib import Path

#: Family name of the bundled Hangul font (what CSS and matplotlib call it).
HANGUL_FONT = "NanumGothic"
#: CSS font stack naming the bundled font first; generic fallbacks after it.
CSS_FONT_STACK = f"'{HANGUL_FONT}',system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif"
_FONT_PACKAGE = "koreanize_matplotlib"
_FONT_FILE = "NanumGothic.ttf"


class FontMissingError(RuntimeError):
    """The Hangul font package is not installed (tsops' own install brings it)."""


@cache
def hangul_font_path() -> Path:
    """Path of the bundled NanumGothic TTF, found without importing its package."""
    spec = importlib.util.find_spec(_FONT_PACKAGE)
    dirs = list(spec.submodule_search_locations or []) if spec is not None else []
    for d in dirs:
        p = Path(d) / "fonts" / _FONT_FILE
        if p.is_file():
            return p
    raise FontMissingError(
        f"the Hangul font {_FONT_FILE} (package koreanize-matplotlib) is not installed: "
        "run `pip install koreanize-matplotlib==0.1.1` (tsops' own install brings it)")


@cache
def setup_matplotlib() -> str:
    """Agg backend, NanumGothic registered and first in ``font.family`` (DejaVu Sans as glyph fallback).

    Idempotent; returns the path of the registered font file. matplotlib is imported here, not at module
    top: the dashboard uses this module for the font alone and never draws with matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager, rcParams

    path = str(hangul_font_path())
    if not any(f.fname == path for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(path)
    rcParams["font.family"] = [HANGUL_FONT, "DejaVu Sans"]
    return path


_VTT_TABLES = ["TSI0", "TSI1", "TSI2", "TSI3", "TSI5"]  # VTT hinting sources: browsers reject them empty


@cache
def web_font() -> bytes:
    """The whole Hangul font as WOFF (zlib) for browsers, without the tables their sanitizer rejects
    (~2.4 MB; built once per process in about a second)."""
    from fontTools.ttLib import TTFont

    buf = io.BytesIO()
    with TTFont(str(hangul_font_path()), lazy=True) as font:
        for tag in _VTT_TABLES:
            if tag in font:
                del font[tag]
        font.flavor = "woff"
        font.save(buf, reorderTables=False)
    return buf.getvalue()


def font_face_css(url: str | None = None, text: str | None = None) -> str:
    """An ``@font-face`` rule for the Hangul font: ``src: url(url)`` of :func:`web_font`, or (``url`` None)
    the font subset to the characters of ``text`` and inlined, so a standalone HTML file renders Hangul on
    any machine."""
    if url is not None:
        src = f"url('{url}') format('woff')"
    else:
        data = _subset_font(frozenset(text or ""))
        src = f"url(data:font/ttf;base64,{base64.b64encode(data).decode()}) format('truetype')"
    return f"@font-face{{font-family:'{HANGUL_FONT}';src:{src};font-display:block}}"


@cache
def _subset_font(chars: frozenset[str]) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = ["*"]
    options.drop_tables += _VTT_TABLES
    buf = io.BytesIO()
    with TTFont(str(hangul_font_path()), lazy=False) as font:
        sub = subset.Subsetter(options)
        # printable ASCII always, so digits and Latin ids share the same face as their Hangul neighbours
        sub.populate(unicodes=sorted({ord(c) for c in chars} | set(range(0x20, 0x7F))))
        sub.subset(font)
        font.save(buf)
    return buf.getvalue()


def format_duration(seconds: float | None) -> str:
    """``600`` -> ``10 min``, ``597.1`` -> ``597.1 s``, ``3600`` -> ``1 h``, ``0.25`` -> ``250 ms``;
    ``None``/0/NaN -> ``–``. Whole multiples of a day, hour or minute use that unit; other values keep
    four significant digits in seconds (or the largest unit from an hour up)."""
    if seconds is None or not math.isfinite(float(seconds)) or float(seconds) <= 0:
        return "–"
    s = float(seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= size and abs(s / size - round(s / size)) < 1e-6:
            return f"{round(s / size)} {unit}"
    if s < 1:
        return f"{s * 1000:.4g} ms"
    if s >= 86400:
        return f"{s / 86400:.3g} d"
    if s >= 3600:
        return f"{s / 3600:.3g} h"
    return f"{s:.4g} s"
