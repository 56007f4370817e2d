"""How ``kdx dashboard`` serves the Streamlit app: its command line, its environment, and its origin guard.

Streamlit checks a WebSocket's ``Origin`` by host name only, so a page served on ``localhost`` at any
other port could open a session and drive Launch. The dashboard is therefore served through
``dashboard/server.py``: Streamlit's own server (``st.App``) with :class:`OriginGuard` in front, which
refuses any request a page of another origin makes, the WebSocket included. The origins it accepts are
the dashboard's own, passed as ``server.corsAllowedOrigins`` (so Streamlit's CORS headers name the same
ones). Imports no Streamlit: the command is a pure function of the options, the guard plain ASGI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
SERVER_SCRIPT = "server.py"  # beside the dashboard's app.py: serves it behind the origin guard

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def origin(host: str, port: int) -> str:
    """The origin a browser sends for ``http://host:port`` (IPv6 addresses in brackets)."""
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{name.lower()}:{port}"


def own_origins(host: str, port: int, allowed_hosts: Iterable[str] = ()) -> list[str]:
    """Every origin the dashboard is opened from: the localhost names, the bound address (unless it is a
    wildcard) and each extra allowed host name, all at the dashboard's port."""
    names = [*LOCAL_HOSTS, *([] if host in ("0.0.0.0", "::", "") else [host]), *allowed_hosts]
    return list(dict.fromkeys(origin(name, port) for name in names))


def dashboard_command(app: Path, host: str, port: int, allowed_hosts: Sequence[str], workshop: bool,
                      max_concurrent: int | None, uri: str, *, data_root: Path | None = None,
                      python: str = sys.executable,
                      environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve the dashboard whose router is ``app`` (``dashboard/app.py``).

    It runs ``server.py`` beside ``app``; binds ``host:port``; accepts the localhost names and
    ``allowed_hosts`` as Host headers and only the dashboard's own origins (XSRF protection on, usage
    statistics off); ``workshop`` hides the developer menu and opens on Learn; ``max_concurrent`` is the
    launch queue's CPU limit; ``uri`` the tracking store; ``data_root`` the folder Launch may read the user's
    models and data from (default: the working folder). ``environ`` (default ``os.environ``) is the
    environment the server inherits.
    """
    command = [python, "-m", "streamlit", "run", str(Path(app).with_name(SERVER_SCRIPT)),
               "--server.address", host, "--server.port", str(port), "--server.headless", "true",
               "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
               "--browser.gatherUsageStats", "false", "--server.runOnSave", "false"]
    for name in dict.fromkeys([*LOCAL_HOSTS, *allowed_hosts]):
        command += ["--server.allowedHosts", name]
    for allowed in own_origins(host, port, allowed_hosts):
        command += ["--server.corsAllowedOrigins", allowed]
    env = {**(os.environ if environ is None else environ), "MLFLOW_TRACKING_URI": uri}
    if workshop:
        env["KDX_WORKSHOP"] = "1"
        command += ["--client.toolbarMode", "viewer"]  # no deploy menu, no developer options
    if max_concurrent:
        env["KDX_MAX_CONCURRENT"] = str(max_concurrent)
    if data_root is not None:
        env["KDX_DATA_ROOT"] = str(Path(data_root).expanduser().resolve())
    return command, env


class OriginGuard:
    """ASGI middleware: a request (HTTP or WebSocket) that carries an ``Origin`` header not among
    ``origins()`` is refused with 403 before the app sees it. Requests without the header (a typed URL,
    a non-browser client) pass: browsers always send it on WebSockets and cross-origin requests."""

    def __init__(self, app: ASGIApp, origins: Callable[[], Iterable[str]]) -> None:
        self.app = app
        self.origins = origins  # asked per request: the server's options are loaded after this is built

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.allows(scope):
            if scope["type"] == "websocket":  # closing before accepting answers the handshake with 403
                await send({"type": "websocket.close", "code": 1008})
            else:
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"Origin not allowed"})
            return
        await self.app(scope, receive, send)

    def allows(self, scope: Scope) -> bool:
        sent = [value for key, value in scope.get("headers", []) if key.lower() == b"origin"]
        if not sent:
            return True
        allowed = {o.strip().rstrip("/").lower() for o in self.origins()}
        return all(value.decode("latin-1").strip().rstrip("/").lower() in allowed for value in sent)
