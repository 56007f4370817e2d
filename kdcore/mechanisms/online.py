"""Online distillation: deep mutual learning (Zhang et al. 2018, "Deep Mutual Learning").

There is no pretrained teacher. The student and its peers (``distill.peers``, 1 to 3) train together
in one loop from scratch; each learns from the labels and from every other peer's softened outputs,
which are detached, so each model's gradient comes from its own loss only (the simultaneous form of
the paper's alternating updates). Each peer is its own role (``peer_k``); the study reports the best
and the mean peer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdcore import targets
from kdcore.methods.base import Batch, Method, StepOutput
from kdcore.methods.terms import TermSpec, response_losses, response_specs
from kdcore.registry import register_mechanism

EXCHANGE = "the online mechanism exchanges outputs between peers"


class MutualLearning(Method):
    """Every model of the cohort: (1 - alpha) cross-entropy (labels smoothed by ``label_smoothing``) plus alpha
    times the method's logit terms towards each other model's detached outputs, averaged over the others."""

    knowledge = "response"
    needs_teacher = False

    def __init__(self, student: nn.Module, peers: dict[str, nn.Module], cfg: Any, specs: list[TermSpec]) -> None:
        super().__init__(student, None, cfg)
        self.cohort = nn.ModuleDict(peers)
        self.specs = specs

    def peers(self) -> dict[str, nn.Module]:
        return dict(self.cohort)

    def step(self, batch: Batch) -> StepOutput:
        logits = {"": self.student(batch.x).logits, **{role: m(batch.x).logits for role, m in self.cohort.items()}}
        losses: dict[str, torch.Tensor] = {}
        for role, own in logits.items():
            prefix = f"{role}/" if role else ""  # the engine files "peer_k/..." losses under peer_k
            others = [other.detach() for name, other in logits.items() if name != role]
            losses[f"{prefix}ce"] = (1 - self.cfg.alpha) * targets.cross_entropy(own, batch.y,
                                                                                 self.cfg.label_smoothing)
            losses |= {f"{prefix}{name}": value
                       for name, value in response_losses(self.specs, own, others, batch, self.cfg).items()}
        return StepOutput(logits[""], losses, {role: logits[role] for role in self.cohort})


def check(cfg: Any) -> None:
    response_specs(cfg, EXCHANGE)


@register_mechanism("online", fields=("peers",), teacher=False, check=check)
def online(study) -> None:
    """The student and its peers learn together from the labels and from each other (no teacher)."""
    cfg = study.cfg
    study.baseline_role(teacher=None)
    models = {"student": study.builder(cfg.student)}
    models |= {f"peer_{k}": study.builder(peer) for k, peer in enumerate(cfg.distill.peers, start=1)}
    specs = response_specs(cfg, EXCHANGE)

    def make(built: dict[str, nn.Module]) -> Method:
        return MutualLearning(built["student"], {r: m for r, m in built.items() if r != "student"}, cfg.distill, specs)

    study.train_models(models, make, cfg.distill.method, {"kd.temperature": f"{cfg.distill.temperature:g}"},
                       teacher=None)
