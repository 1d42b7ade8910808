"""Who may read the data, and how much a request may send: one guard in front of every route.

:class:`TokenGuard` is a plain ASGI middleware that runs before any route reads a byte of the request body:

* **Token.** With a token configured, every path but ``/health`` and the login page needs it, the dashboard
  included: ``Authorization: Bearer <token>`` (API clients), or the session cookie set by the login page
  (browsers). Both are compared in constant time (:func:`hmac.compare_digest`). Without them an API client gets
  401 with a reason; a browser asking for an HTML page is sent to ``/login`` (303). No data either way.
* **Login.** ``GET /login`` is a small form; ``POST /login`` with the right token sets an ``HttpOnly``,
  ``SameSite=Strict`` cookie (``Secure`` over HTTPS) holding an HMAC of the token, never the token itself, and
  redirects to the page asked for. ``POST /logout`` clears it. Changing the token ends every session.
* **Body size.** A request whose ``Content-Length`` exceeds ``max_body`` gets 413 before its body is read; a
  chunked body is counted as it streams and stopped with 413 at the limit. Auth comes first: an
  unauthenticated 200 MB upload is answered 401 without reading it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "tsops_session"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
OPEN_PATHS = frozenset({"/health", LOGIN_PATH, LOGOUT_PATH})
DEFAULT_MAX_BODY = 10 * 1024 * 1024
LOGIN_MAX_BODY = 16 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str | int) -> int:
    """``"10MB"``, ``"512k"``, ``"1GiB"``, ``"1048576"`` -> bytes (K/M/G are powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        n = text
    else:
        m = _SIZE.match(str(text))
        if not m:
            raise ValueError(f"{text!r} is not a size such as 10MB, 512KB or 1048576")
        n = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "")[:1].lower()])
    if n <= 0:
        raise ValueError(f"a body size limit must be more than 0 bytes (got {text!r})")
    return n


def session_value(token: str) -> str:
    """The cookie value for ``token``: an HMAC of it (the cookie never holds the token)."""
    return hmac.new(token.encode(), b"tsops dashboard session v1", hashlib.sha256).hexdigest()


class BodyTooLarge(HTTPException):
    """A request body over the limit (FastAPI re-raises HTTPExceptions from body parsing: the answer is 413)."""

    def __init__(self, limit: int, size: int | None = None):
        got = f"of {size:,} bytes " if size is not None else ""
        super().__init__(413, f"request body {got}is larger than the limit of {limit:,} bytes "
                              "(raise it with `tsops serve --max-body`)")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def _safe_next(target: str | None, default: str) -> str:
    """Only a local path may be a redirect target (no ``//host``, ``scheme:`` or backslash), ASCII-quoted."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return quote(target, safe="/?&=%:;,+@-._~!$'()*")


async def _send_bytes(send: Send, status: int, body: bytes, content_type: str,
                      headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    await _send_bytes(send, status, json.dumps({"detail": detail}).encode(), "application/json", headers)


def login_page(message: str = "", next_path: str = "/dashboard/", status: int = 200,
               action: str = LOGIN_PATH) -> tuple[int, bytes]:
    """The login form (no data of the project on it)."""
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>log in · tsops</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><style>'
        "body{font-family:system-ui,sans-serif;background:#f6f7f9;color:#1d2430;display:flex;"
        "justify-content:center;margin-top:12vh}form{background:#fff;padding:2em 2.2em;border-radius:8px;"
        "box-shadow:0 1px 4px #0002;min-width:18em}h1{font-size:1.3em;margin:0 0 1em}label{display:block;"
        "margin-bottom:.3em}input[type=password]{width:100%;padding:.45em;box-sizing:border-box;margin-bottom:1em}"
        "button{padding:.45em 1.2em}.error{color:#b3261e}</style></head><body>"
        f'<form method="post" action="{html.escape(action)}"><h1>tsops</h1>{note}'
        '<label for="token">API token</label>'
        '<input type="password" id="token" name="token" autocomplete="current-password" autofocus required>'
        f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
        '<button type="submit">Log in</button></form></body></html>'
    )
    return status, doc.encode()


class TokenGuard:
    """ASGI middleware: token (bearer or session cookie) on every path but ``/health``; body size limit."""

    def __init__(self, app: ASGIApp, token: str | None = None, max_body: int | None = DEFAULT_MAX_BODY):
        if token is not None and not token.strip():
            raise ValueError("the API token is empty: give a real token or none")
        self.app = app
        self.token = token
        self.max_body = max_body
        self._session = session_value(token) if token else None

    # ------------------------------------------------------------------ checks
    def authorized(self, scope: Scope) -> str | None:
        """None when the request carries the token, else the reason it is refused."""
        if self.token is None:
            return None
        auth = _header(scope, b"authorization")
        if auth:
            scheme, _, cred = auth.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(cred.strip().encode(), self.token.encode()):
                return None
            return "invalid bearer token"
        cookie = _cookie(scope, COOKIE)
        if cookie is not None:
            if hmac.compare_digest(cookie.encode(), self._session.encode()):
                return None
            return "invalid or expired session: log in again at /login"
        return f"missing bearer token: send 'Authorization: Bearer <token>' (or log in at {LOGIN_PATH})"

    def _path(self, scope: Scope) -> str:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        return path[len(root):] if root and path.startswith(root) else path

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.token is not None and self.authorized(scope):
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = self._path(scope)
        if self.token is not None and path in (LOGIN_PATH, LOGOUT_PATH):
            await self._login(scope, receive, send, path)
            return
        if path not in OPEN_PATHS:
            reason = self.authorized(scope)
            if reason is not None:  # answered before a byte of the body is read
                await self._deny(scope, send, path, reason)
                return
        if self.max_body is None:
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _send_json(send, 400, f"Content-Length {length!r} is not a number of bytes")
                return
            if int(length) > self.max_body:
                await _send_json(send, 413, BodyTooLarge(self.max_body, int(length)).detail)
                return
        await self._capped(scope, receive, send)

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a receive that stops a (chunked) body at the limit."""
        total, started = 0, False

        async def capped_receive() -> Message:
            nonlocal total
            msg = await receive()
            if msg["type"] == "http.request":
                total += len(msg.get("body", b""))
                if total > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge as err:  # read outside FastAPI's handlers (e.g. by another middleware)
            if started:
                raise
            await _send_json(send, 413, err.detail)

    async def _deny(self, scope: Scope, send: Send, path: str, reason: str) -> None:
        accept = (_header(scope, b"accept") or "").lower()
        if scope.get("method") in ("GET", "HEAD") and "text/html" in accept:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope.get("root_path", "") + path + (f"?{query}" if query else "")
            location = f"{scope.get('root_path', '')}{LOGIN_PATH}?next={quote(target, safe='')}"
            await _send_bytes(send, 303, b"", "text/plain", [(b"location", location.encode("latin-1"))])
            return
        await _send_json(send, 401, reason, [(b"www-authenticate", b"Bearer")])

    async def _login(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        root = scope.get("root_path", "")
        home = f"{root}/dashboard/"
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        if path == LOGOUT_PATH:
            if scope.get("method") != "POST":
                await _send_json(send, 405, "log out with POST /logout", [(b"allow", b"POST")])
                return
            cookie = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
            await _send_bytes(send, 303, b"", "text/plain",
                              [(b"location", f"{root}{LOGIN_PATH}".encode()), (b"set-cookie", cookie.encode())])
            return
        if scope.get("method") in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            status, body = login_page(next_path=_safe_next((query.get("next") or [None])[0], home),
                                      action=root + LOGIN_PATH)
            await _send_bytes(send, status, body, "text/html; charset=utf-8")
            return
        if scope.get("method") != "POST":
            await _send_json(send, 405, "GET the login form or POST the token", [(b"allow", b"GET, POST")])
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > LOGIN_MAX_BODY):
            await _send_json(send, 413, f"a login form is at most {LOGIN_MAX_BODY:,} bytes")
            return
        body = b""
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client went away
            body += msg.get("body", b"")
            if len(body) > LOGIN_MAX_BODY:
                await _send_json(send, 413, f"a login form is at most {LOGIN_MAX_BODY:,} bytes")
                return
            if not msg.get("more_body"):
                break
        form = parse_qs(body.decode("utf-8", "replace"))
        given = (form.get("token") or [""])[0]
        next_path = _safe_next((form.get("next") or [None])[0], home)
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            status, page = login_page("wrong token", next_path, status=401, action=root + LOGIN_PATH)
            await _send_bytes(send, status, page, "text/html; charset=utf-8")
            return
        cookie = f"{COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Strict{secure}"
        await _send_bytes(send, 303, b"", "text/plain",
                          [(b"location", next_path.encode("latin-1")), (b"set-cookie", cookie.encode())])


__all__ = ["COOKIE", "DEFAULT_MAX_BODY", "LOGIN_PATH", "LOGOUT_PATH", "OPEN_PATHS", "BodyTooLarge", "TokenGuard",
           "login_page", "parse_size", "session_value"]
