"""Sample studies stored as plain, diffable JSON files and replayed into a tracking store.

A fresh install loads them (``kdx samples load``) so the dashboard opens on real studies;
``kdx samples make`` regenerates them from ``sample_runs/manifest.yaml`` with this very code.
One file holds one study: the parent run and its role runs with their names, statuses, times,
tags, params and every metric's full history, the ``config.yaml`` of the study, and each role's
validation, test and shifted-test predictions rounded to 4 decimals (validation only where the study
logged it). Never weights: a replayed teacher
loses its fingerprint, so the offline mechanism never tries to reuse it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, model_validator

from kdcore.config import load_config
from kdcore.tracker import DIAGNOSIS_METRICS, STUDY_ROLE, TrackingUnavailable
from kdcore.tracking import (
    MlflowTracker,
    StoredRun,
    delete_runs,
    end_run_at,
    load_predictions,
    log_metric_history,
    read_artifact,
    start_run_at,
    study_runs,
)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "sample_runs"  # in a source checkout
MANIFEST = SAMPLES_DIR / "manifest.yaml"
SAMPLE_EXPERIMENT = "kd-explorer-samples"
FORMAT = 1  # bump when the file layout changes
SAMPLE_TAG, SOURCE_TAG, HASH_TAG = "kd.sample", "kd.sample_source", "kd.sample_hash"
KEPT_MLFLOW_TAGS = {"mlflow.note.content"}  # the run's description; other mlflow.* tags are the store's own
# point at weights a sample does not have
WEIGHT_TAGS = {"kd.teacher_fingerprint", "kd.baseline_fingerprint", "kd.reused_from"}
PREDICTIONS = "predictions.npz"
ATTENTIONS = "attentions.npz"

Status = Literal["FINISHED", "FAILED", "KILLED"]  # only a study that is over makes a sample
SPLITS = ("val", "test", "shift")  # the splits of a role's predictions, by their key prefix


class SampleError(ValueError):
    """A sample file or manifest that cannot be read, checked, written or replayed: one line naming it."""


# --- the file format ------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleRun(_Strict):
    """One run: what the store needs to recreate it as it was."""

    name: str
    status: Status
    start_time: int  # ms since the epoch
    end_time: int | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, list[tuple[int, float, int]]]  # key -> [step, value, timestamp ms] rows


class Predictions(_Strict):
    """A role's per-sample probabilities (rounded) and labels, as ``predictions.npz`` holds them.

    The validation split is optional: samples made before roles logged it load as they are, and what
    needs it is then not measurable."""

    val_probs: list[list[float]] | None = None
    val_labels: list[int] | None = None
    test_probs: list[list[float]]
    test_labels: list[int]
    shift_probs: list[list[float]]
    shift_labels: list[int]

    @model_validator(mode="after")
    def _shapes_agree(self) -> Predictions:
        if (self.val_probs is None) != (self.val_labels is None):
            raise ValueError("val_probs and val_labels come together: give both or neither")
        for split in SPLITS:
            probs, labels = getattr(self, f"{split}_probs"), getattr(self, f"{split}_labels")
            if probs is None:
                continue
            if len(probs) != len(labels):
                raise ValueError(f"{split}_probs has {len(probs)} rows but {split}_labels has {len(labels)}")
            if len({len(row) for row in probs}) > 1:
                raise ValueError(f"{split}_probs rows differ in length")
        return self

    def npz(self) -> bytes:
        """The ``predictions.npz`` artifact rebuilt from the summary (float32 probabilities)."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{key: np.asarray(value, np.float32 if key.endswith("probs") else np.int64)
                                       for key, value in self.model_dump(exclude_none=True).items()})
        return buffer.getvalue()


class Attentions(_Strict):
    """A role's attention maps on the first test inputs, as ``attentions.npz`` holds them (rounded)."""

    maps: list  # (layers, N, heads, T, T) nested lists of probabilities
    inputs: list[list[int]]  # (N, T) token ids

    def npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, maps=np.asarray(self.maps, np.float16), inputs=np.asarray(self.inputs, np.int64))
        return buffer.getvalue()


class SampleRole(SampleRun):
    predictions: Predictions | None  # None when the role ended before writing any
    attentions: Attentions | None = None  # only for models that attend


class SampleStudy(_Strict):
    """The content of one sample file."""

    format: Literal[1]
    config_yaml: list[str]  # the config.yaml artifact, line by line so a diff shows the changed line
    study: SampleRun
    roles: list[SampleRole]

    @model_validator(mode="after")
    def _roles_tagged(self) -> SampleStudy:
        if self.study.tags.get("kd.role") != STUDY_ROLE:
            raise ValueError(f"study.tags: kd.role must be {STUDY_ROLE!r}, got {self.study.tags.get('kd.role')!r}")
        for k, role in enumerate(self.roles):
            if role.tags.get("kd.role") in (None, STUDY_ROLE):
                raise ValueError(f"roles.{k}.tags: kd.role must name a role, got {role.tags.get('kd.role')!r}")
        return self


def read_sample(path: Path) -> tuple[SampleStudy, str]:
    """Parse and check a whole sample file; return it with its content hash, or raise a one-line SampleError."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SampleError(f"sample {path.name}: cannot be read ({err.strerror})") from None
    try:
        sample = SampleStudy.model_validate_json(data)
    except ValidationError as err:
        raise SampleError(f"sample {path.name}: {_first_error(err)}") from None
    try:  # a YAML mapping is enough here: checking it as a config would import torch and every model
        config = yaml.safe_load("".join(sample.config_yaml))
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict):
        raise SampleError(f"sample {path.name}: config_yaml: not a YAML mapping of config sections")
    return sample, hashlib.sha256(data).hexdigest()[:16]


def _first_error(err: ValidationError, prefix: str = "") -> str:
    """``where: what`` for the first problem pydantic found, e.g. ``roles.0.status: Input should be ...``."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    return f"{prefix}{loc}: {msg}" if loc else msg


# --- export ---------------------------------------------------------------------------------------
def export_study(study_id: str, folder: Path, uri: str | None = None) -> Path:
    """Write a finished study as ``folder/<slug of its name>.json`` (overwriting an earlier export)."""
    runs = study_runs(study_id, uri)
    parent = runs[0]
    if parent.tags.get("kd.role") != STUDY_ROLE:
        raise SampleError(f"run {study_id} is not a study (its kd.role is {parent.tags.get('kd.role')!r})")
    running = [f"{run.name} is {run.status}" for run in runs if run.status not in get_args(Status)]
    if running:
        raise SampleError(f"study {study_id} is not over: {', '.join(running)}")
    doc = {
        "format": FORMAT,
        "config_yaml": read_artifact(study_id, "config.yaml", uri).decode().splitlines(keepends=True),
        "study": _run_doc(parent),
        "roles": [_run_doc(run) | {"predictions": _predictions_doc(run, uri)} | _attentions_doc(run, uri)
                  for run in runs[1:]],
    }
    text = _dumps(doc) + "\n"
    SampleStudy.model_validate_json(text)  # what we write, we can load
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_slug(parent.name) or study_id}.json"
    path.write_text(text)
    return path


def _run_doc(run: StoredRun) -> dict[str, Any]:
    tags = {k: v for k, v in sorted(run.tags.items()) if not k.startswith("mlflow.") or k in KEPT_MLFLOW_TAGS}
    return {"name": run.name, "status": run.status, "start_time": run.start_time, "end_time": run.end_time,
            "tags": tags, "params": dict(sorted(run.params.items())),
            "metrics": {key: [list(row) for row in rows] for key, rows in sorted(run.history.items())}}


def _predictions_doc(run: StoredRun, uri: str | None) -> dict[str, list] | None:
    if PREDICTIONS not in run.artifacts:
        return None
    arrays = load_predictions(run.run_id, uri)
    return {key: (np.round(arrays[key].astype(np.float64), 4) if key.endswith("probs")
                  else arrays[key].astype(np.int64)).tolist()
            for key in Predictions.model_fields if key in arrays}


def _attentions_doc(run: StoredRun, uri: str | None) -> dict[str, Any]:
    if ATTENTIONS not in run.artifacts:
        return {}
    with np.load(io.BytesIO(read_artifact(run.run_id, ATTENTIONS, uri))) as found:
        return {"attentions": {"maps": np.round(found["maps"].astype(np.float64), 3).tolist(),
                               "inputs": found["inputs"].astype(np.int64).tolist()}}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _dumps(value: Any, indent: str = "") -> str:
    """JSON with a list of numbers (a metric row, a row of probabilities) on one line: short, readable diffs."""
    inner = indent + " "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and not all(isinstance(v, (int, float)) for v in value):
        return "[\n" + ",\n".join(inner + _dumps(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, separators=(",", ":"))


# --- load -----------------------------------------------------------------------------------------
def load_samples(folder: Path, uri: str | None = None, experiment: str = SAMPLE_EXPERIMENT) -> int:
    """Replay every sample file of ``folder`` not loaded yet into the store; return how many were loaded.

    Every file is checked before any run is created, so a malformed one leaves the store untouched; one
    the store refuses while it is replayed is removed again, so no study is ever half loaded.
    A file counts as loaded when a study carries its name and content hash, so loading twice adds nothing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SampleError(f"sample folder {str(folder)!r} does not exist")
    samples = [(path, *read_sample(path)) for path in sorted(folder.glob("*.json"))]
    if not samples:
        return 0
    tracker = MlflowTracker(uri, experiment)
    loaded = 0
    for path, sample, digest in samples:
        marks = {SOURCE_TAG: path.name, HASH_TAG: digest}
        if not tracker.find_runs({"kd.role": STUDY_ROLE, **marks}):
            try:
                _replay(tracker, sample, {SAMPLE_TAG: "true", **marks})
            except TrackingUnavailable:
                raise
            except Exception as err:  # e.g. a metric name or a value the store refuses
                cause = " ".join(str(err).split()) or type(err).__name__
                raise SampleError(f"sample {path.name}: not loaded, the store refused it: {cause[:300]}") from err
            loaded += 1
    return loaded


def _replay(tracker: MlflowTracker, sample: SampleStudy, marks: dict[str, str]) -> None:
    """Recreate one study with its original times; on any error remove what was created of it."""
    created: list[str] = []
    try:
        finished = sample.study.status == "FINISHED"  # diagnosed again below: its recorded diagnosis is not replayed
        parent = _replay_run(tracker, sample.study, marks, created, DIAGNOSIS_METRICS if finished else ())
        tracker.set_tags(parent, {"kd.study_id": parent})
        tracker.log_bytes(parent, "config.yaml", "".join(sample.config_yaml).encode())
        for role in sample.roles:
            run_id = _replay_run(tracker, role, {**marks, "kd.study_id": parent, "mlflow.parentRunId": parent},
                                 created)
            if role.predictions is not None:
                tracker.log_bytes(run_id, PREDICTIONS, role.predictions.npz())
            if role.attentions is not None:
                tracker.log_bytes(run_id, ATTENTIONS, role.attentions.npz())
            end_run_at(tracker, run_id, role.status, role.end_time)
        end_run_at(tracker, parent, sample.study.status, sample.study.end_time)
        if finished:
            from kdcore.study_results import diagnose, refresh_siblings

            diagnose(tracker, parent)  # findings.json and gates.json, by this version's detectors
            refresh_siblings(tracker, parent)  # samples at other temperatures loaded before it read it too
    except BaseException:
        delete_runs(tracker, created)
        raise


def _replay_run(tracker: MlflowTracker, run: SampleRun, extra_tags: dict[str, str], created: list[str],
                skip: tuple[str, ...] = ()) -> str:
    tags = {k: v for k, v in run.tags.items() if k not in WEIGHT_TAGS} | extra_tags
    run_id = start_run_at(tracker, run.name, tags, run.params, run.start_time)
    created.append(run_id)
    log_metric_history(tracker, run_id, {key: list(rows) for key, rows in run.metrics.items() if key not in skip})
    return run_id


# --- make -----------------------------------------------------------------------------------------
class ManifestEntry(_Strict):
    config: str  # path relative to the repository root (the folder above the manifest's)
    overrides: list[str] = []


def read_manifest(manifest: Path) -> list[ManifestEntry]:
    """The manifest's entries, or a one-line SampleError naming the problem."""
    manifest = Path(manifest)
    try:
        return TypeAdapter(list[ManifestEntry]).validate_python(yaml.safe_load(manifest.read_text()))
    except ValidationError as err:
        raise SampleError(f"manifest {manifest.name}: {_first_error(err, 'entry ')}") from None
    except (OSError, yaml.YAMLError) as err:
        raise SampleError(f"manifest {manifest}: {type(err).__name__}: {err}".splitlines()[0]) from None


def make_samples(folder: Path, manifest: Path, only: str | None = None) -> list[Path]:
    """Run every study of the manifest on a fresh temporary store and export it into ``folder``.

    Each study gets its own store so none reuses another's teacher: every sample has full curves.
    Files of ``folder`` this run did not produce are removed; ``folder`` is only touched once all succeed.
    With ``only``, just the entries whose study name contains it run, and every other file stays.
    """
    from kdcore.study import Study  # torch and the models: only when studies are made

    folder, root = Path(folder), Path(manifest).resolve().parent.parent
    configs = [load_config(root / entry.config, entry.overrides) for entry in read_manifest(manifest)]
    if only is not None:
        configs = [cfg for cfg in configs if only in (cfg.tracking.study_name or "")]
        if not configs:
            raise SampleError(f"--only: no entry of {Path(manifest).name} has a study name containing {only!r}")
    with tempfile.TemporaryDirectory() as tmp:
        made: list[Path] = []
        for k, cfg in enumerate(configs):
            store = Path(tmp) / f"store{k}"
            store.mkdir()
            uri = f"sqlite:///{store / 'mlflow.db'}"
            summary = Study(cfg, MlflowTracker(uri, cfg.tracking.experiment), progress=False).run()
            path = export_study(summary.study_id, Path(tmp) / "out", uri)
            if path in made:
                raise SampleError(f"manifest {Path(manifest).name}: entry {k} makes {path.name} again; "
                                 "give it its own tracking.study_name override")
            made.append(path)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in sorted(set(folder.glob("*.json")) - {folder / p.name for p in made} if only is None else ()):
            stale.unlink()
        return [Path(shutil.move(path, folder / path.name)) for path in made]
