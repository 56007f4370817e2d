"""How each method weighs its losses, and the defaults it takes from its paper and reference code.

Feature and relation methods keep cross-entropy at weight 1 and add their term with its own weight (mdistiller's
``CE_WEIGHT: 1.0`` + ``FEAT_WEIGHT``, RepDistiller's ``-r 1 -a 0 -b <beta>``); response methods keep alpha's
meaning, ``(1 - alpha) * CE + alpha * term``; dkd warms its loss up over the first epochs.
"""

from __future__ import annotations

import pytest
import torch

from kdcore import targets
from kdcore.config import ConfigError
from kdcore.methods.dkd import warmup_scale
from kdcore.methods.terms import LOGITS, TERMS, TermMethod
from kdcore.registry import METHODS
from tests.helpers import tiny_config
from tests.test_methods import setup

FEATURE_AND_RELATION = ["fitnet", "at", "rkd", "sp", "pkt"]

# Reference defaults (mdistiller/engine/cfg.py, RepDistiller scripts/run_cifar_distill.sh) per method.
REFERENCE = {
    "fitnet": {"weight": 100.0, "ce_weight": 1.0},
    "at": {"weight": 1000.0, "ce_weight": 1.0},
    "sp": {"weight": 3000.0, "ce_weight": 1.0},
    "rkd": {"distance_weight": 25.0, "angle_weight": 50.0, "ce_weight": 1.0},
    "pkt": {"weight": 30000.0, "ce_weight": 1.0},
    "dkd": {"target_weight": 1.0, "nontarget_weight": 8.0, "warmup_epochs": 2},
    "dist": {"inter_weight": 1.0, "intra_weight": 1.0},
}


@pytest.mark.parametrize("method", list(REFERENCE))
def test_parameters_default_to_the_reference_code(method: str) -> None:
    defaults = METHODS.get(method).Params().model_dump()
    assert {key: defaults[key] for key in REFERENCE[method]} == REFERENCE[method]


def _expected(distiller: TermMethod, batch, student_out) -> dict[str, float]:
    """Each term's unweighted value on the batch, computed apart from ``step`` (one teacher)."""
    teacher = distiller.teacher.outputs(batch, distiller.teacher_keys())
    values = {}
    for i, spec in enumerate(distiller.spec_list):
        term = TERMS[spec.term]
        if term.reads == LOGITS:
            s, t, _ = targets.scored_pairs(student_out.logits, teacher[LOGITS], batch.y)
            values[spec.term] = term.fn(s, t, batch, distiller.cfg).item()
        else:
            values[spec.term] = term.fn(*distiller._pair(student_out, teacher, i, 0), batch, distiller.cfg).item()
    return values


def _step(distiller: TermMethod, batch) -> tuple[dict[str, float], dict[str, float], float]:
    """(weighted losses of a step, the unweighted term values, the plain cross-entropy) on one batch.

    The student and adapters run in train mode twice on the same batch, which gives the same outputs
    (batch-norm statistics of the batch, no dropout)."""
    with torch.no_grad():
        out = distiller.student(batch.x)
        values = _expected(distiller, batch, out)
        ce = targets.cross_entropy(out.logits, batch.y).item()
        losses = {name: value.item() for name, value in distiller.step(batch).losses.items()}
    return losses, values, ce


@pytest.mark.parametrize("alpha", [0.9, 0.3])
@pytest.mark.parametrize("method", FEATURE_AND_RELATION)
def test_feature_and_relation_methods_are_cross_entropy_plus_weight_times_term(method: str, alpha: float) -> None:
    _, _, _, distiller, batch = setup(method, f"distill.alpha={alpha}")
    losses, values, ce = _step(distiller, batch)
    assert losses["ce"] == pytest.approx(ce, rel=1e-5)  # weight 1 whatever alpha is
    assert set(losses) == {"ce", *values}
    for spec in distiller.spec_list:
        assert spec.weight == REFERENCE[method].get("weight", spec.weight)
        assert losses[spec.term] == pytest.approx(spec.weight * values[spec.term], rel=1e-5)  # no alpha


def test_a_feature_methods_ce_weight_scales_cross_entropy_alone() -> None:
    _, _, _, distiller, batch = setup("fitnet", "distill.params={ce_weight: 0.25, weight: 3}")
    losses, values, ce = _step(distiller, batch)
    assert losses["ce"] == pytest.approx(0.25 * ce, rel=1e-5)
    assert losses["hint"] == pytest.approx(3 * values["hint"], rel=1e-5)


@pytest.mark.parametrize("method", ["kd", "dist", "dkd"])
def test_response_methods_keep_alphas_meaning(method: str) -> None:
    _, _, _, distiller, batch = setup(method, "distill.alpha=0.7", "distill.params={}" if method != "dkd"
                                      else "distill.params={warmup_epochs: 0}")
    losses, values, ce = _step(distiller, batch)
    assert losses["ce"] == pytest.approx(0.3 * ce, rel=1e-5)
    for spec in distiller.spec_list:
        assert losses[spec.term] == pytest.approx(0.7 * spec.weight * values[spec.term], rel=1e-5)


@pytest.mark.parametrize(("warmup", "epoch", "share"), [
    (4, 0, 0.25), (4, 1, 0.5), (4, 3, 1.0), (4, 9, 1.0),
    (2, 0, 0.5), (2, 1, 1.0),  # the default: the first epoch at half strength
    (0, 0, 1.0), (1, 0, 1.0),  # no warm-up
])
def test_dkd_warms_its_loss_up_linearly_over_the_first_epochs(warmup: int, epoch: int, share: float) -> None:
    _, _, _, distiller, batch = setup("dkd", "distill.alpha=0.6", f"distill.params={{warmup_epochs: {warmup}}}")
    distiller.begin_epoch(epoch)
    losses, values, ce = _step(distiller, batch)
    assert losses["ce"] == pytest.approx(0.4 * ce, rel=1e-5)  # the labels never warm up
    assert losses["dkd_target"] == pytest.approx(0.6 * share * values["dkd_target"], rel=1e-5)
    assert losses["dkd_nontarget"] == pytest.approx(0.6 * 8 * share * values["dkd_nontarget"], rel=1e-5)


def test_dkd_starts_at_its_first_epochs_share_and_follows_the_epoch_not_the_calls() -> None:
    _, _, _, distiller, _ = setup("dkd")  # default warm-up: 2 epochs
    assert distiller.response_scale == 0.5  # before the engine's first begin_epoch
    distiller.begin_epoch(5)
    distiller.begin_epoch(0)  # e.g. the engine after a resume at epoch 0
    assert distiller.response_scale == 0.5
    assert [warmup_scale(e, 20) for e in (0, 9, 19, 20)] == [0.05, 0.5, 1.0, 1.0]  # mdistiller's 1/20 ... 20/20


def test_multi_weighs_each_term_as_its_own_method_does() -> None:
    feature_only = "{terms: [{term: hint, weight: 2, student_layer: block1}, {term: rkd_distance, weight: 25}]}"
    _, _, _, distiller, batch = setup("multi", "distill.alpha=0.8", f"distill.params={feature_only}")
    losses, values, ce = _step(distiller, batch)
    assert losses["ce"] == pytest.approx(ce, rel=1e-5)
    assert losses["hint"] == pytest.approx(2 * values["hint"], rel=1e-5)
    assert losses["rkd_distance"] == pytest.approx(25 * values["rkd_distance"], rel=1e-5)

    _, _, _, distiller, batch = setup("multi", "distill.alpha=0.8")  # default: kd + 25 rkd_distance
    losses, values, ce = _step(distiller, batch)
    assert losses["ce"] == pytest.approx(0.2 * ce, rel=1e-5)  # a response term: alpha's balance
    assert losses["kd"] == pytest.approx(0.8 * values["kd"], rel=1e-5)
    assert losses["rkd_distance"] == pytest.approx(25 * values["rkd_distance"], rel=1e-5)  # not scaled by alpha


@pytest.mark.parametrize(("overrides", "message"), [
    (["distill.method=dkd", "distill.params={warmup_epochs: -1}"],
     "distill.params.warmup_epochs: Input should be greater than or equal to 0"),
    (["distill.method=dkd", "distill.params={warmup_epochs: 1.5}"], "distill.params.warmup_epochs: Input should be"),
    (["teacher.name=cnn2d", "student.name=cnn2d", "distill.method=at", "distill.params={ce_weight: -1}"],
     "distill.params.ce_weight: Input should be greater than or equal to 0"),
    (["distill.method=kd", "distill.params={ce_weight: 1}"], "distill.params: method kd takes no extra parameters"),
])
def test_bad_weights_are_one_line_errors_naming_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tiny_config(*overrides)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)
