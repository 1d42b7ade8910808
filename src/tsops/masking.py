"""Credentials never shown: passwords in URLs are masked before they reach output, logs or error messages,
and database errors become one line that names the database (with its password masked) and the fix.

* :func:`mask_url` renders one URL with its password as ``***`` (SQLAlchemy's
  ``make_url(...).render_as_string(hide_password=True)``; other URLs by pattern).
* :func:`mask_secrets` masks every ``scheme://user:password@`` and ``password=...`` in free text: the CLI runs
  every message, log record and ``-v`` traceback through it.
* :func:`label_errors` tags the exceptions of one SQLAlchemy engine with what the database is (``catalog``),
  its masked URL and the fix; :func:`db_error_line` turns a tagged (or untagged) SQLAlchemy error into the
  one line the CLI prints, e.g. ``catalog: cannot connect to postgresql+psycopg://user:***@host/db: password
  authentication failed for user "user" - check catalog.url in tsops.yaml``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"<>]*:)(?P<pw>[^@\s'\"<>/]+)(?=@)")
_PARAM_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd)\s*[=:]\s*['\"]?)"
                             r"(?P<pw>[^\s&;,'\"}]+)", re.IGNORECASE)


def mask_secrets(text: Any) -> str:
    """``text`` with the password of every URL and every ``password=...`` replaced by ``***``."""
    s = str(text)
    s = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, s)
    return _PARAM_PASSWORD.sub(lambda m: m.group("head") + MASK, s)


def mask_url(url: Any) -> str:
    """One URL (a string or a SQLAlchemy URL) with its password masked."""
    if isinstance(url, str) and url.lower().startswith(("http://", "https://", "file:")):
        return mask_secrets(url)
    try:
        rendered = sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL (http://, kafka, a path): mask by pattern
        return mask_secrets(url)
    return mask_secrets(rendered)  # query-string passwords too


@dataclass(frozen=True)
class DbLabel:
    """What a failing engine is: ``what`` (catalog, source ...), its masked URL and the fix to suggest."""

    what: str
    url: str
    hint: str
    connecting: bool = False


def label_errors(engine: sa.engine.Engine, what: str, hint: str) -> None:
    """Tag every error ``engine`` raises with a :class:`DbLabel` (attribute ``tsops_db``) for the CLI."""
    url = mask_url(engine.url)

    @sa.event.listens_for(engine, "handle_error")
    def _label(ctx) -> None:  # read-only: the exception itself is not replaced
        exc = ctx.sqlalchemy_exception if ctx.sqlalchemy_exception is not None else ctx.original_exception
        if exc is not None and getattr(exc, "tsops_db", None) is None:
            with contextlib.suppress(AttributeError):  # a type that takes no attributes stays unlabelled
                exc.tsops_db = DbLabel(what, url, hint, connecting=ctx.connection is None)


def _reason(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    text = str(orig).strip() or type(orig).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("(Background on")]
    reason = " ".join(lines[:1] + [ln for ln in lines[1:2] if ln.startswith(("DETAIL", "HINT"))])
    reason = re.sub(r"^connection failed: connection to server at [^:]+ failed: ", "", reason)
    reason = re.sub(r"\bFATAL:\s+", "", reason)
    return mask_secrets(" ".join(reason.split()))


def find_db_error(err: BaseException | None) -> BaseException | None:
    """The database error behind ``err``: itself, or the first one in its ``raise ... from`` chain."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, sa.exc.SQLAlchemyError) or getattr(err, "tsops_db", None) is not None:
            return err
        seen.add(id(err))
        err = err.__cause__
    return None


def is_db_error(err: BaseException) -> bool:
    return find_db_error(err) is not None


def db_error_line(err: BaseException) -> str:
    """One line for a database error: which database, what failed, and the fix (password masked)."""
    err = find_db_error(err) or err
    label: DbLabel | None = getattr(err, "tsops_db", None)
    reason = _reason(err)
    if label is None:
        return f"database error: {reason}"
    if label.connecting or isinstance(err, sa.exc.OperationalError) and "connect" in reason.lower():
        return f"{label.what}: cannot connect to {label.url}: {reason} - {label.hint}"
    return f"{label.what} ({label.url}): {reason} - {label.hint}"


__all__ = ["MASK", "DbLabel", "db_error_line", "find_db_error", "is_db_error", "label_errors", "mask_secrets", "mask_url"]
