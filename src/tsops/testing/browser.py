"""Headless Chromium for tests, on a font configuration that has no CJK font.

A test that checks Hangul rendering must not pass because the machine happens to have a CJK system font.
:func:`isolated_fontconfig` writes a fontconfig file whose only font directory is matplotlib's bundled
DejaVu fonts (no Hangul); Chromium started by :func:`screenshot` with ``FONTCONFIG_FILE`` pointing at it
sees no system font at all, so Hangul can only come from the page's own ``@font-face``. Nothing is installed.

:func:`ink_difference` compares two screenshots pixel by pixel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("TSOPS_CHROMIUM", "/usr/bin/chromium")


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None


def isolated_fontconfig(tmp: Path) -> Path:
    """A fontconfig file listing only matplotlib's DejaVu fonts (Latin, Greek, Cyrillic; no Hangul)."""
    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        f"  <dir>{fonts}</dir>\n  <cachedir>{tmp / 'fc-cache'}</cachedir>\n"
        "  <config></config>\n</fontconfig>\n", encoding="utf-8")
    return conf


def fontconfig_env(conf: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FONTCONFIG_FILE"] = str(conf)
    env.pop("FONTCONFIG_PATH", None)
    return env


def hangul_system_fonts(conf: Path) -> list[str]:
    """Fonts covering Korean that fontconfig lists under ``conf`` (must be empty); None-safe without fc-list."""
    if shutil.which("fc-list") is None:
        return []
    r = subprocess.run(["fc-list", ":lang=ko", "file"], capture_output=True, text=True, env=fontconfig_env(conf),
                       timeout=60)
    return [line for line in r.stdout.splitlines() if line.strip()]


def screenshot(url: str, out: Path, conf: Path, profile: Path, size: tuple[int, int] = (1100, 900)) -> Path:
    """A PNG screenshot of ``url`` by headless Chromium under fontconfig file ``conf`` (fresh profile dir:
    no cached fonts between renderings)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--force-device-scale-factor=1", "--run-all-compositor-stages-before-draw",
           "--virtual-time-budget=5000", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
           f"--screenshot={out}", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=fontconfig_env(conf))
    if r.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed ({r.returncode}): {r.stderr[-2000:]}")
    return out


def load_gray(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.int16)


def ink_difference(a: Path, b: Path, threshold: int = 40) -> int:
    """Pixels whose gray level differs by more than ``threshold`` between two same-sized screenshots."""
    x, y = load_gray(a), load_gray(b)
    if x.shape != y.shape:
        raise ValueError(f"screenshots differ in size: {x.shape} vs {y.shape}")
    return int((np.abs(x - y) > threshold).sum())
