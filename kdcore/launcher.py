"""Start, queue and cancel studies as separate ``kdx run`` processes, so the dashboard never trains.

Each job is a folder ``<jobs root>/<job_id>/`` holding ``config.yaml``, ``job.json`` (its state,
replaced atomically) and ``log.txt`` (the process's output). A job waits for a slot before it
trains: one per CUDA GPU, else ``KDX_MAX_CONCURRENT`` CPU slots (default 1). A slot is an
``flock`` held for the life of the process, so a crashed job frees it without anyone's help.
Whether a job's process lives is another lock, ``alive.lock``, taken at launch and held by the
process until it exits: unlike a pid, it cannot be a zombie or belong to someone else.
Cancelling sends SIGINT: the study raises KeyboardInterrupt and marks its runs KILLED.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from kdcore import warm_start
from kdcore.data.splits import cache_dir
from kdcore.engine import resolve_device
from kdcore.study import FAILURE_TAG, StudyFailed
from kdcore.tracking import MlflowTracker, resolve_uri

if TYPE_CHECKING:
    from kdcore.config import ExperimentConfig
    from kdcore.study import Study, StudySummary

TERMINAL = ("finished", "failed", "killed")
POLL_SECONDS = 0.5  # how often a queued job looks for a free slot
QUEUED_REASON = "cancelled while queued"

_children: dict[int, subprocess.Popen[bytes]] = {}  # jobs this process started, by pid, polled so none stays a zombie


@dataclass
class Job:
    """One launched study as the launcher sees it; ``job.json`` holds every field but ``dir``."""

    job_id: str
    dir: Path
    status: str  # queued | running | finished | failed | killed
    study_id: str | None = None  # the MLflow parent run, once the process has created it
    slot: str | None = None  # cuda:N or cpu:N while it holds one
    pid: int | None = None
    created: float = 0.0  # epoch seconds
    name: str = ""  # the study's name, for display
    message: str = ""  # why it failed or was killed
    kind: str = "study"  # study | sweep (a sweep's studies, or a share of them, in one process)

    @property
    def log(self) -> Path:
        return self.dir / "log.txt"


# --- where jobs live --------------------------------------------------------------------------------
def jobs_root(root: Path | None = None) -> Path:
    """``root``, else $KDX_JOBS_DIR, else ``<cache dir>/jobs``."""
    return Path(root or os.environ.get("KDX_JOBS_DIR") or cache_dir() / "jobs")


def _read(job_dir: Path) -> Job:
    data = json.loads((job_dir / "job.json").read_text())
    return Job(dir=job_dir, **data)


def _write(job: Job) -> None:
    data = {k: v for k, v in asdict(job).items() if k != "dir"}
    tmp = job.dir / f"job.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(job.dir / "job.json")  # readers never see half a file


@contextlib.contextmanager
def _job_lock(job_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of job.json between the job, the dashboard and cancel."""
    with open(job_dir / "job.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _update(job_dir: Path, **changes: object) -> Job:
    with _job_lock(job_dir):
        job = replace(_read(job_dir), **changes)
        _write(job)
    return job


# --- the dashboard's side ---------------------------------------------------------------------------
def launch(cfg: ExperimentConfig, *, tracking_uri: str | None = None, root: Path | None = None) -> Job:
    """Queue ``cfg`` as a new job and start its ``kdx run`` process, detached from this one.

    The child logs to ``tracking_uri`` (else the config's, else the default store) through
    $MLFLOW_TRACKING_URI, so the dashboard reads what it writes.
    """
    _slot_names(resolve_device(cfg.train.device))  # a bad device or slot count fails here, not in a log
    uri = resolve_uri(tracking_uri or cfg.tracking.uri)
    # Create the store and experiment now: jobs starting together would race to create them.
    MlflowTracker(uri, cfg.tracking.experiment)
    cfg = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"uri": None})})

    job_dir = _new_job_dir(root)
    cfg.save(job_dir / "config.yaml")
    name = cfg.tracking.study_name or f"{cfg.data.name} {cfg.distill.method}"  # until the study names itself
    command = ["run", str(job_dir / "config.yaml"), "--job", str(job_dir), "--no-progress"]
    return _spawn(job_dir, command, uri, name, "study")


def launch_sweep(sweep_file: Path, args: list[str], *, name: str, tracking_uri: str | None = None,
                 root: Path | None = None, slots: int | None = None) -> Job:
    """Queue a sweep (``kdx sweep SWEEP_FILE ARGS``) as a job: one process that waits for a slot, then runs its
    studies one after another while holding it. ``slots`` raises the CPU slots its process may use (the
    workers of one sweep each hold one)."""
    uri = resolve_uri(tracking_uri)
    MlflowTracker(uri)  # create the store now: the job and whoever watches it would race to create it
    job_dir = _new_job_dir(root)
    command = ["sweep", str(Path(sweep_file).resolve()), *args, "--job", str(job_dir), "--tracking-uri", uri]
    return _spawn(job_dir, command, uri, name, "sweep", slots)


def sweep_folder(root: Path | None = None) -> Path:
    """A new folder for the files of a sweep composed in the dashboard (its sweep file and base config)."""
    folder = jobs_root(root) / "sweeps" / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    folder.mkdir(parents=True)
    return folder


def _new_job_dir(root: Path | None) -> Path:
    job_dir = jobs_root(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    job_dir.mkdir(parents=True)
    return job_dir


def _spawn(job_dir: Path, command: list[str], uri: str, name: str, kind: str, slots: int | None = None) -> Job:
    """Write the queued job and start ``kdx COMMAND`` for it, detached, logging to the job's ``log.txt``."""
    alive = os.open(job_dir / "alive.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(alive, fcntl.LOCK_EX)  # before job.json exists, so nobody sees a queued job without it
    job = Job(job_dir.name, job_dir, "queued", created=time.time(), name=name, kind=kind)
    _write(job)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    if slots is not None:
        env["KDX_MAX_CONCURRENT"] = str(max(slots, len(_slot_names(torch.device("cpu")))))
    try:
        with open(job.log, "wb") as log:
            # Forked by the warm starter when one runs (start-up paid once), else a new process. Either way it
            # has its own session, so cancel signals its process group alone, and it holds the lock on
            # alive.lock (passed to it) until it exits.
            pid = warm_start.start(job_dir.parent, command, env, log.fileno(), alive)
            if pid is None:
                proc = subprocess.Popen([sys.executable, "-m", "kdcore.cli", *command], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                        pass_fds=(alive,))
                _children[proc.pid] = proc
                pid = proc.pid
                warm_start.ensure(job_dir.parent)  # warm for the next job
    finally:
        os.close(alive)
    return _update(job_dir, pid=pid)


def get_job(job_id: str, root: Path | None = None) -> Job:
    """One job by id, its status checked against its process; ValueError if there is none."""
    job_dir = jobs_root(root) / job_id
    if Path(job_id).name != job_id or not (job_dir / "job.json").is_file():
        raise ValueError(f"job {job_id!r} does not exist in {jobs_root(root)}")
    _reap()
    return _refresh(job_dir)


def list_jobs(root: Path | None = None) -> list[Job]:
    """Every job, newest first; one whose process died unannounced is reported (and stored) failed."""
    _reap()
    folder = jobs_root(root)
    dirs = [d for d in folder.iterdir() if (d / "job.json").is_file()] if folder.is_dir() else []
    return sorted((_refresh(d) for d in dirs), key=lambda j: j.created, reverse=True)


def cancel(job_id: str, root: Path | None = None) -> Job:
    """Stop a queued or running job with SIGINT to its process group; an ended job is left as is.

    A queued job is marked killed at once: its process may not listen to signals yet (it is
    still importing) and checks this mark when it does.
    """
    job = get_job(job_id, root)
    if job.status in TERMINAL:
        return job
    if job.status == "queued":
        job = _update(job.dir, status="killed", message=QUEUED_REASON)
    if job.pid is not None and _alive(job.dir):
        with contextlib.suppress(ProcessLookupError):  # it ended in between
            os.killpg(job.pid, signal.SIGINT)  # start_new_session: its group id is its pid
    return job


def wait(job_id: str, timeout: float, root: Path | None = None) -> Job:
    """Poll until the job is finished, failed or killed and its process has exited.

    Waiting for the exit makes the study's status in the store final too. TimeoutError after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while (job := get_job(job_id, root)).status not in TERMINAL or _alive(job.dir):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {job.status} after {timeout:.0f}s")
        time.sleep(0.2)
    return job


def available_devices() -> list[dict[str, str]]:
    """What torch sees, for a device selector: each CUDA GPU with its free memory, MPS, the CPU.

    Reading free memory opens a CUDA context on each GPU in the calling process.
    """
    devices = []
    if torch.cuda.is_available():
        for k in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(k)
            devices.append({"value": f"cuda:{k}", "label": f"cuda:{k} · {torch.cuda.get_device_name(k)} · "
                                                          f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free"})
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append({"value": "mps", "label": "mps · Apple GPU"})
    devices.append({"value": "cpu", "label": f"cpu · {os.cpu_count()} cores"})
    return devices


def is_locked(path: Path) -> bool:
    """Whether some process holds an exclusive lock on ``path`` (a slot, or a job's ``alive.lock``)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _alive(job_dir: Path) -> bool:
    """Whether the job's process still runs: it holds ``alive.lock`` from launch until it exits."""
    return is_locked(job_dir / "alive.lock")


def _reap() -> None:
    """Collect the exit status of our finished children (``poll`` does it), so no zombie lingers."""
    for pid, proc in list(_children.items()):  # dict ops, not a rebuilt list: Streamlit calls from threads
        if proc.poll() is not None:
            _children.pop(pid, None)


def _refresh(job_dir: Path) -> Job:
    job = _read(job_dir)
    if job.status in TERMINAL or _alive(job_dir):
        return job
    return _update(job_dir, status="failed", slot=None,
                   message=_last_line(job.log) or f"process {job.pid} ended without a word")


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return lines[-1].strip() if lines else ""


# --- the job's side (inside the kdx run process) ----------------------------------------------------
def run_job(job_dir: Path, study: Study) -> StudySummary:
    """Create the study (SCHEDULED), wait for a slot, train it, and keep ``job.json`` current.

    Called by ``kdx run --job DIR``. A cancel while training is handled by :meth:`Study.run`; one
    before it (queued) marks the study KILLED here. Either way StudyFailed is raised.
    """
    # A process started from a background shell inherits SIGINT ignored; cancel relies on it. A cancel
    # that came while the process was starting (its SIGINT then lost) is read from job.json before any
    # study exists, so a job cancelled that early leaves no study behind.
    signal.signal(signal.SIGINT, _interrupt_once)
    slot_fd = None
    try:
        if _read(job_dir).status == "killed":
            raise KeyboardInterrupt
        study_id = study.start(scheduled=True)
        _update(job_dir, study_id=study_id, name=study.tracker.get_run(study_id).name)
        if _read(job_dir).status == "killed":  # cancelled before we could hear it
            raise KeyboardInterrupt
        slot, slot_fd = _acquire_slot(job_dir, _slot_names(study.device))
        if slot.startswith("cuda") and study.device.index is None:  # auto/cuda: pin to the free GPU
            study.device = torch.device(slot)
            torch.cuda.set_device(study.device)
        _update(job_dir, status="running", slot=slot)
        summary = study.run()
    except KeyboardInterrupt as err:  # raised before Study.run's own handler took over: nothing trained
        if study.study_id is not None:
            study.tracker.set_tags(study.study_id, {FAILURE_TAG: QUEUED_REASON})
            study.tracker.end_run(study.study_id, "KILLED")
            study.tracker.flush(study.study_id)  # in the store before job.json says killed
        _update(job_dir, status="killed", slot=None, message=QUEUED_REASON)
        raise StudyFailed(study.study_id or "(not created)", QUEUED_REASON) from err
    except StudyFailed as err:
        killed = isinstance(err.__cause__, KeyboardInterrupt)
        _update(job_dir, status="killed" if killed else "failed", slot=None, message=err.reason)
        raise
    finally:
        if slot_fd is not None:
            os.close(slot_fd)  # free the slot for the next job as soon as training stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the study is FINISHED; a late cancel changes nothing
    _update(job_dir, status="finished", slot=None)
    return summary


SweepBody = Callable[[Callable[[str], None]], tuple[str, str]]  # (record the sweep's run id) -> (status, message)


def run_sweep_job(job_dir: Path, device: torch.device, body: SweepBody) -> None:
    """Wait for a slot, then run ``body`` (a sweep's studies, or a share of them) while holding it.

    Called by ``kdx sweep --job DIR``. ``body`` gets a function that records the sweep's run id on the job and
    returns its end: ``("finished", "")`` or ``("failed", why)``. A cancel stops the study that is training, as
    for a study's job; the job ends killed and the KeyboardInterrupt goes on up.
    """
    signal.signal(signal.SIGINT, _interrupt_once)
    slot_fd = None
    try:
        if _read(job_dir).status == "killed":
            raise KeyboardInterrupt
        slot, slot_fd = _acquire_slot(job_dir, _slot_names(device))
        _update(job_dir, status="running", slot=slot)
        status, message = body(lambda run_id: _update(job_dir, study_id=run_id))
    except KeyboardInterrupt as err:
        _update(job_dir, status="killed", slot=None, message=str(err) or QUEUED_REASON)
        raise
    except BaseException as err:
        _update(job_dir, status="failed", slot=None, message=f"{type(err).__name__}: {err}"[:4000])
        raise
    finally:
        if slot_fd is not None:
            os.close(slot_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _update(job_dir, status=status, slot=None, message=message)


def _interrupt_once(signum: int, frame: object) -> None:
    """Raise KeyboardInterrupt once; a second cancel must not interrupt the study's cleanup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _slot_names(device: torch.device) -> list[str]:
    """The slots a study on ``device`` may take: its GPU, any GPU (auto/cuda), else the CPU slots."""
    if device.type == "cuda":
        return [f"cuda:{device.index}"] if device.index is not None else \
            [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    raw = os.environ.get("KDX_MAX_CONCURRENT", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"KDX_MAX_CONCURRENT: {raw!r} is not a positive integer")
    return [f"cpu:{k}" for k in range(int(raw))]


def _acquire_slot(job_dir: Path, names: list[str]) -> tuple[str, int]:
    """Block until one of ``names`` is free and hold it; jobs take slots in launch order."""
    folder = job_dir.parent / "slots"
    folder.mkdir(exist_ok=True)
    while True:
        if not _older_queued(job_dir):
            for name in names:
                fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return name, fd
                except BlockingIOError:
                    os.close(fd)
        time.sleep(POLL_SECONDS)


def _older_queued(job_dir: Path) -> bool:
    """Whether a job launched before this one is still alive and waiting (it goes first)."""
    me = _read(job_dir)
    return any(j.status == "queued" and (j.created, j.job_id) < (me.created, me.job_id)
               for j in list_jobs(job_dir.parent))
