"""Take a trained role out of a study: ``kdx export`` and the Export button of the Study detail page.

An export folder holds the role's weights in one format, the study's ``config.yaml``, a ``model.json``
(the model spec, input shape and dtype, classes) so that :func:`rebuild` (or any kdcore user) builds the
same model again, and ``MODEL_CARD.md`` (:mod:`kdcore.model_card`). The formats:

* ``safetensors``: the state dict of the deployed model (of the network a view or an imported module
  wraps, so the file also serves as a ``checkpoint:`` of that architecture).
* ``onnx``: ``torch.onnx.export`` of the logits with a dynamic batch axis, then checked with ONNX Runtime
  on the study's test split: the same top-1 prediction on every sample (but exact ties) and the largest
  logit difference within ONNX_TOLERANCE x max(1, largest |logit|); otherwise nothing is written.
* ``hf``: ``save_pretrained`` of a Hugging Face model (``name: hf``) and of its tokenizer.

Everything is written into a hidden folder beside ``--out`` and renamed into place at the end, so a
failure leaves nothing half-written. ``register`` logs the files on the study (``export/<format>/...``)
and adds them to MLflow's Model Registry as a new version whose description is the model card.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdcore import __version__
from kdcore.config import ConfigError, ExperimentConfig, ModelConfig, config_from_yaml, is_teacher
from kdcore.data.splits import load_dataset
from kdcore.model_card import CARD_LIMIT, Deployment, model_card
from kdcore.models.base import ViewModel, build_model, count_parameters, probe_inputs
from kdcore.models.ensemble import Ensemble
from kdcore.models.imported import HookedModel
from kdcore.registry import data_meta
from kdcore.role_artifacts import WEIGHTS, weights_run
from kdcore.study import deployed, model_spec
from kdcore.tracker import STUDY_ROLE, RunRecord, TrackingUnavailable, role_key
from kdcore.tracking import MlflowTracker, list_studies, resolve_uri

FORMATS = ("safetensors", "onnx", "hf")
WEIGHT_FILES = {"safetensors": "model.safetensors", "onnx": "model.onnx"}  # hf: save_pretrained's own files
CONFIG_FILE, SPEC_FILE, CARD_FILE = "config.yaml", "model.json", "MODEL_CARD.md"
ONNX_TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| logit allowed, relative to max(1, largest |logit|)
ONNX_INPUT, ONNX_OUTPUT = "inputs", "logits"
CHECK_CHUNK = 512  # test samples per forward pass of the ONNX check
LATENCY_BATCH = 64  # test inputs timed for the card (the exported role and the teacher on the same batch)
LATENCY_REPEATS = 15
AS_IS = ", as is"  # end of kd.weights of a teacher used as it is: evaluated, never trained, no weights logged

log = logging.getLogger(__name__)


class ExportError(ValueError):
    """Input that cannot be exported, in one line naming the option and what is allowed."""


@dataclass
class LoadedRole:
    """A role of a study rebuilt from its logged weights: the deployed model on the CPU, in eval mode."""

    study_id: str
    study_name: str
    role: str
    cfg: ExperimentConfig
    config_text: str
    run: RunRecord
    model: nn.Module
    spec: dict[str, Any]  # what model.json holds


@dataclass
class ExportResult:
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


# --- finding the study and the role ---------------------------------------------------------------
def resolve_study(ref: str, uri: str | None = None) -> str:
    """A study id from its full id or a unique start of it (the short id the dashboard and folders show)."""
    ref = ref.strip()
    ids = list_studies(uri)["study_id"].tolist()
    if ref in ids:
        return ref
    found = [study_id for study_id in ids if ref and study_id.startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ExportError(f"study: no study {ref!r} in {resolve_uri(uri)}; kdx studies lists them")
    raise ExportError(f"study: {ref!r} starts {len(found)} study ids ({', '.join(s[:12] for s in found[:3])}"
                      f"{', ...' if len(found) > 3 else ''}); give more of the id")


def role_runs(tracker: MlflowTracker, study_id: str) -> dict[str, RunRecord]:
    """The study's role runs by role, in study order; of several runs of one role a finished one, else the newest."""
    runs: dict[str, RunRecord] = {}
    for run in tracker.find_runs({"kd.study_id": study_id}):  # newest first
        role = run.tags.get("kd.role")
        if role and role != STUDY_ROLE and (role not in runs or (run.status == "FINISHED"
                                                                 and runs[role].status != "FINISHED")):
            runs[role] = run
    return dict(sorted(runs.items(), key=lambda item: role_key(item[0])))


def exportable(runs: dict[str, RunRecord]) -> list[str]:
    """Roles with weights of their own: finished and not used as they are."""
    return [role for role, run in runs.items()
            if run.status == "FINISHED" and not run.tags.get("kd.weights", "").endswith(AS_IS)]


def role_model_config(cfg: ExperimentConfig, role: str) -> ModelConfig:
    """The architecture a role was built from: the student's for student, baseline and generations."""
    head, _, number = role.rpartition("_")
    if role in ("student", "baseline") or head == "generation":
        return cfg.student
    if is_teacher(role):
        return cfg.teacher_model(int(number) if head else 1)
    lists = {"assistant": cfg.distill.assistants, "peer": cfg.distill.peers}
    if head in lists and number.isdigit() and 0 < int(number) <= len(lists[head]):
        return lists[head][int(number) - 1]
    raise ExportError(f"--role: this version does not know how role {role} is built; allowed: teacher, "
                      "baseline, student, assistant_k, peer_k, generation_k")


def role_builder(cfg: ExperimentConfig, role: str, view: str | None = None, ensemble: int = 1
                 ) -> Callable[[], nn.Module]:
    """Builds a role's model as its study did: its architecture, on its ``view`` of multi-view inputs, as an
    ensemble of ``ensemble`` members, or the multi-exit student of spatial self-distillation."""
    meta = data_meta(cfg.data)
    shape, classes = tuple(meta["input_shape"]), int(meta["num_classes"])
    model_cfg = role_model_config(cfg, role)
    channels = (view, tuple(meta["views"][view])) if view else None
    if cfg.distill.mechanism == "self" and cfg.distill.self_kind == "spatial" and role in ("student", "baseline"):
        from kdcore.mechanisms.self_distill import MultiExit

        def multi_exit() -> nn.Module:
            multi = MultiExit(build_model(model_cfg, shape, classes), shape, classes, cfg.distill.exit)
            return multi if role == "student" else multi.deployed()
        return multi_exit

    def build() -> nn.Module:
        parts = [build_model(model_cfg, shape, classes, channels) for _ in range(ensemble)]
        return Ensemble(parts) if ensemble > 1 else parts[0]
    return build


def load_role(tracker: MlflowTracker, study_id: str, role: str) -> LoadedRole:
    """Rebuild ``role`` of a study from its config and logged weights (ExportError when it has none)."""
    short = study_id[:8]
    runs = role_runs(tracker, study_id)
    allowed = exportable(runs)
    choices = f"roles with weights: {', '.join(allowed) or 'none'}"
    if role not in runs:
        raise ExportError(f"--role: study {short} has no role {role!r}; {choices}")
    run = runs[role]
    if run.status != "FINISHED":
        raise ExportError(f"--role: {role} of study {short} did not finish ({run.status}), so it has no weights; "
                          f"{choices}")
    try:
        config_text = tracker.read_bytes(study_id, CONFIG_FILE).decode()
        cfg = config_from_yaml(config_text)
    except (ConfigError, FileNotFoundError, UnicodeDecodeError) as err:
        raise ExportError(f"study: the config.yaml of study {short} cannot be used: {_one_line(err)}") from None
    if run.tags.get("kd.weights", "").endswith(AS_IS):
        path = role_model_config(cfg, role).checkpoint
        raise ExportError(f"--role: {role} of study {short} has no weights of its own: it used {path} as it is "
                          f"(export that file instead); {choices}")
    try:
        state = torch.load(io.BytesIO(tracker.read_bytes(weights_run(run), WEIGHTS)), map_location="cpu",
                           weights_only=True)
    except TrackingUnavailable:
        raise
    except Exception:  # MLflow's own error types (or OSError) for an artifact that is not there
        raise ExportError(f"--role: {role} of study {short} stored no weights ({WEIGHTS}); {choices}") from None
    view = run.tags.get("kd.view") or None
    ensemble = int(run.tags.get("kd.ensemble", "1"))
    model = role_builder(cfg, role, view, ensemble)()
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ExportError(f"--role: the weights of {role} of study {short} do not fit its model as this version "
                          f"builds it: {_one_line(err)[:300]}") from None
    model = deployed(model).eval()
    meta = data_meta(cfg.data)
    model_cfg = role_model_config(cfg, role)
    spec = {
        "kdcore_version": __version__, "study_id": study_id, "role": role,
        "model": model_cfg.model_dump(mode="json"), "model_spec": model_spec(model_cfg),
        "view": view, "ensemble": ensemble,
        "exit": cfg.distill.exit if cfg.distill.mechanism == "self" and role in ("student", "baseline") else None,
        "dataset": cfg.data.name, "input_shape": list(meta["input_shape"]),
        "input_dtype": str(probe_inputs(meta, 1).dtype).removeprefix("torch."),
        "num_classes": int(meta["num_classes"]),
        "classes": [str(c) for c in meta.get("classes") or range(int(meta["num_classes"]))],
        "parameters": count_parameters(model),
    }
    name = tracker.get_run(study_id).name
    return LoadedRole(study_id, name, role, cfg, config_text, run, model, spec)


# --- the formats ------------------------------------------------------------------------------------
class Logits(nn.Module):
    """The model as a deployment runtime sees it: inputs in, logits out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def weights_module(model: nn.Module) -> nn.Module:
    """The network whose state dict is exported: the one a view model or an imported module wraps, which is
    what a ``checkpoint:`` of that architecture loads into."""
    while isinstance(model, (ViewModel, HookedModel)):
        model = model.net
    return model


def write_safetensors(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in weights_module(model).state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """``torch.onnx.export`` of the logits, one file, the batch axis dynamic."""
    batch = torch.export.Dim("batch")
    with _quiet_onnx():
        torch.onnx.export(Logits(model).eval(), (example,), str(path), input_names=[ONNX_INPUT],
                          output_names=[ONNX_OUTPUT], dynamic_shapes=({0: batch},), dynamo=True,
                          external_data=False, verbose=False)


def check_hf(model: nn.Module, role: str, spec: str) -> None:
    """Format hf takes a Hugging Face model: a wrapper whose ``.net`` has ``save_pretrained`` (``name: hf``)."""
    if not (hasattr(model, "net") and hasattr(model.net, "save_pretrained")):
        raise ExportError(f"--format: format hf needs a Hugging Face model (name hf); this {role} is {spec}; "
                          "allowed: safetensors, onnx")


def write_hf(model: nn.Module, folder: Path, role: str, spec: str) -> list[str]:
    """``save_pretrained`` of a Hugging Face model (the wrapper's ``.net``) and of its tokenizer when it loads;
    returns notes for what could not be saved."""
    check_hf(model, role, spec)
    model.net.save_pretrained(str(folder))
    source = getattr(model, "tokenizer_path", None)
    if not source:
        return ["no tokenizer saved: the model names no tokenizer_path"]
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(folder))
    except Exception as err:  # a folder without tokenizer files, transformers missing: the weights still go out
        return [f"no tokenizer saved: {source} does not load as one ({_one_line(err)[:200]})"]
    return []


@contextmanager
def _quiet_onnx() -> Iterator[None]:
    """The exporter's warnings and log lines (optional torchvision ops, deprecations) are not the user's."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on ``threads`` intra-op threads (sequential execution)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.inference_mode()
def torch_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    return torch.cat([model(chunk).logits.float() for chunk in x.split(CHECK_CHUNK)]).numpy()


@torch.inference_mode()
def _forward(model: nn.Module, x: torch.Tensor) -> object:
    return model(x)


def onnx_logits(session: Any, x: torch.Tensor) -> np.ndarray:
    return np.concatenate([session.run([ONNX_OUTPUT], {ONNX_INPUT: chunk.numpy()})[0]
                           for chunk in x.split(CHECK_CHUNK)])


def check_onnx(session: Any, model: nn.Module, x: torch.Tensor) -> str:
    """Compare ONNX Runtime with PyTorch on ``x``; the agreement in words, or ExportError when they differ."""
    expected = torch_logits(model, x)
    got = onnx_logits(session, x)
    classes = expected.shape[-1]
    expected, got = expected.reshape(-1, classes), got.reshape(-1, classes)  # sequences: one row per position
    allowed = ONNX_TOLERANCE * max(1.0, float(np.abs(expected).max()))
    diff = float(np.abs(got - expected).max())
    top2 = np.sort(expected, axis=1)[:, -2:] if classes > 1 else np.zeros((len(expected), 2))
    tie = (top2[:, 1] - top2[:, 0]) <= 2 * allowed  # a difference within tolerance may flip an exact tie
    differ = (got.argmax(1) != expected.argmax(1)) & ~tie
    agreement = (f"{len(expected) - int(differ.sum())} of {len(expected)} test predictions; max |logit diff| "
                 f"{diff:.2g} (allowed {ONNX_TOLERANCE:g} x max(1, largest |logit|) = {allowed:.2g})")
    if differ.any() or diff > allowed:
        raise ExportError(f"--format: the ONNX export disagrees with PyTorch: ONNX Runtime matches {agreement}; "
                          "nothing was written")
    return f"ONNX Runtime matches PyTorch on {agreement}"


def median_ms(run: Callable[[], object], repeats: int = LATENCY_REPEATS, warmup: int = 3) -> float:
    """Median wall time of ``run()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Time PyTorch on one thread (as ONNX Runtime is timed), and give the process its threads back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- the export ---------------------------------------------------------------------------------------
def default_out(study_id: str, role: str) -> Path:
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
        teacher = _teacher_timing(tracker, loaded, x[:LATENCY_BATCH])
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
            reloaded = _rebuild(loaded.cfg, spec, path)
            latency, runtime = median_ms(lambda: _forward(reloaded, batch)), f"PyTorch {torch.__version__} (1 thread)"
            artifact = path.name
        elif fmt == "onnx":
            path = folder / WEIGHT_FILES[fmt]
            try:
                write_onnx(model, probe_inputs({"input_shape": spec["input_shape"], "inputs": _kind(spec)}, 2),
                           path)
            except Exception as err:  # an operator the exporter does not cover, a data-dependent shape
                raise ExportError(f"--format: torch.onnx.export cannot export {spec['model_spec']}: "
                                  f"{_one_line(err)[:300]}; allowed: safetensors") from None
            try:
                session = onnx_session(path)
                check = check_onnx(session, model, x)
            except ExportError:
                raise
            except Exception as err:  # ONNX Runtime's own errors: an operator or a shape it does not take
                raise ExportError(f"--format: ONNX Runtime cannot run the export of {spec['model_spec']}: "
                                  f"{_one_line(err)[:300]}; allowed: safetensors") from None
            spec["onnx"] = {"input": ONNX_INPUT, "output": ONNX_OUTPUT, "batch_axis": 0, "tolerance": ONNX_TOLERANCE,
                            "check": check}
            feed = {ONNX_INPUT: batch.numpy()}
            latency = median_ms(lambda: session.run([ONNX_OUTPUT], feed))
            runtime = f"ONNX Runtime {_ort_version()} (1 thread)"
            artifact = path.name
        else:
            notes += write_hf(model, folder, loaded.role, spec["model_spec"])
            latency, runtime = median_ms(lambda: _forward(model, batch)), f"PyTorch {torch.__version__} (1 thread)"
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
                              f"{_one_line(err)[:200]}; allowed: safetensors") from None
        return probe_inputs(kind, LATENCY_BATCH), f"timed on zeros: the test split cannot be loaded ({err})"
    return x.to(probe_inputs(kind, 1).dtype), ""


def _teacher_timing(tracker: MlflowTracker, loaded: LoadedRole, batch: torch.Tensor
                    ) -> tuple[str | None, float | None, int | None]:
    """The teacher's PyTorch latency on the same batch and its parameter count; Nones when the study has none.
    Its architecture is built fresh (latency does not depend on the values of the weights)."""
    runs = role_runs(tracker, loaded.study_id)
    if "teacher" not in runs:
        return None, None, None
    cfg = loaded.cfg
    plain = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(update={"checkpoint": None})})
    try:
        teacher = deployed(role_builder(plain, "teacher", runs["teacher"].tags.get("kd.view") or None)()).eval()
    except Exception as err:  # a model source that cannot be built here any more
        log.warning("study %s: the teacher cannot be built for timing: %s", loaded.study_id, err)
        return None, None, None
    with one_torch_thread():
        latency = median_ms(lambda: _forward(teacher, batch))
    return f"PyTorch {torch.__version__} (1 thread)", latency, count_parameters(teacher)


def _rebuild(cfg: ExperimentConfig, spec: dict[str, Any], weights: Path) -> nn.Module:
    from kdcore.models.checkpoint import load_checkpoint

    model = deployed(role_builder(cfg, spec["role"], spec.get("view"), int(spec.get("ensemble") or 1))())
    return load_checkpoint(model, weights, spec["model_spec"]).eval()


def rebuild(folder: Path | str) -> nn.Module:
    """The model of a safetensors export, rebuilt with kdcore from its ``config.yaml`` and ``model.json``."""
    folder = Path(folder)
    spec = json.loads((folder / SPEC_FILE).read_text())
    cfg = config_from_yaml((folder / CONFIG_FILE).read_text())
    return _rebuild(cfg, spec, folder / WEIGHT_FILES["safetensors"])


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


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
