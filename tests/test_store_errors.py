"""A tracking store that cannot be used is one line and exit code 2 within seconds, through the real ``kdx``;
several processes opening one new SQLite store at once all succeed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdcore.tracker import TrackingUnavailable
from kdcore.tracking import MlflowTracker, list_studies, open_store

ROOT = Path(__file__).resolve().parents[1]
KDX = shutil.which("kdx", path=str(Path(sys.executable).parent))
LIMIT_S = 15  # a bad store is reported within this, start-up of the command included
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """Tracking servers that fail: nothing listening, a full accept queue, and one that never answers."""
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()  # the port is free again: connecting is refused
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    for _ in range(4):  # the accept queue fills up: a further connect gets no answer at all
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(blackhole.getsockname())
        fillers.append(filler)
    silent = socket.socket()  # the kernel completes the connection, nobody ever reads the request
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    yield {"refused": f"http://127.0.0.1:{refused_port}",
           "blackholed": f"http://127.0.0.1:{blackhole.getsockname()[1]}",
           "silent": f"http://127.0.0.1:{silent.getsockname()[1]}"}
    for sock in [blackhole, silent, *fillers]:
        sock.close()


def bad_uri(case: str, tmp_path: Path, servers: dict[str, str]) -> tuple[str, str]:
    """A tracking URI that cannot be used, and the words its error line must contain."""
    if case == "read-only folder":
        if IS_ROOT:
            pytest.skip("root may write into a read-only folder")
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return f"sqlite:///{folder / 'mlflow.db'}", f"folder {folder} is not writable"
    if case == "cannot be created":
        (tmp_path / "a-file").write_text("")
        uri = f"sqlite:///{tmp_path / 'a-file' / 'sub' / 'mlflow.db'}"
        return uri, "its folder cannot be created (not a directory)"
    if case == "bare path":
        path = tmp_path / "x" / "mlflow.db"
        return str(path), f"is a path, not a sqlite:/// URI; set MLFLOW_TRACKING_URI or --tracking-uri to sqlite:///{path}"
    if case == "relative path":
        return "./somewhere", f"to sqlite:///{tmp_path / 'somewhere' / 'mlflow.db'}"
    if case == "refused":
        return servers["refused"], f"cannot reach the tracking server at {servers['refused']}: connection refused"
    waited = "no connection within 3 s" if case == "blackholed" else "no answer within 5 s"
    return servers[case], f"cannot reach the tracking server at {servers[case]}: {waited}"


def run_kdx(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.monotonic()
    done = subprocess.run([KDX, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def assert_one_line_error(done: subprocess.CompletedProcess[str], elapsed: float, expected: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("kdx: error: "), done.stderr[-2000:]
    assert expected in lines[0]
    assert "Traceback" not in done.stdout + done.stderr and done.stdout == ""
    assert elapsed < LIMIT_S, f"took {elapsed:.1f}s: {lines[0]}"


STUDIES_CASES = ["read-only folder", "cannot be created", "bare path", "relative path", "refused", "blackholed",
                 "silent"]
RUN_CASES = ["read-only folder", "cannot be created", "bare path", "blackholed"]  # one of each kind of check


@pytest.mark.parametrize("case", STUDIES_CASES)
def test_studies_on_a_bad_store_is_one_line(case: str, tmp_path: Path, servers: dict[str, str]) -> None:
    uri, expected = bad_uri(case, tmp_path, servers)
    assert_one_line_error(*run_kdx(["studies", "--tracking-uri", uri], tmp_path), expected)


@pytest.mark.parametrize("case", RUN_CASES)
def test_run_on_a_bad_store_is_one_line_before_training(case: str, tmp_path: Path, servers: dict[str, str]) -> None:
    uri, expected = bad_uri(case, tmp_path, servers)
    done, elapsed = run_kdx(["run", str(ROOT / "examples" / "digits_kd.yaml"), "train.epochs=1",
                             "--tracking-uri", uri], tmp_path)
    assert_one_line_error(done, elapsed, expected)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("case", STUDIES_CASES)
def test_library_raises_tracking_unavailable(case: str, tmp_path: Path, servers: dict[str, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri, expected = bad_uri(case, tmp_path, servers)
    for call in (list_studies, MlflowTracker):  # both open the store through open_store
        with pytest.raises(TrackingUnavailable) as err:
            call(uri)
        assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_file_sqlite_cannot_open_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    (tmp_path / "gone.db").symlink_to(tmp_path / "no-such-folder" / "mlflow.db")  # MLflow retries this for minutes
    for name, reason in (("notes.db", "file is not a database"), ("gone.db", "unable to open database file")):
        started = time.monotonic()
        with pytest.raises(TrackingUnavailable, match=rf"{name}: {reason}; set MLFLOW_TRACKING_URI"):
            open_store(f"sqlite:///{tmp_path / name}")
        assert time.monotonic() - started < 5


OPEN_TRACKER = """
import sys, time
from pathlib import Path
from kdcore.tracking import MlflowTracker, open_store
uri, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
open_store(uri)
ready.touch()
while not go.exists():
    time.sleep(0.01)
MlflowTracker(uri, "shared")
"""


def test_processes_opening_a_new_store_and_experiment_at_once_all_succeed(tmp_path: Path) -> None:
    uri, count, go = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}", 4, tmp_path / "go"
    children = [subprocess.Popen([sys.executable, "-c", OPEN_TRACKER, uri, str(tmp_path / f"ready{k}"), str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(count)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{k}").exists() for k in range(count)) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # every child has opened the store: they all create the experiment in the same instant
    results = [(child.wait(timeout=120), child.stderr.read()) for child in children]
    assert results == [(0, "")] * count
    assert sorted(e.name for e in MlflowTracker(uri, "shared").client.search_experiments()) == ["Default", "shared"]


def test_kdx_studies_started_together_on_a_new_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    children = [subprocess.Popen([KDX, "studies", "--tracking-uri", uri], cwd=tmp_path, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert (child.returncode, err) == (0, "") and out.startswith("no studies in")
