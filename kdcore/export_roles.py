"""Finding a study and rebuilding one of its roles from its logged weights, or from an export folder.

A role is rebuilt as its study built it (architecture, view, ensemble, multi-exit student), loaded with its
weights and returned as the deployed model on the CPU, in eval mode, with the spec an export writes to
``model.json``. :func:`rebuild` builds the model of a safetensors export again from its ``config.yaml`` and
``model.json``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdcore import __version__
from kdcore.config import ConfigError, ExperimentConfig, ModelConfig, config_from_yaml, is_teacher
from kdcore.export_error import ExportError, one_line
from kdcore.export_formats import WEIGHT_FILES
from kdcore.models.base import build_model, count_parameters, probe_inputs
from kdcore.models.ensemble import Ensemble
from kdcore.registry import data_meta
from kdcore.role_artifacts import WEIGHTS, weights_run
from kdcore.study import deployed, model_spec
from kdcore.tracker import STUDY_ROLE, RunRecord, TrackingUnavailable, role_key
from kdcore.tracking import MlflowTracker, StudyNotFound, resolve_study_id

CONFIG_FILE, SPEC_FILE = "config.yaml", "model.json"  # the study's config (logged and exported), the model spec
AS_IS = ", as is"  # end of kd.weights of a teacher used as it is: evaluated, never trained, no weights logged


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


def resolve_study(ref: str, uri: str | None = None) -> str:
    """A study id from its full id or a unique start of it (the short id the dashboard and folders show)."""
    try:
        return resolve_study_id(ref, uri)
    except StudyNotFound as err:
        raise ExportError(f"study: {err}") from None


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
        raise ExportError(f"study: the config.yaml of study {short} cannot be used: {one_line(err)}") from None
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
                          f"builds it: {one_line(err)[:300]}") from None
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


def rebuild_model(cfg: ExperimentConfig, spec: dict[str, Any], weights: Path) -> nn.Module:
    """The role ``spec`` (a model.json) describes, built from ``cfg`` and loaded with the ``weights`` file."""
    from kdcore.models.checkpoint import load_checkpoint

    model = deployed(role_builder(cfg, spec["role"], spec.get("view"), int(spec.get("ensemble") or 1))())
    return load_checkpoint(model, weights, spec["model_spec"]).eval()


def rebuild(folder: Path | str) -> nn.Module:
    """The model of a safetensors export, rebuilt with kdcore from its ``config.yaml`` and ``model.json``."""
    folder = Path(folder)
    spec = json.loads((folder / SPEC_FILE).read_text())
    cfg = config_from_yaml((folder / CONFIG_FILE).read_text())
    return rebuild_model(cfg, spec, folder / WEIGHT_FILES["safetensors"])
