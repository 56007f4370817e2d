"""Take a trained role out of a study: ``kdx export`` and the Export button of the Study detail page.

An export folder holds the role's weights in one format (:mod:`kdcore.export_formats`), the study's
``config.yaml``, a ``model.json`` (the model spec, input shape and dtype, classes) so that
:func:`kdcore.export_roles.rebuild` (or any kdcore user) builds the same model again, and ``MODEL_CARD.md``
(:mod:`kdcore.model_card`, with the latency of :mod:`kdcore.export_latency`).

Everything is written into a hidden folder beside ``--out`` and renamed into place at the end, so a
failure leaves nothing half-written. ``register`` logs the files on the study (``export/<format>/...``)
and adds them to MLflow's Model Registry as a new version whose description is the model card.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from kdcore.data.splits import load_dataset
from kdcore.export_error import ExportError, one_line
from kdcore.export_formats import FORMATS, WEIGHT_FILES, check_hf, write_checked_onnx, write_hf, write_safetensors
from kdcore.export_latency import (
    LATENCY_BATCH,
    PYTORCH_RUNTIME,
    one_torch_thread,
    onnx_ms,
    onnx_runtime,
    pytorch_ms,
    teacher_timing,
)
from kdcore.export_roles import CONFIG_FILE, SPEC_FILE, LoadedRole, load_role, rebuild_model, resolve_study
from kdcore.model_card import CARD_LIMIT, Deployment, model_card
from kdcore.models.base import probe_inputs
from kdcore.tracking import MlflowTracker

CARD_FILE = "MODEL_CARD.md"


@dataclass
class ExportResult:
    """A finished export: where it went, what it holds and costs, and its registered version if any."""

    folder: Path
    study_id: str
    role: str
    format: str
    files: dict[str, int]  # relative path -> bytes
    deployment: Deployment
    card: str
    registered: tuple[str, str] | None = None  # (name, version)
    source: str | None = None  # the registered version's artifact URI
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What ``kdx export`` prints and the dashboard shows."""
        d = self.deployment
        files = ", ".join(f"{name} ({_size(n)})" if name == d.artifact else name for name, n in self.files.items())
        lines = [f"exported {self.role} of study {self.study_id[:8]} as {self.format} to {self.folder}",
                 f"  files: {files}"]
        if d.check:
            lines.append(f"  check: {d.check}")
        lines.append(f"  latency: {d.summary()}")
        lines += [f"  note: {note}" for note in self.notes]
        if self.registered:
            lines.append(f"  registered: {self.registered[0]} version {self.registered[1]} (source {self.source})")
        return lines


def default_out(study_id: str, role: str) -> Path:
    """The folder an export goes to when no ``--out`` is given: ``exports/<short id>-<role>``."""
    return Path("exports") / f"{study_id[:8]}-{role}"


def check_name(name: str) -> str:
    """A registered model name as MLflow takes it."""
    name = name.strip()
    if not name:
        raise ExportError("--register: give a model name, e.g. digits-student")
    if "/" in name or ":" in name:
        raise ExportError(f"--register: model name {name!r} cannot contain '/' or ':'; use letters, digits, "
                          "'-', '_' or '.'")
    return name


def export_study(study: str, *, role: str = "student", fmt: str = "safetensors", out: Path | str | None = None,
                 force: bool = False, register: str | None = None, uri: str | None = None) -> ExportResult:
    """Export ``role`` of ``study`` (an id or a unique start of one) in format ``fmt`` into ``out``
    (default ``exports/<short id>-<role>``), optionally registered as ``register`` in the Model Registry."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    name = check_name(register) if register is not None else None
    study_id = resolve_study(study, uri)
    tracker = MlflowTracker.for_run(study_id, uri)
    loaded = load_role(tracker, study_id, role)
    if fmt == "hf":
        check_hf(loaded.model, role, loaded.spec["model_spec"])
    target = Path(out) if out is not None else default_out(study_id, role)
    if target.exists() and not target.is_dir():
        raise ExportError(f"--out: {target} is a file; give a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ExportError(f"--out: {target} exists and is not empty; choose another folder or replace it (--force)")
    x, note = _test_inputs(loaded, required=fmt == "onnx")

    created = _missing_parents(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{time.time_ns()}.partial")  # hidden until it is complete
    staging.mkdir()
    try:
        deployment, notes = _write(loaded, fmt, staging, x)
        notes += [note] if note else []
        teacher = teacher_timing(tracker, loaded, x[:LATENCY_BATCH])
        deployment.teacher_runtime, deployment.teacher_latency_ms, deployment.teacher_params = teacher
        card = model_card(tracker, study_id, role, fmt, deployment, name)
        (staging / CARD_FILE).write_text(card)
        files = {p.relative_to(staging).as_posix(): p.stat().st_size for p in sorted(staging.rglob("*")) if p.is_file()}
        result = ExportResult(target, study_id, role, fmt, files, deployment, card, notes=notes)
        if name:
            result.registered, result.source = register_version(tracker, study_id, staging, fmt, role, name, card)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # the parents this export made, deepest first, when they stayed empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return result


def _write(loaded: LoadedRole, fmt: str, folder: Path, x: torch.Tensor) -> tuple[Deployment, list[str]]:
    """Write the weights, config and model.json into ``folder``; check (ONNX) and time the written artifact on the
    test inputs ``x``. Returns what it cost and notes on what could not be written."""
    model, spec, batch = loaded.model, dict(loaded.spec, format=fmt), x[:LATENCY_BATCH]
    (folder / CONFIG_FILE).write_text(loaded.config_text)
    notes: list[str] = []
    check = None
    with one_torch_thread():
        if fmt == "safetensors":
            path = folder / WEIGHT_FILES[fmt]
            write_safetensors(model, path, {"study_id": loaded.study_id, "role": loaded.role})
            reloaded = rebuild_model(loaded.cfg, spec, path)
            latency, runtime = pytorch_ms(reloaded, batch), PYTORCH_RUNTIME
            artifact = path.name
        elif fmt == "onnx":
            path = folder / WEIGHT_FILES[fmt]
            example = probe_inputs({"input_shape": spec["input_shape"], "inputs": _kind(spec)}, 2)
            session, spec["onnx"] = write_checked_onnx(model, example, x, path, spec["model_spec"])
            check = spec["onnx"]["check"]
            latency, runtime = onnx_ms(session, batch), onnx_runtime()
            artifact = path.name
        else:
            notes += write_hf(model, folder, loaded.role, spec["model_spec"])
            latency, runtime = pytorch_ms(model, batch), PYTORCH_RUNTIME
            artifact = "model.safetensors" if (folder / "model.safetensors").exists() else ""
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n")
    size = (folder / artifact).stat().st_size if artifact else sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file())
    deployment = Deployment(runtime=runtime, latency_ms=latency, batch=len(batch), params=spec["parameters"],
                            file_bytes=size, artifact=artifact, check=check)
    return deployment, notes


def _kind(spec: dict[str, Any]) -> str:
    return "tokens" if spec["input_dtype"] == "int64" else "tensor"


def _test_inputs(loaded: LoadedRole, required: bool) -> tuple[torch.Tensor, str]:
    """The study's test inputs, as the model takes them, and a note; where the split cannot be loaded, zeros of
    the input shape (a latency batch) unless ``required`` (the ONNX check needs real inputs)."""
    kind = {"input_shape": loaded.spec["input_shape"], "inputs": _kind(loaded.spec)}
    try:
        x = load_dataset(loaded.cfg.data).test.x
    except Exception as err:  # a data source whose files moved, a dataset that must be downloaded
        if required:
            raise ExportError(f"--format: the ONNX check needs the study's test split, which cannot be loaded: "
                              f"{one_line(err)[:200]}; allowed: safetensors") from None
        return probe_inputs(kind, LATENCY_BATCH), f"timed on zeros: the test split cannot be loaded ({err})"
    return x.to(probe_inputs(kind, 1).dtype), ""


def register_version(tracker: MlflowTracker, study_id: str, folder: Path, fmt: str, role: str, name: str,
                     card: str) -> tuple[tuple[str, str], str]:
    """Log ``folder`` on the study under ``export/<format>/<role>-<UTC time>`` (a path of its own, so a later
    export never changes a registered version's files) and register it as a new version of ``name``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = f"export/{fmt}/{role}-{stamp}"
    description = card if len(card) <= CARD_LIMIT else (
        card[:CARD_LIMIT - 200].rsplit("\n", 1)[0] + f"\n\n(cut here: the whole card is {path}/{CARD_FILE})\n")
    version, source = tracker.register_folder(study_id, folder, path, name, description)
    return (name, version), source


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished folder to ``target``; an existing one (allowed by the caller) goes only after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{time.time_ns()}.old")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _missing_parents(target: Path) -> list[Path]:
    """The folders above ``target`` that do not exist yet, deepest first."""
    missing = []
    for parent in target.absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"
