"""Who may drive the server: Host and Origin allow-lists, an optional token, JSON bodies of bounded size.

A server on loopback is still reachable from every web page the user opens: a page from
another origin can POST to ``http://127.0.0.1:8000/load_model`` (a ``text/plain`` body
needs no CORS preflight) and open a WebSocket to it (WebSockets have no same-origin rule),
and DNS rebinding makes a foreign name resolve to 127.0.0.1. So every HTTP request and
WebSocket handshake passes :class:`AccessGuard` first:

* **Host** must be an IP address literal, a loopback name (``localhost``), the address the
  server listens on, or one in ``allowed_hosts`` (``"*"`` turns the check off). This stops
  DNS rebinding: a rebound page's requests carry its own *name* as Host, never an IP
  literal (a page whose URL holds an IP address is connected to that address, so it is
  not rebound). So a wildcard bind (0.0.0.0, ::) answers to IP addresses and loopback
  names only; a DNS name (``box.lan``) must be named with ``--allow-host``.
  One more name is accepted: ``testserver`` from Starlette's in-process ``TestClient``
  (the host it sends by default, so a plugin's ``TestClient(create_app())`` test works as
  the seed's guide writes it). It counts only when the ASGI scope's client is
  ``"testclient"``, which that transport sets; a server fills it with the peer's IP
  address, so a request over a socket never passes this way even if ``testserver``
  resolves on the user's network (LLMNR, mDNS, a search domain: why single-label names in
  general are not trusted). ``asr-lab serve`` runs uvicorn without proxy headers, so
  ``X-Forwarded-For`` cannot rewrite the client either.
* **Origin**, when the client sends one (browsers always do for WebSockets and cross-origin
  requests), must be the server's own origin (same host and port as the Host header), a
  loopback origin, or one in ``allowed_origins`` (``"*"`` turns the check off).
* **Token** (optional, as Jupyter does): with ``token`` set, a request must carry it as
  ``Authorization: Bearer TOKEN``, a ``token=TOKEN`` query parameter or the cookie this
  guard sets when the page is opened with ``?token=TOKEN``. The rule for pages on other
  loopback ports: the browser sends a cookie to every port of a host (cookies are
  per-site, not per-origin), so the cookie is honoured only from this server's own
  origin (no Origin header, or the Origin equal to the Host). A page of another local web
  app (``http://localhost:5173``) may still use the server, but only by presenting the
  token itself (header or query); without a token set, loopback pages are accepted
  because any local process can drive a loopback server anyway. An empty token is
  refused (it would mean no authentication: an unset shell variable).
  :class:`TokenMask` keeps the token out of logs (uvicorn's access log shows the query).
* **Bodies**: ``POST`` needs ``Content-Type: application/json`` (415 otherwise; this also
  forces a CORS preflight on cross-origin pages) and at most ``max_body_bytes`` (413). The
  routes in ``upload_paths`` take ``multipart/form-data`` instead, up to ``max_upload_bytes``:
  a form needs no preflight, so there the Origin check above is what keeps foreign pages out.

Refusals are JSON ``{"error", "message"}`` that say what was refused and how to allow it; a
refused WebSocket handshake is closed with code 1008 (policy violation) before it opens.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from typing import Iterable, Optional
from urllib.parse import parse_qs, urlsplit

__all__ = ["AccessGuard", "AccessPolicy", "LOOPBACK_NAMES", "TokenMask", "allowed_hosts_for", "is_test_client",
           "log_config_masking_tokens"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
COOKIE = "asr_lab_token"
TEST_CLIENT_HOST = "testserver"  # the Host Starlette's TestClient sends by default
TEST_CLIENT_PEER = "testclient"  # the scope["client"] host its in-process transport sets


@dataclass(frozen=True)
class AccessPolicy:
    """What :class:`AccessGuard` lets through (see the module docstring)."""

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    token: Optional[str] = None
    max_body_bytes: int = 64 * 1024
    upload_paths: tuple[str, ...] = ()  # POST routes taking multipart/form-data files (OpenAI's transcriptions)
    max_upload_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise ValueError(
                f"token={self.token!r} is empty, which would switch authentication off; give a token "
                f"(asr-lab serve --token with no value makes a random one), or token=None for none"
            )

    def host_ok(self, host: Optional[str], scope: Optional[dict] = None) -> bool:
        """Whether a request with this Host header may be served (``scope``: the ASGI scope,
        which tells an in-process TestClient request from one over a socket)."""
        if "*" in self.allowed_hosts:
            return True
        name = _hostname(host)
        if name is None:
            return False
        if name in LOOPBACK_NAMES or name in {h.lower() for h in self.allowed_hosts} or _is_ip(name):
            return True
        return name == TEST_CLIENT_HOST and scope is not None and is_test_client(scope)

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
        if self.token is None:
            return True
        offered = []
        auth = headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() in ("bearer", "token"):  # "Token KEY" is how Deepgram's clients send theirs
            offered.append(credential.strip())
        offered += query.get("token", [])
        if self.own_origin(headers.get("origin"), headers.get("host")):
            offered += [v for k, v in _cookies(headers.get("cookie", "")) if k == COOKIE]
        return any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered)

    @staticmethod
    def own_origin(origin: Optional[str], host: Optional[str]) -> bool:
        """Whether a request comes from this server's own page (or from no page at all):
        the only requests whose cookie is taken as the token."""
        if origin is None:
            return True
        parts = urlsplit(origin.rstrip("/").lower())
        return parts.scheme in ("http", "https") and host is not None and parts.netloc == host.lower()


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
        if not p.host_ok(host, scope):
            problem = 403, "host_not_allowed", (
                f"Host {host!r} is not allowed; this server answers to IP addresses, loopback names and "
                f"{', '.join(p.allowed_hosts) or 'no other name'}; add the name with --allow-host NAME"
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
                + ("" if p.own_origin(origin, host) else
                   f"; the token cookie counts only on the server's own page, not from a page at {origin}")
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
    """The Host allow-list for a server listening on ``bind_host``, beyond loopback names
    and IP literals (always accepted): the bind address itself when it is a name, and the
    ``extra`` names. A wildcard address (0.0.0.0, ::) adds nothing: the names it is reached
    under must be given (``--allow-host``), or a rebound page could drive it."""
    extra = tuple(extra)
    if bind_host in ("0.0.0.0", "::", ""):
        return extra
    return (bind_host, *extra)


def is_test_client(scope: dict) -> bool:
    """Whether an ASGI request comes from Starlette's in-process TestClient, not a socket."""
    client = scope.get("client")
    return bool(client) and client[0] == TEST_CLIENT_PEER


class TokenMask(logging.Filter):
    """A logging filter that replaces ``token=VALUE`` in a record's message by ``token=***``.

    uvicorn's access log prints each request's path with its query (``GET /?token=…``,
    ``"WebSocket /asr?token=…" [accepted]``); put this filter on the log handlers so the
    token never reaches a terminal or log file. Records are rewritten, never dropped."""

    _TOKEN = re.compile(r"((?:^|[?&;])token=)[^&\s\"';]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._TOKEN.sub(r"\1***", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def log_config_masking_tokens(base: Optional[dict] = None) -> dict:
    """uvicorn's logging configuration (``base``, default ``uvicorn.config.LOGGING_CONFIG``)
    with :class:`TokenMask` on every handler."""
    import copy

    if base is None:
        from uvicorn.config import LOGGING_CONFIG as base
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["asr_lab_token_mask"] = {"()": f"{__name__}.TokenMask"}
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "asr_lab_token_mask"]
    return config


def _hostname(host: Optional[str]) -> Optional[str]:
    if not host:
        return None
    return urlsplit(f"//{host}").hostname


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


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
