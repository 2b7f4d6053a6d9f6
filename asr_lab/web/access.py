"""Who may drive the server: Host and Origin allow-lists, an optional token, JSON bodies of bounded size.

A server on loopback is still reachable from every web page the user opens: a page from
another origin can POST to ``http://127.0.0.1:8000/load_model`` (a ``text/plain`` body
needs no CORS preflight) and open a WebSocket to it (WebSockets have no same-origin rule),
and DNS rebinding makes a foreign name resolve to 127.0.0.1. So every HTTP request and
WebSocket handshake passes :class:`AccessGuard` first:

* **Host** must be a loopback name (``localhost``, ``127.0.0.1``, ``::1``), the address the
  server listens on, or one in ``allowed_hosts`` (``"*"`` turns the check off). This stops
  DNS rebinding: the rebound page's requests carry its own name as Host.
* **Origin**, when the client sends one (browsers always do for WebSockets and cross-origin
  requests), must be the server's own origin (same host and port as the Host header), a
  loopback origin, or one in ``allowed_origins`` (``"*"`` turns the check off).
* **Token** (optional, as Jupyter does): with ``token`` set, a request must carry it as
  ``Authorization: Bearer TOKEN``, a ``token=TOKEN`` query parameter or the cookie this
  guard sets when the page is opened with ``?token=TOKEN``.
* **Bodies**: ``POST`` needs ``Content-Type: application/json`` (415 otherwise; this also
  forces a CORS preflight on cross-origin pages) and at most ``max_body_bytes`` (413). The
  routes in ``upload_paths`` take ``multipart/form-data`` instead, up to ``max_upload_bytes``:
  a form needs no preflight, so there the Origin check above is what keeps foreign pages out.

Refusals are JSON ``{"error", "message"}`` that say what was refused and how to allow it; a
refused WebSocket handshake is closed with code 1008 (policy violation) before it opens.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Iterable, Optional
from urllib.parse import parse_qs, urlsplit

__all__ = ["AccessGuard", "AccessPolicy", "LOOPBACK_NAMES"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
COOKIE = "asr_lab_token"


@dataclass(frozen=True)
class AccessPolicy:
    """What :class:`AccessGuard` lets through (see the module docstring)."""

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    token: Optional[str] = None
    max_body_bytes: int = 64 * 1024
    upload_paths: tuple[str, ...] = ()  # POST routes taking multipart/form-data files (OpenAI's transcriptions)
    max_upload_bytes: int = 64 * 1024 * 1024

    def host_ok(self, host: Optional[str]) -> bool:
        if "*" in self.allowed_hosts:
            return True
        name = _hostname(host)
        return name is not None and (name in LOOPBACK_NAMES or name in {h.lower() for h in self.allowed_hosts})

    def origin_ok(self, origin: Optional[str], host: Optional[str]) -> bool:
        if origin is None or "*" in self.allowed_origins:
            return True
        origin = origin.rstrip("/").lower()
        if origin in {o.rstrip("/").lower() for o in self.allowed_origins}:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (file://, sandboxed frames) and anything odd
        return parts.hostname in LOOPBACK_NAMES or (host is not None and parts.netloc == host.lower())

    def token_ok(self, headers: dict, query: dict) -> bool:
        if not self.token:
            return True
        offered = []
        auth = headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() in ("bearer", "token"):  # "Token KEY" is how Deepgram's clients send theirs
            offered.append(credential.strip())
        offered += query.get("token", [])
        offered += [v for k, v in _cookies(headers.get("cookie", "")) if k == COOKIE]
        return any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered)


class AccessGuard:
    """ASGI middleware applying an :class:`AccessPolicy` to HTTP requests and WebSocket handshakes."""

    def __init__(self, app, policy: AccessPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        host, origin = headers.get("host"), headers.get("origin")
        p = self.policy
        problem = None
        if not p.host_ok(host):
            problem = 403, "host_not_allowed", (
                f"Host {host!r} is not allowed; this server answers to loopback names and "
                f"{', '.join(p.allowed_hosts) or 'nothing else'}; add the name with --allow-host NAME"
            )
        elif not p.origin_ok(origin, host):
            problem = 403, "origin_not_allowed", (
                f"requests from pages at {origin!r} are not allowed; only this server's own page and loopback "
                f"origins are; add it with --allow-origin {origin}"
            )
        elif not p.token_ok(headers, query):
            problem = 401, "token_required", (
                "this server needs its token: open the URL printed at start (…/?token=TOKEN), "
                "or send Authorization: Bearer TOKEN"
            )
        if problem is not None:
            return await _refuse(scope, receive, send, *problem)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            upload = scope.get("path") in p.upload_paths
            limit = p.max_upload_bytes if upload else p.max_body_bytes
            if upload and ctype != "multipart/form-data":
                return await _refuse(scope, receive, send, 415, "multipart_required",
                                     f"this route takes a file as multipart/form-data, not {ctype or 'no content type'!r}")
            if not upload and ctype != "application/json":
                return await _refuse(scope, receive, send, 415, "json_required",
                                     f"the body must be JSON sent with Content-Type: application/json, not {ctype or 'no content type'!r}")
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                return await _refuse(scope, receive, send, 413, "body_too_big", f"a body of {declared} bytes exceeds the limit of {limit}")
            body, more = b"", True
            while more:  # read it all here, counting: a chunked body has no Content-Length
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    return await _refuse(scope, receive, send, 413, "body_too_big", f"the body exceeds the limit of {limit} bytes")
            receive = _replay_body(body, receive)
        if p.token and query.get("token"):
            send = _with_cookie(send, p.token)
        await self.app(scope, receive, send)


def allowed_hosts_for(bind_host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host allow-list for a server listening on ``bind_host``: a wildcard address
    (0.0.0.0, ::) is reached under names this server cannot know, so it allows any Host
    unless names are given."""
    extra = tuple(extra)
    if bind_host in ("0.0.0.0", "::", ""):
        return extra or ("*",)
    return (bind_host, *extra)


def _hostname(host: Optional[str]) -> Optional[str]:
    if not host:
        return None
    return urlsplit(f"//{host}").hostname


def _cookies(header: str):
    for part in header.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep:
            yield k, v


def _replay_body(body: bytes, receive):
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _with_cookie(send, token: str):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped


async def _refuse(scope, receive, send, status: int, error: str, message: str) -> None:
    if scope["type"] == "websocket":  # closing before accept refuses the handshake (HTTP 403)
        await receive()  # the websocket.connect message
        await send({"type": "websocket.close", "code": 1008, "reason": error})
        return
    body = json.dumps({"error": error, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
