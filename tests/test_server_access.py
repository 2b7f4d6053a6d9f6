"""Who may drive the server (asr_lab.web.access): Host names on a wildcard bind, the token's
edges (empty, masked in logs, the cookie from other loopback ports) and TestClient's host."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.backends import registry  # noqa: E402
from asr_lab.web.access import AccessPolicy  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402


class StandInProcessor:
    """Stand-in engine: the access rules, not decoding, are under test here."""

    def init(self, offset=0.0):
        pass

    def insert_audio_chunk(self, audio):
        pass

    def process_iter(self):
        return None

    def finish(self):
        return None


class StandInLoader:
    description = "stand-in engine for the access tests"

    def load(self, config):
        return StandInProcessor(), {"separator": " "}


@pytest.fixture(autouse=True)
def stand_in_backend():
    asr_lab.register_loader("stand-in", StandInLoader())
    yield
    registry.unregister_loader("stand-in")


def served_app(monkeypatch, *argv):
    """The app `asr-lab serve ARGV` builds, and uvicorn.run's keyword arguments (uvicorn.run is
    replaced by a stand-in that records them: the app itself is then driven in-process)."""
    from asr_lab.cli import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    assert main(["serve", "--engine-processes", "0", *argv]) == 0
    return served.pop("app"), served


LOAD = {"backend": "stand-in"}


def test_the_test_clients_host_is_accepted_only_from_the_in_process_transport():
    app = create_app()
    assert TestClient(app).post("/load_model", json=LOAD).status_code == 200
    # the same Host from a peer with an address (as every request over a socket has) is refused
    r = TestClient(app, client=("127.0.0.1", 50000)).post("/load_model", json=LOAD)
    assert r.status_code == 403 and "'testserver'" in r.json()["message"]
    # other single-label names (which LLMNR, mDNS or a search domain can resolve) are refused too
    r = TestClient(app, base_url="http://intranet").post("/load_model", json=LOAD)
    assert r.status_code == 403 and r.json()["error"] == "host_not_allowed"


def test_a_wildcard_bind_refuses_dns_names_it_was_not_given(monkeypatch):
    app, kw = served_app(monkeypatch, "--host", "0.0.0.0")
    assert kw["host"] == "0.0.0.0" and kw["proxy_headers"] is False
    rebound = TestClient(app, base_url="http://attacker.example:8000")
    r = rebound.post("/load_model", json=LOAD)
    assert r.status_code == 403 and r.json()["error"] == "host_not_allowed" and "--allow-host" in r.json()["message"]
    assert rebound.get("/health").status_code == 403
    # the machine's IP addresses (a LAN client) and loopback names still work
    for base in ("http://192.168.1.20:8000", "http://[fe80::1]:8000", "http://localhost:8000"):
        assert TestClient(app, base_url=base).get("/health").status_code == 200, base
    assert TestClient(app, base_url="http://192.168.1.20:8000").get("/health").json()["loaded"] is None

    app, _ = served_app(monkeypatch, "--host", "::", "--allow-host", "box.lan")
    assert TestClient(app, base_url="http://box.lan:8000").post("/load_model", json=LOAD).status_code == 200
    assert TestClient(app, base_url="http://attacker.example:8000").get("/health").status_code == 403
    app, _ = served_app(monkeypatch, "--host", "0.0.0.0", "--allow-host", "*")  # the explicit opt-out stays
    assert TestClient(app, base_url="http://attacker.example:8000").get("/health").status_code == 200


def test_an_empty_token_is_refused(monkeypatch, capsys):
    from asr_lab.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("the server started with an empty token"))
    for empty in ("", "  "):
        assert main(["serve", "--token", empty]) == 2
        err = capsys.readouterr().err
        assert f"--token {empty!r} is empty" in err and "--token with no value" in err
    with pytest.raises(ValueError, match="token='' is empty"):
        create_app(settings=ServerSettings(token=""))
    with pytest.raises(ValueError, match="token=''"):
        AccessPolicy(token="")


def test_the_token_cookie_counts_only_on_the_servers_own_page():
    c = TestClient(create_app(settings=ServerSettings(token="s3cret")))
    cookie = {"cookie": "asr_lab_token=s3cret"}
    assert c.post("/load_model", json=LOAD, headers={**cookie, "origin": "http://testserver"}).status_code == 200
    assert c.get("/health", headers=cookie).status_code == 200  # no Origin: not from a page
    # another local web app's page: the browser sends it the cookie too (cookies are per site)
    other = {**cookie, "origin": "http://localhost:5173"}
    r = c.post("/load_model", json=LOAD, headers=other)
    assert r.status_code == 401 and "own page" in r.json()["message"] and "localhost:5173" in r.json()["message"]
    with pytest.raises(Exception) as refused:
        with c.websocket_connect("/asr", headers=other):
            pass
    assert getattr(refused.value, "code", None) == 1008
    # ... it may still use the server by presenting the token itself
    assert c.post("/load_model", json=LOAD, headers={"origin": "http://localhost:5173", "authorization": "Bearer s3cret"}).status_code == 200
    with c.websocket_connect("/asr?token=s3cret", headers={"origin": "http://localhost:5173"}) as ws:
        ws.send_text(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_text(json.dumps({"type": "stop"}))
        assert ws.receive_json()["type"] == "done"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_token_never_reaches_the_access_log(tmp_path):
    """A real `asr-lab serve` (uvicorn, its own logging set-up): requests carrying the token in
    the query are logged with it masked, HTTP and WebSocket alike."""
    pytest.importorskip("pocketsphinx")  # the served engine
    from websockets.sync.client import connect

    token, port = "Tok3n-not-for-logs_42", _free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "asr_lab.cli", "serve", "--port", str(port), "--token", token,
             "--engine-processes", "0", "--backend", "pocketsphinx"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health?token={token}", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, log.read_text()
                assert time.time() < deadline, "asr-lab serve did not answer within 60 s:\n" + log.read_text()
                time.sleep(0.2)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=10).read()
        with connect(f"ws://127.0.0.1:{port}/asr?x=1&token={token}", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            ws.send(json.dumps({"type": "stop"}))
            while json.loads(ws.recv(timeout=20))["type"] not in ("done", "error"):
                pass
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    lines = log.read_text().splitlines()
    requests = [line for line in lines if "/health" in line or "GET /?" in line or "WebSocket /asr" in line]
    assert len(requests) >= 3, lines
    assert all("token=***" in line and token not in line for line in requests), requests
    # the one place it is printed: the URL to open, once, at start (as Jupyter does)
    assert [line for line in lines if token in line] == [f"# open http://127.0.0.1:{port}/?token={token}"]
