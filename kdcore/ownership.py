"""Who runs a study, whether that process still lives, and the lock that lets only one process run it.

A running study carries its owner in tags: ``kd.host``, ``kd.pid``, ``kd.pid_start`` (the process's
start time, so a recycled pid is not mistaken for it) and ``kd.heartbeat`` (unix seconds, renewed
every ``HEARTBEAT_SECONDS`` while it runs). A reader on the owner's host asks the operating system
whether that exact process lives; a reader elsewhere trusts the heartbeat until it is older than
``STALE_SECONDS``. A study whose owner is gone but whose run still says RUNNING was killed with no
chance to close it (``kill -9``, power loss): readers show it as FAILED and ``--resume`` accepts it.

On one machine the lock is an ``flock`` on ``<checkpoints>/<study id>/study.lock``, held for the whole
run, so two processes can never train one study at once; the owner tags extend that to other hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

HEARTBEAT_SECONDS = 60.0
STALE_SECONDS = 5 * HEARTBEAT_SECONDS  # a heartbeat older than this means the owner is gone
GONE_REASON = "process ended without closing the run"
ACTIVE = ("RUNNING", "SCHEDULED")  # statuses that claim a live owner
KEEP_CHECKPOINTS_DAYS = 7  # checkpoints of a failed or killed study are kept this long for --resume
LOCK_NAME = "study.lock"


class StudyBusy(RuntimeError):
    """Another live process runs this study; the message names it."""


def process_start(pid: int) -> str | None:
    """A token that identifies one process for its lifetime (boot id + start time), or None if it does not run.

    Linux reads ``/proc``; elsewhere only existence can be checked, and the token is empty.
    """
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self/stat").exists():
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return f"{_boot_id()}:{fields[19]}"  # field 22 of stat: start time in clock ticks since boot
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, owned by someone else
    return ""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def owner_tags() -> dict[str, str]:
    """The tags that name this process as a study's owner, with a fresh heartbeat."""
    pid = os.getpid()
    return {"kd.host": socket.gethostname(), "kd.pid": str(pid), "kd.pid_start": process_start(pid) or "",
            "kd.heartbeat": str(int(time.time()))}


def owner_label(tags: Mapping[str, str]) -> str:
    return f"process {tags.get('kd.pid', '?')} on {tags.get('kd.host', '?')}"


def owner_alive(tags: Mapping[str, str], now: float | None = None) -> bool | None:
    """Whether the process named by a run's owner tags still lives; None when the run names no owner."""
    pid = tags.get("kd.pid", "")
    if not pid.isdigit():
        return None
    if tags.get("kd.host") == socket.gethostname():
        current = process_start(int(pid))
        recorded = tags.get("kd.pid_start", "")
        return current is not None and (not recorded or not current or current == recorded)
    heartbeat = tags.get("kd.heartbeat", "")
    try:
        return (now or time.time()) - float(heartbeat) < STALE_SECONDS
    except ValueError:
        return None


def orphaned(status: str, tags: Mapping[str, str]) -> bool:
    """A run that claims to be running (or queued) while the process that owned it is gone."""
    return status in ACTIVE and owner_alive(tags) is False


class Heartbeat:
    """Renews ``kd.heartbeat`` on a run from a daemon thread until stopped."""

    def __init__(self, beat: Callable[[dict[str, str]], None], every: float = HEARTBEAT_SECONDS) -> None:
        self._beat, self._every = beat, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kdx-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            with contextlib.suppress(Exception):  # a missed beat only ages the heartbeat; never stop the study
                self._beat({"kd.heartbeat": str(int(time.time()))})


class StudyLock:
    """An exclusive ``flock`` on a study's lock file, held while one process runs it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, study_id: str) -> None:
        """Take the lock, or raise StudyBusy naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StudyBusy(f"study {study_id} is already running in {holder}; wait for it to end or stop it "
                            f"first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_locked(path: Path) -> bool:
    """Whether some process holds an exclusive lock on ``path``."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def prune_checkpoints(root: Path, keep_days: float = KEEP_CHECKPOINTS_DAYS, now: float | None = None) -> list[Path]:
    """Remove study checkpoint folders nobody runs that hold no checkpoint or are older than ``keep_days``.

    Returns what was removed. A folder whose lock is held belongs to a running study and is left alone.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    cutoff = (now or time.time()) - keep_days * 86_400
    for folder in root.iterdir():
        if not folder.is_dir() or is_locked(folder / LOCK_NAME):
            continue
        saved = list(folder.glob("*.pt"))
        newest = max((p.stat().st_mtime for p in saved), default=0.0)
        if not saved or newest < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
