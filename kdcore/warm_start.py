"""A warm starter: start-up paid once per jobs folder, not once per launched study.

A ``kdx`` process spends most of a short study's wall time importing torch, MLflow's SQL store and
scikit-learn (about 10 s on a loaded 2-core laptop, against 7 s of training for the digits example).
The launcher therefore keeps one process per jobs folder that has imported all of that and forks a
child for each job: the child is a ``kdx`` process in every way that matters (its own session, its
own log, the job's ``alive.lock`` held until it exits) that starts in a fraction of a second.

The starter listens on ``<jobs root>/warm.sock``. A request is one JSON line (``argv``, ``env``,
``cwd``) with the job's log and ``alive.lock`` descriptors attached; the answer is the child's pid.
It never opens a store, runs a torch op or starts a thread, so forking it is safe. It exits after
``IDLE_SECONDS`` without a request, or as soon as kdcore's code on disk is newer than what it
imported (the next launch then starts cold and brings up a fresh starter). ``KDX_WARM_START=0``
turns it off: every job is then a new process.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from kdcore.ownership import is_locked

SOCKET = "warm.sock"
LOCK = "warm.lock"  # held by the live starter: at most one per jobs folder
LOG = "warm.log"
IDLE_SECONDS = 30 * 60
CONNECT_TIMEOUT_S = 5.0
PRELOAD = ("kdcore.cli", "kdcore.study", "kdcore.tracking", "kdcore.launcher", "kdcore.sweep", "kdcore.study_results",
           "kdcore.sweep_workers", "mlflow.store.tracking.sqlalchemy_store", "torch._dynamo", "scipy.stats")
PACKAGE = Path(__file__).resolve().parent


def enabled() -> bool:
    return os.environ.get("KDX_WARM_START", "1") != "0"


def code_stamp() -> float:
    """The newest modification time of kdcore's Python files: a starter older than this runs stale code."""
    return max(path.stat().st_mtime for path in PACKAGE.rglob("*.py"))


# --- the launcher's side ----------------------------------------------------------------------------
def start(root: Path, argv: list[str], env: dict[str, str], log_fd: int, alive_fd: int) -> int | None:
    """Run ``kdx ARGV`` as a child of the warm starter of ``root``; its pid, or None when no starter answers (the
    caller then starts the job as a new process, and :func:`ensure` brings one up for the next job)."""
    if not enabled():
        return None
    request = json.dumps({"argv": argv, "env": env, "cwd": os.getcwd()}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(CONNECT_TIMEOUT_S)
            client.connect(str(socket_path(root)))
            socket.send_fds(client, [request], [log_fd, alive_fd])
            answer = json.loads(_read_line(client) or b"{}")
    except (OSError, ValueError):
        return None
    pid = answer.get("pid")
    return pid if isinstance(pid, int) else None


def ensure(root: Path | None = None) -> None:
    """Start the warm starter of ``root`` (None: the default jobs folder) in the background, unless one runs (or
    is starting) already."""
    if not enabled() or (root is not None and is_locked(root / LOCK)):
        return
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(root / LOG, "ab") if root is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        subprocess.Popen([sys.executable, "-m", "kdcore.warm_start", *([str(root)] if root else [])],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    finally:
        if root is not None:
            log.close()


def stop(root: Path, timeout: float = 10.0) -> None:
    """Ask the starter of ``root`` to exit, and wait until it has (children it started run on)."""
    with contextlib.suppress(OSError, ValueError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(CONNECT_TIMEOUT_S)
        client.connect(str(socket_path(root)))
        client.sendall(b'{"stop": true}\n')
        _read_line(client)
    deadline = time.monotonic() + timeout
    while is_locked(root / LOCK) and time.monotonic() < deadline:
        time.sleep(0.05)


def ready(root: Path) -> bool:
    """Whether a starter of ``root`` is listening."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(socket_path(root)))
        return True
    return False


def socket_path(root: Path) -> Path:
    """``<root>/warm.sock``, or a name in the temporary folder when that path is too long for a Unix socket."""
    path = root.resolve() / SOCKET
    if len(str(path).encode()) < 100:
        return path
    return Path(tempfile.gettempdir()) / f"kdx-warm-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.sock"


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# --- the starter ------------------------------------------------------------------------------------
def serve(root: Path | None) -> None:
    """Import everything a job needs, then fork a child per request until idle, stopped or stale."""
    stamp = code_stamp()
    _preload()
    if root is None:
        from kdcore.launcher import jobs_root

        root = jobs_root()
    root.mkdir(parents=True, exist_ok=True)
    lock = os.open(root / LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another starter of this folder is up
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel; job state lives in files
    path = socket_path(root)
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(16)
        server.settimeout(60)
        idle_since = time.monotonic()
        print(f"warm starter {os.getpid()} ready on {path}", flush=True)
        while time.monotonic() - idle_since < IDLE_SECONDS:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                if code_stamp() > stamp:
                    break
                continue
            idle_since = time.monotonic()
            with conn:
                if not _answer(conn, server, lock, stamp):
                    break
    path.unlink(missing_ok=True)  # no other starter binds it while this one holds the lock
    print(f"warm starter {os.getpid()} stopped", flush=True)


def _preload() -> None:
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS

    for registry in (DATASETS, MODELS, METHODS, MECHANISMS):
        registry.names()  # every registered component's module


def _answer(conn: socket.socket, server: socket.socket, lock: int, stamp: float) -> bool:
    """Serve one request; False when the starter should exit (asked to stop, or its code is stale)."""
    conn.settimeout(CONNECT_TIMEOUT_S)
    try:
        message, fds, _flags, _addr = socket.recv_fds(conn, 65536, 2)
        while not message.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            message += chunk
        request = json.loads(message or b"{}")
    except (OSError, ValueError):
        return True
    try:
        if not request:  # a probe (ready) or a client gone
            return True
        go_on = not request.get("stop") and code_stamp() <= stamp
        pid = os.fork() if go_on and len(fds) == 2 else None
        if pid == 0:
            _child(request, fds, [conn.fileno(), server.fileno(), lock])
        with contextlib.suppress(OSError):  # without an answer the launcher starts the job itself
            conn.sendall(json.dumps({"pid": pid} if pid else {}).encode() + b"\n")
        return go_on
    finally:
        for fd in fds:
            os.close(fd)


def _child(request: dict, fds: list[int], close: list[int]) -> None:
    """The forked job: a session, stdio and environment of its own, then ``kdx ARGV``; never returns."""
    code = 1
    try:
        for fd in close:
            os.close(fd)
        os.setsid()  # cancel signals this job's process group alone
        for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        log, _alive = fds  # the alive.lock descriptor stays open, and locked, until this process exits
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["kdx", *request["argv"]]
        from kdcore.cli import main

        code = main(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    serve(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
