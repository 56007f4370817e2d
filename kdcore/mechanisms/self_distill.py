"""Self-distillation: the student teaches itself, with no external teacher.

- **temporal** (born-again networks, Furlanello et al. 2018): generation 0 is the student trained on
  labels alone (the study's baseline); each of ``distill.generations`` later generations, of the same
  architecture, is distilled from the one before with ``distill.method``. The last one is the student.
  Generation k starts from its own weights and batch order (seed offset k, a param of its run).
- **spatial** (deep-to-shallow, "Be Your Own Teacher", Zhang et al. 2019): a classifier is attached
  after each of the student's blocks; the deepest exit learns from the labels and teaches every
  shallower exit through the method's logit terms, in one training. The exit ``distill.exit`` is
  what gets deployed, and every exit's accuracy, size and latency are logged (``exit/*``, step = exit).
  The baseline is that exit's architecture trained alone, so the comparison is like for like.
  The paper's extra feature hints between exits are left out: exits exchange outputs only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdcore import targets
from kdcore.engine import predict_probs
from kdcore.methods.base import Batch, Method, StepOutput, build_method
from kdcore.methods.terms import TermSpec, feature_shapes, response_losses, response_specs
from kdcore.models.base import BlockNet, ExitNet, ModelOutput, build_model
from kdcore.registry import MODELS, data_meta, fitting_models, register_mechanism
from kdcore.role_evaluation import cost_metrics

EXITS = "the spatial self mechanism teaches the early exits from the deepest exit's outputs"


def exit_classifier(shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Pool a block's output the way the model families' own necks do (4 positions of a sequence, one
    of an image), then a linear layer: an exit costs the blocks it keeps plus this one layer."""
    pool: list[nn.Module] = []
    if len(shape) == 2:  # (C, L)
        pool, size = [nn.AdaptiveAvgPool1d(4)], shape[0] * 4
    elif len(shape) == 3:  # (C, H, W)
        pool, size = [nn.AdaptiveAvgPool2d(1)], shape[0]
    else:  # (D,)
        size = shape[0]
    return nn.Sequential(*pool, nn.Flatten(1), nn.Linear(size, num_classes))


class MultiExit(nn.Module):
    """A :class:`BlockNet` with a classifier after every block but the last (whose classifier is its own head).

    ``forward`` runs only up to the chosen exit, so evaluating it measures the deployed model. The exits are
    built once, sharing the base network's modules; they are kept in a tuple, outside the module tree, so the
    state_dict holds each weight once, under the base network's and the heads' names.
    """

    def __init__(self, base: BlockNet, input_shape: tuple[int, ...], num_classes: int, exit: int | None) -> None:
        super().__init__()
        self.base = base
        with torch.no_grad():
            features = base.eval()(torch.zeros(2, *input_shape)).features
        base.train()
        self.depth = len(base.blocks)
        self.heads = nn.ModuleList(exit_classifier(tuple(features[f"block{k}"].shape[1:]), num_classes)
                                   for k in range(1, self.depth))
        self.exit = exit or self.depth
        self.exits: tuple[nn.Module, ...] = (
            *(ExitNet(base.stem, list(base.blocks[:k]), self.heads[k - 1]) for k in range(1, self.depth)), base)

    def exit_net(self, k: int) -> nn.Module:
        """Exit ``k`` (1 = after the first block) as a model of its own; the deepest is the base network."""
        return self.exits[k - 1]

    def deployed(self) -> nn.Module:
        return self.exit_net(self.exit)

    def all_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every exit's logits in one pass, shallowest first: [(B, K)] * depth."""
        h = self.base.stem(x)
        logits = []
        for k, block in enumerate(self.base.blocks, start=1):
            h = block(h)
            logits.append(self.heads[k - 1](h) if k < self.depth else self.base.head(self.base.neck(h)))
        return logits

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return self.deployed()(x)


class ExitDistillation(Method):
    """The deepest exit: cross-entropy. Every other exit: (1 - alpha) cross-entropy plus alpha times the
    method's logit terms towards the deepest exit's detached outputs. Every exit's labels are smoothed by
    ``label_smoothing``: the whole network is the student."""

    knowledge = "response"
    needs_teacher = False

    def __init__(self, student: MultiExit, cfg: Any, specs: list[TermSpec]) -> None:
        super().__init__(student, None, cfg)
        self.specs = specs

    def step(self, batch: Batch) -> StepOutput:
        exits = self.student.all_exits(batch.x)
        deepest = exits[-1]
        smoothing = self.cfg.label_smoothing
        losses = {"ce": targets.cross_entropy(deepest, batch.y, smoothing)}
        for k, logits in enumerate(exits[:-1], start=1):
            losses[f"ce_exit{k}"] = (1 - self.cfg.alpha) * targets.cross_entropy(logits, batch.y, smoothing)
            terms = response_losses(self.specs, logits, [deepest.detach()], batch, self.cfg)
            losses |= {f"{name}_exit{k}": value for name, value in terms.items()}
        return StepOutput(exits[self.student.exit - 1], losses)


def block_count(cfg: Any) -> int:
    shapes = feature_shapes(cfg.student, cfg.data)
    return sum(name.startswith("block") for name in shapes)


def check(cfg: Any) -> None:
    if cfg.distill.self_kind != "spatial":
        return
    response_specs(cfg, EXITS)
    meta = data_meta(cfg.data)
    if not isinstance(build_model(cfg.student, meta["input_shape"], meta["num_classes"]), BlockNet):
        built = [e.name for e in MODELS if e.name in fitting_models(cfg.data)
                 and isinstance(build_model(type("M", (), {"name": e.name, "width": None, "depth": None})(),
                                            meta["input_shape"], meta["num_classes"]), BlockNet)]
        raise ValueError(f"student.name: spatial self-distillation puts exits on a block network; "
                         f"{cfg.student.name} is not one; allowed: {', '.join(built) or 'none for this dataset'}")
    blocks = block_count(cfg)
    if blocks < 2:
        field = "student.name" if MODELS.entry(cfg.student.name).meta.get("fixed_size") else "student.depth"
        raise ValueError(f"{field}: spatial self-distillation needs a student of at least 2 blocks; "
                         f"{cfg.student.name} here has {blocks}")
    if cfg.distill.exit is not None and cfg.distill.exit > blocks:
        raise ValueError(f"distill.exit: the student has exits 1 to {blocks} (one after each block); "
                         f"got {cfg.distill.exit}")


@register_mechanism("self", fields=("self_kind", "generations", "exit"), teacher=False, check=check)
def self_distill(study) -> None:
    """The student teaches itself: born-again generations (temporal) or deep-to-shallow exits (spatial)."""
    cfg = study.cfg
    if cfg.distill.self_kind == "temporal":
        previous = study.train_role("baseline", cfg.student, "none", teacher=None)  # generation 0
        for k in range(1, cfg.distill.generations + 1):
            role = "student" if k == cfg.distill.generations else f"generation_{k}"
            # Each generation has its own initial weights and batch order, so it does not retrace its teacher.
            previous = study.train_role(role, cfg.student, cfg.distill.method, teacher=previous,
                                        extra_tags={"kd.generation": str(k)}, seed_offset=k)
        return
    splits = study.splits
    shape, classes = splits.input_shape, splits.num_classes
    specs = response_specs(cfg, EXITS)

    def multi_exit() -> MultiExit:
        return MultiExit(build_model(cfg.student, shape, classes), shape, classes, cfg.distill.exit)

    # The baseline is the deployed exit's own architecture trained alone on the labels, so that the
    # student is compared with the same model without self-distillation.
    study.train_models({"baseline": lambda: multi_exit().deployed()},
                       lambda built: build_method("none", built["baseline"], None, cfg.distill.for_plain_labels()),
                       "none", {}, teacher=None)
    student = study.train_models({"student": multi_exit},
                                 lambda built: ExitDistillation(built["student"], cfg.distill, specs),
                                 cfg.distill.method, {"kd.exit": str(cfg.distill.exit or "deepest")},
                                 teacher=None)["student"]
    multi: MultiExit = student.model
    for k in range(1, multi.depth + 1):
        net = multi.exit_net(k).eval()
        metrics = {f"exit/{split}_acc": (predict_probs(net, getattr(splits, split), study.device).argmax(-1)
                                         == getattr(splits, split).y).float().mean().item()
                   for split in ("val", "test")}
        cost = cost_metrics(net, splits.test.x[:1].to(study.device))
        metrics |= {"exit/params": cost["model/params"], "exit/latency_ms": cost["model/latency_ms"]}
        study.tracker.log_metrics(student.run_id, metrics, step=k)
