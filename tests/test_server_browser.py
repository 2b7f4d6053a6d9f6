"""The server's access rules in a real headless Chromium: a page from another site cannot drive it.

The hostile page is served from ``http://evil.test:<port>`` (Chromium resolves evil.test to
127.0.0.1 by ``--host-resolver-rules``). It tries what worked before the server checked Host and Origin: a
``text/plain`` POST to ``/load_model`` (no CORS preflight needed) and a WebSocket to
``/asr`` (no same-origin rule for WebSockets); then the same server is opened under the
rebinding name ``evil.test``. The server's own page, opened at 127.0.0.1, still works.

Skipped only when ``/usr/bin/chromium`` is absent; Playwright drives that browser.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not found: install it with `apt-get install chromium`", allow_module_level=True)
pytest.importorskip("fastapi")

import uvicorn  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.backends import registry  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

pytestmark = pytest.mark.slow


class SilentProcessor:
    """Stand-in engine: says one word when the stream ends."""

    def init(self, offset=0.0):
        self.fed = 0

    def insert_audio_chunk(self, audio):
        self.fed += len(audio)

    def process_iter(self):
        return None

    def finish(self):
        return (0.0, self.fed / 16000, "word") if self.fed else None


class SilentLoader:
    def load(self, config):
        return SilentProcessor(), {"separator": " "}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ATTACK = """<!doctype html><title>evil</title><body><script>
const target = "127.0.0.1:%PORT%";
window.result = {};
fetch(`http://${target}/load_model`, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                                       body: JSON.stringify({backend: "silent-browser"})})
  .then(() => { window.result.post = "sent"; }, e => { window.result.post = "failed: " + e; });
const ws = new WebSocket(`ws://${target}/asr`);
ws.onopen = () => { window.result.ws_open = true; ws.send(JSON.stringify({type: "start"})); };
ws.onmessage = m => { window.result.ws_message = m.data; };
ws.onclose = e => { window.result.ws_closed = e.code; };
</script></body>"""


@pytest.fixture
def server():
    asr_lab.register_loader("silent-browser", SilentLoader())
    port = free_port()
    app = create_app(settings=ServerSettings())
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    yield port, app.state.asr
    srv.should_exit = True
    thread.join(timeout=10)
    registry.unregister_loader("silent-browser")


@pytest.fixture
def attacker(server):
    page = ATTACK.replace("%PORT%", str(server[0])).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_a_foreign_page_cannot_load_a_model_or_stream_and_the_own_page_can(server, attacker):
    port, state = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, timeout=60_000,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--host-resolver-rules=MAP evil.test 127.0.0.1"],
        )
        try:
            page = browser.new_page()
            page.goto(f"http://evil.test:{attacker}/", timeout=30_000)
            page.wait_for_function("window.result.post && window.result.ws_closed !== undefined", timeout=30_000)
            result = page.evaluate("window.result")
            assert state.loaded is None, "the foreign page's POST must not load a model"
            assert not result.get("ws_open") and "ws_message" not in result, result
            # DNS rebinding: the same server under the attacker's name
            response = page.goto(f"http://evil.test:{port}/health", timeout=30_000)
            assert response.status == 403 and "host_not_allowed" in response.text()
            # the server's own page still loads, reads /health, and can stream
            assert page.request.post(f"http://127.0.0.1:{port}/load_model", data=json.dumps({"backend": "silent-browser"}),
                                     headers={"content-type": "application/json"}).status == 200
            page.goto(f"http://127.0.0.1:{port}/", timeout=30_000)
            page.wait_for_function("document.getElementById('backend').textContent === 'silent-browser'", timeout=30_000)
            pcm = (np.zeros(1600)).astype("<i2").tobytes().hex()
            own = page.evaluate(
                """pcm => new Promise(done => {
                    const ws = new WebSocket(`ws://${location.host}/asr`); const seen = [];
                    ws.onopen = () => {
                        ws.send(JSON.stringify({type: "start"}));
                        const bytes = new Uint8Array(pcm.match(/../g).map(h => parseInt(h, 16)));
                        ws.send(bytes.buffer); ws.send(JSON.stringify({type: "stop"}));
                    };
                    ws.onmessage = m => { seen.push(JSON.parse(m.data).type); };
                    ws.onclose = () => done(seen);
                })""",
                pcm,
            )
            assert own[0] == "ready" and own[-1] == "done", own
        finally:
            browser.close()


OTHER_APP = """<!doctype html><title>another local app</title><body><script>
window.result = {};
const ws = new WebSocket("ws://127.0.0.1:%PORT%/asr");  // no token: only the browser's cookie could carry it
ws.onopen = () => { window.result.ws_open = true; ws.send(JSON.stringify({type: "start"})); };
ws.onmessage = m => { window.result.ws_message = m.data; };
ws.onclose = e => { window.result.ws_closed = e.code; };
</script></body>"""


def test_the_token_cookie_does_not_let_a_page_on_another_loopback_port_drive_the_server():
    """The browser sends the token cookie to every port of 127.0.0.1 (cookies are per site): a
    page of another local web app must not ride on it. The server's own page still streams."""
    asr_lab.register_loader("silent-browser", SilentLoader())
    port = free_port()
    app = create_app(settings=ServerSettings(token="s3cret-cookie"))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    page_bytes = OTHER_APP.replace("%PORT%", str(port)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page_bytes)))
            self.end_headers()
            self.wfile.write(page_bytes)

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, timeout=60_000, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                context = browser.new_context()
                page = context.new_page()
                assert page.request.post(f"http://127.0.0.1:{port}/load_model", data=json.dumps({"backend": "silent-browser"}),
                                         headers={"content-type": "application/json", "authorization": "Bearer s3cret-cookie"}).status == 200
                page.goto(f"http://127.0.0.1:{port}/?token=s3cret-cookie", timeout=30_000)  # sets the cookie
                assert any(c["name"] == "asr_lab_token" for c in context.cookies(f"http://127.0.0.1:{other.server_address[1]}/"))
                own = page.evaluate("""() => new Promise(done => {
                    const ws = new WebSocket(`ws://${location.host}/asr`); const seen = [];
                    ws.onopen = () => {
                        ws.send(JSON.stringify({type: "start"})); ws.send(new Int16Array(1600).buffer);
                        ws.send(JSON.stringify({type: "stop"}));
                    };
                    ws.onmessage = m => { seen.push(JSON.parse(m.data).type); };
                    ws.onclose = () => done(seen);
                })""")
                assert own[0] == "ready" and own[-1] == "done", own
                page.goto(f"http://127.0.0.1:{other.server_address[1]}/", timeout=30_000)
                page.wait_for_function("window.result.ws_closed !== undefined || window.result.ws_message !== undefined",
                                       timeout=30_000)
                result = page.evaluate("window.result")
                assert not result.get("ws_open") and "ws_message" not in result, result
            finally:
                browser.close()
    finally:
        other.shutdown()
        srv.should_exit = True
        registry.unregister_loader("silent-browser")
