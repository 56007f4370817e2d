"""Pre-flight: the models from outside a study (a checkpoint, a module, a Hugging Face folder) are built once
before anything is logged, so a bad one is a config error, not a failed study."""

from __future__ import annotations

from kdcore.config import ConfigError, ExperimentConfig
from kdcore.mechanisms.cross_modal import views
from kdcore.models.base import ModelSourceError, build_model
from kdcore.registry import MODELS, data_meta


def check_models(cfg: ExperimentConfig) -> None:
    """Build once, before the study exists, every model that comes from outside: a checkpoint to load, a
    module to import. One that fails is a ConfigError naming the field (missing or unexpected keys, another
    shape, a module that does not import or build), so nothing is logged."""
    meta = data_meta(cfg.data)
    teacher_view, student_view = views(cfg) if cfg.distill.mechanism == "cross_modal" else (None, None)
    for where, model_cfg in cfg.named_models().items():
        if model_cfg.checkpoint or MODELS.entry(model_cfg.name).meta.get("source"):
            teaches = where.startswith(("teacher", "distill.teachers"))
            view = student_view if where == "student" else teacher_view if teaches else None
            channels = (view, meta["views"][view]) if view else None
            try:
                build_model(model_cfg, meta["input_shape"], meta["num_classes"], channels)
            except ModelSourceError as err:
                raise ConfigError(f"{where}.{err.field}: {err}") from None
