"""How the dashboard is served: the command line and environment, and the origin guard, alone and in
the real server (a WebSocket handshake from another local origin is refused, from its own accepted)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path

import pytest

from kdcore.dashboard_server import OriginGuard, dashboard_command, own_origins

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def options(command: list[str], name: str) -> list[str]:
    """Every value given to ``--name`` on the command line."""
    return [value for flag, value in pairwise(command) if flag == f"--{name}"]


def test_the_command_limits_origins_and_hosts_to_the_dashboards_own() -> None:
    command, env = dashboard_command(APP, "127.0.0.1", 8502, ["lab.example"], workshop=False, max_concurrent=None,
                                     uri="sqlite:///m.db", python="python", environ={"PATH": "/bin"})
    assert command[:5] == ["python", "-m", "streamlit", "run", str(APP.with_name("server.py"))]
    assert options(command, "server.corsAllowedOrigins") == [
        "http://localhost:8502", "http://127.0.0.1:8502", "http://[::1]:8502", "http://lab.example:8502"]
    assert options(command, "server.allowedHosts") == ["localhost", "127.0.0.1", "::1", "lab.example"]
    assert options(command, "server.enableXsrfProtection") == ["true"]
    assert options(command, "server.enableCORS") == ["true"]
    assert options(command, "server.address") == ["127.0.0.1"] and options(command, "server.port") == ["8502"]
    assert options(command, "browser.gatherUsageStats") == ["false"]
    assert env == {"PATH": "/bin", "MLFLOW_TRACKING_URI": "sqlite:///m.db"}


def test_workshop_and_queue_options_reach_the_server() -> None:
    command, env = dashboard_command(APP, "0.0.0.0", 8501, [], workshop=True, max_concurrent=3, uri="sqlite:///m.db",
                                     environ={})
    assert options(command, "client.toolbarMode") == ["viewer"]
    assert env == {"MLFLOW_TRACKING_URI": "sqlite:///m.db", "KDX_WORKSHOP": "1", "KDX_MAX_CONCURRENT": "3"}
    assert own_origins("0.0.0.0", 8501) == ["http://localhost:8501", "http://127.0.0.1:8501", "http://[::1]:8501"]


def test_the_data_root_reaches_the_server_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    _, env = dashboard_command(APP, "127.0.0.1", 8501, [], workshop=False, max_concurrent=None, uri="sqlite:///m.db",
                               data_root=Path("data"), environ={})
    assert env["KDX_DATA_ROOT"] == str(tmp_path / "data")


def guarded(headers: list[tuple[bytes, bytes]], kind: str = "websocket") -> list[dict]:
    """What OriginGuard sends for one request of ``kind`` with ``headers``, in front of an app that accepts."""
    sent: list[dict] = []

    async def app(scope, receive, send) -> None:
        await send({"type": "websocket.accept"} if kind == "websocket" else {"type": "http.response.start",
                                                                               "status": 200})

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {}

    guard = OriginGuard(app, origins=lambda: ["http://127.0.0.1:8501", "http://localhost:8501"])
    asyncio.run(guard({"type": kind, "headers": headers}, receive, send))
    return sent


@pytest.mark.parametrize("origin", [b"http://localhost:9999", b"http://127.0.0.1:9999", b"https://localhost:8501",
                                    b"http://evil.invalid", b"null"])
def test_the_guard_refuses_every_other_origin(origin: bytes) -> None:
    assert guarded([(b"host", b"127.0.0.1:8501"), (b"origin", origin)]) == [{"type": "websocket.close", "code": 1008}]
    assert guarded([(b"origin", origin)], "http")[0]["status"] == 403


def test_the_guard_lets_the_dashboards_own_origin_and_originless_requests_through() -> None:
    assert guarded([(b"origin", b"http://localhost:8501")]) == [{"type": "websocket.accept"}]
    assert guarded([(b"Origin", b"http://127.0.0.1:8501/")]) == [{"type": "websocket.accept"}]
    assert guarded([(b"host", b"127.0.0.1:8501")], "http")[0]["status"] == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def handshake(port: int, origin: str) -> int:
    """The HTTP status answering a WebSocket handshake on the dashboard's stream from ``origin``."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: {origin}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode())
        return int(sock.recv(4096).split(b" ", 2)[1])


@pytest.fixture
def server(tmp_path: Path):
    """The dashboard served by its own command line on a free port (nothing runs until a page asks)."""
    port = free_port()
    command, env = dashboard_command(APP, "127.0.0.1", port, [], workshop=False, max_concurrent=None,
                                     uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"the dashboard did not start: {process.stdout.read().decode()[-2000:]}")
    yield port
    process.terminate()
    process.wait(timeout=30)


def test_the_real_server_refuses_a_websocket_from_another_local_port(server: int) -> None:
    port = server
    assert handshake(port, f"http://localhost:{port}") == 101
    assert handshake(port, f"http://127.0.0.1:{port}") == 101
    for other in (f"http://localhost:{port + 1}", f"http://127.0.0.1:{port + 1}", "http://evil.invalid"):
        assert handshake(port, other) == 403, other
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_stcore/health",
                                     headers={"Origin": f"http://localhost:{port + 1}"})
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(request, timeout=10)
