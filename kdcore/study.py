"""A study end to end: the parent run, each role trained through the engine, metrics and artifacts.

Mechanisms decide which roles exist and who teaches whom; they call :meth:`Study.train_role`
and :meth:`Study.teacher_role`, which own tracking, checkpoints, evaluation and resumption.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from kdcore import __version__
from kdcore.config import ExperimentConfig, ModelConfig, config_from_yaml, is_teacher
from kdcore.data.splits import DatasetSplits, cache_dir, load_dataset
from kdcore.diagnostics import Finding, Gate
from kdcore.engine import (
    GIB,
    CheckpointPolicy,
    EpochReport,
    cache_home,
    fit,
    predict_outputs,
    resolve_device,
    set_determinism,
    size_text,
)
from kdcore.mechanisms.cross_modal import views
from kdcore.methods.base import Method, TeacherSource, build_method
from kdcore.models.base import build_model
from kdcore.models.ensemble import Ensemble
from kdcore.ownership import Heartbeat, StudyBusy, StudyLock, owner_alive, owner_label, owner_tags, prune_checkpoints
from kdcore.preflight import check_models
from kdcore.registry import MECHANISMS, METHODS, data_meta
from kdcore.role_artifacts import ATTENTION_EXAMPLES, ATTENTIONS, WEIGHTS, attentions_npz, predictions_npz, weights_run
from kdcore.role_evaluation import cost_metrics, member_metrics, predictions, split_metrics
from kdcore.study_results import diagnose, refresh_siblings, remember_predictions, study_metrics
from kdcore.teaching import SEED_STRIDE, ensemble_builder, teacher_role_name, teacher_sources
from kdcore.tracker import STUDY_ROLE, RunRecord, Tracker

FAILURE_TAG = "kd.failure_reason"
EXAMPLE = 8  # training inputs a method sees at construction, to size its adapters to the features
CACHE_TAG = "kd.teacher_cache"  # on a role's run: where its teachers' outputs came from (device, cpu, live) and why

log = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM): handled like Ctrl-C, the open runs end KILLED."""


class Stopped(Exception):
    """Raised inside a study to stop it on purpose before its end (a search prunes it): its runs end KILLED."""


class StudyFailed(RuntimeError):
    """A study stopped; its runs are FAILED (or KILLED) in the tracker with the reason as a tag."""

    def __init__(self, study_id: str, reason: str) -> None:
        super().__init__(f"study {study_id} failed: {reason}")
        self.study_id, self.reason = study_id, reason


@dataclass
class RoleResult:
    """A trained (or reused) model of the study, with its final metrics and predictions."""

    role: str
    run_id: str
    model: nn.Module
    metrics: dict[str, float]
    probs: dict[str, torch.Tensor]  # split name (val, test, test_shifted) -> (N, K) probabilities


@dataclass
class StudySummary:
    study_id: str
    name: str
    cfg: ExperimentConfig
    roles: dict[str, dict[str, float]]
    metrics: dict[str, float] = field(default_factory=dict)
    teacher_reused_from: str | None = None
    findings: list[Finding] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    shift: str = ""  # what the shifted test split is
    teacher_cache: str = ""  # where the student's teacher outputs came from, as its kd.teacher_cache tag says


def model_spec(cfg: ModelConfig) -> str:
    """Short architecture label used in tags and tables, e.g. ``mlp-w256-d3``, ``resnet20`` or, for a model from
    outside, what it is built from (``hf:tiny-bert``, ``import:DigitsCNN``)."""
    sizes = "".join(f"-{key[0]}{value}" for key in ("width", "depth") if (value := getattr(cfg, key)) is not None)
    path = getattr(cfg, "path", None)
    if path:
        return f"{cfg.name}:{path.rpartition(':')[2] if cfg.name == 'import' else Path(path).name or path}{sizes}"
    return f"{cfg.name}{sizes}"


def data_label(data: object) -> str:
    """The dataset as names show it: ``digits``, or a data source with its file (``csv:reviews.csv``)."""
    return f"{data.name}:{Path(data.path).name}" if getattr(data, "path", None) else data.name


class Study:
    """Runs one study with a tracker; ``Study.resume`` continues a crashed one."""

    def __init__(self, cfg: ExperimentConfig, tracker: Tracker, *, progress: bool = True,
                 refresh: bool = True) -> None:
        self.cfg = cfg
        self.tracker = tracker
        self.progress = progress
        self.refresh = refresh  # diagnose its temperature siblings again when it finishes (a sweep does it once)
        self.device = resolve_device(cfg.train.device)
        self.study_id: str | None = None
        self.splits: DatasetSplits | None = None
        self.roles: dict[str, RoleResult] = {}
        self.teacher_reused_from: str | None = None
        self._previous: dict[str, RunRecord] = {}  # role runs of an interrupted attempt
        self._open: list[str] = []
        self.findings: list[Finding] = []
        self.gates: list[Gate] = []

    @classmethod
    def resume(cls, study_id: str, tracker: Tracker, *, progress: bool = True) -> Study:
        """Reload a study's config and role runs; finished roles are kept, the rest continue."""
        record = tracker.get_run(study_id)
        if record.tags.get("kd.role") != STUDY_ROLE:
            raise ValueError(f"--resume: run {study_id} is not a study (its kd.role is "
                             f"{record.tags.get('kd.role')!r})")
        if record.status == "FINISHED":
            raise ValueError(f"--resume: study {study_id} already finished")
        if record.status in ("RUNNING", "SCHEDULED") and owner_alive(record.tags):
            raise StudyBusy(f"study {study_id} is still running in {owner_label(record.tags)}; "
                            f"wait for it to end or stop it first")
        study = cls(config_from_yaml(tracker.read_bytes(study_id, "config.yaml").decode()), tracker,
                    progress=progress)
        study.study_id = study_id
        for run in reversed(tracker.find_runs({"kd.study_id": study_id})):  # oldest first, newest wins
            role = run.tags.get("kd.role")
            if not role:
                log.warning("study %s: run %s has no kd.role tag; it is ignored", study_id, run.run_id)
            elif role != STUDY_ROLE:
                study._previous[role] = run
        return study

    # --- the study -----------------------------------------------------------------------------
    def start(self, scheduled: bool = False) -> str:
        """Create the study's parent run and return its id (the study id).

        ``scheduled`` leaves it SCHEDULED, for a study that waits in a queue before it trains.
        """
        if self.study_id is None:
            cfg = self.cfg
            self.study_id = self.tracker.start_run(
                cfg.tracking.study_name or self._default_name(), self._tags(STUDY_ROLE, "none"), cfg.flat()
            )
            self.tracker.set_tags(self.study_id, {"kd.study_id": self.study_id, **owner_tags()})
            self.tracker.log_bytes(self.study_id, "config.yaml", cfg.to_yaml().encode())
            if scheduled:
                self.tracker.set_status(self.study_id, "SCHEDULED")
        return self.study_id

    def run(self) -> StudySummary:
        """Train every role of the study (continuing a started or interrupted one) and close it.

        The study's lock is held throughout: a second process that tries to run it gets StudyBusy
        before anything in the store changes.
        """
        prune_checkpoints(self.checkpoint_root())
        if self.study_id is None:
            check_models(self.cfg)  # a checkpoint or a module that does not fit: nothing is logged
            self.start()
        lock = StudyLock(self.checkpoint_dir())
        lock.acquire(str(self.study_id))
        status = "FAILED"
        try:
            with Heartbeat(lambda tags: self.tracker.set_tags(str(self.study_id), tags)):
                summary = self._run()
            status = "FINISHED"
            return summary
        except StudyFailed as err:
            status = "KILLED" if isinstance(err.__cause__, KeyboardInterrupt | Stopped) else "FAILED"
            raise
        finally:
            try:
                self.tracker.flush(str(self.study_id))  # every queued write is in the store before the lock goes
            finally:
                lock.release()
                self._clean_checkpoints(status)

    def _run(self) -> StudySummary:
        cfg = self.cfg
        started = time.perf_counter()
        set_determinism(cfg.train.seed, cfg.train.threads, self.device)
        self._reopen(str(self.study_id))
        self.tracker.set_tags(str(self.study_id), owner_tags())
        self._open.append(str(self.study_id))
        try:
            self.splits = load_dataset(cfg.data)
            self.tracker.set_tags(str(self.study_id), {"kd.shift": self.splits.shift[:1000]})  # what gate 5 reads
            MECHANISMS.get(cfg.distill.mechanism)(self)
            metrics = study_metrics(self.roles)
            metrics["study/wall_s"] = time.perf_counter() - started
            self.tracker.log_metrics(self.study_id, metrics, step=0)
            self.findings, self.gates = diagnose(self.tracker, self.study_id)
            self._end(self.study_id, "FINISHED")
            if self.refresh:
                refresh_siblings(self.tracker, self.study_id)
        except BaseException as err:
            detail = str(err) or ("cancelled" if isinstance(err, KeyboardInterrupt) else "")
            reason = f"{type(err).__name__}: {detail}"[:4000]
            status = "KILLED" if isinstance(err, KeyboardInterrupt | Stopped) else "FAILED"
            for run_id in reversed(self._open):
                self.tracker.set_tags(run_id, {FAILURE_TAG: reason})
                self._end(run_id, status)
            raise StudyFailed(self.study_id, reason) from err
        name = self.tracker.get_run(self.study_id).name
        student = self.roles.get("student")
        return StudySummary(self.study_id, name, cfg, {r: v.metrics for r, v in self.roles.items()}, metrics,
                            self.teacher_reused_from, self.findings, self.gates,
                            self.splits.shift if self.splits is not None else "",
                            self.tracker.get_run(student.run_id).tags.get(CACHE_TAG, "") if student else "")

    def _default_name(self) -> str:
        cfg, distill = self.cfg, self.cfg.distill
        method = distill.method
        if METHODS.get(method).needs_teacher:
            method += f" T{distill.temperature:g}"
        mechanism = {
            "offline": "",
            "progressive": "progressive({}{}{}) ".format(
                len(distill.assistants), ", skip" if distill.skip_to_teacher else "",
                f", ensembles of {distill.assistant_ensemble}" if distill.assistant_ensemble > 1 else ""),
            "online": f"online({len(distill.peers) + 1} peers) ",
            "self": (f"born-again({distill.generations}) " if distill.self_kind == "temporal"
                     else f"self exits(exit {distill.exit or 'deepest'}) "),
            "cross_modal": "cross-modal({}->{}{}) ".format(*views(cfg), "" if distill.align else ", unaligned")
            if distill.mechanism == "cross_modal" else "",
        }.get(distill.mechanism, f"{distill.mechanism} ")
        pair = f"{teacher_label(self.cfg)}->{model_spec(cfg.student)}"
        return f"{data_label(cfg.data)} {pair} {mechanism}{method} seed{cfg.train.seed}"

    def _tags(self, role: str, method: str, **extra: str) -> dict[str, str]:
        cfg = self.cfg
        tags = {
            "kd.role": role, "kd.method": cfg.distill.method if role == STUDY_ROLE else method,
            "kd.mechanism": cfg.distill.mechanism,
            "kd.knowledge": METHODS.get(cfg.distill.method if role == STUDY_ROLE else method).knowledge,
            "kd.dataset": cfg.data.name, "kd.teacher": teacher_label(self.cfg),
            "kd.student": model_spec(cfg.student), "kd.version": __version__, **extra,
        }
        if role == STUDY_ROLE:
            tags["kd.findings"] = ""
        if self.study_id:
            tags["kd.study_id"] = self.study_id
        return tags

    def _reopen(self, run_id: str) -> None:
        """Mark a run RUNNING again, without the reason it stopped (both queued writes: nothing is read back)."""
        self.tracker.set_status(run_id, "RUNNING")
        self.tracker.delete_tag(run_id, FAILURE_TAG)

    def _end(self, run_id: str, status: str) -> None:
        self.tracker.end_run(run_id, status)
        if run_id in self._open:
            self._open.remove(run_id)

    @staticmethod
    def checkpoint_root() -> Path:
        return cache_dir() / "checkpoints"

    def checkpoint_dir(self) -> Path:
        """This study's folder of role checkpoints and its lock file."""
        return self.checkpoint_root() / str(self.study_id)

    def checkpoint_path(self, role: str) -> Path:
        return self.checkpoint_dir() / f"{role}.pt"

    def _clean_checkpoints(self, status: str) -> None:
        """A finished study keeps no checkpoint; a failed or killed one keeps its own for --resume
        (``prune_checkpoints`` removes them after a week), and an empty folder goes at once."""
        folder = self.checkpoint_dir()
        if status == "FINISHED" or not any(folder.glob("*.pt")):
            shutil.rmtree(folder, ignore_errors=True)

    def config_hash(self) -> str:
        """Identifies the study's config in its checkpoints, so a checkpoint is only adopted by its own study."""
        return hashlib.sha256(self.cfg.to_yaml().encode()).hexdigest()[:16]

    # --- roles -----------------------------------------------------------------------------------
    def teacher_role(self, view: str | None = None, k: int = 1) -> RoleResult:
        """Teacher ``k``: kept from this study's earlier attempt, reused from an identical one, or trained.

        ``k`` = 1 is the teacher (role ``teacher``); 2 and up are ``distill.teachers`` in order (roles
        ``teacher_2``, ...), each trained with seed offset ``k - 1`` so that teachers of one architecture differ.
        ``view`` names the part of paired multi-view inputs it sees (cross-modal); empty = all of them.
        """
        role, model_cfg = teacher_role_name(k), self.cfg.teacher_model(k)
        fingerprint = self.cfg.teacher_fingerprint(__version__, k)
        view_tag = {"kd.view": view} if view else {}
        if not model_cfg.train and role not in self._previous:  # used as it is: evaluated, never trained
            model = self.builder(model_cfg, view)()
            weights = f"{'checkpoint' if model_cfg.checkpoint else 'its own'}, as is"  # a file, or an hf folder's
            run_id = self.tracker.start_run(role, self._tags(role, "none", **{"kd.weights": weights, **view_tag}),
                                            self.cfg.flat(), parent_id=self.study_id)
            self._open.append(run_id)
            return self._finish_role(role, run_id, model, teacher=None, log_weights=False)
        if role not in self._previous:
            params = self.cfg.flat() | ({"train.seed_offset": str(k - 1)} if k > 1 else {})
            reused = self._reuse(role, "kd.teacher_fingerprint", fingerprint, self.builder(model_cfg, view),
                                 params, view_tag)
            if reused is not None:
                if k == 1:
                    self.teacher_reused_from = reused[1]
                return reused[0]
        return self.train_role(role, model_cfg, "none", teacher=None, view=view,
                               extra_tags={"kd.teacher_fingerprint": fingerprint}, seed_offset=k - 1)

    def baseline_role(self, teacher: RoleResult | None, view: str | None = None) -> RoleResult:
        """The student's architecture trained alone on the labels: kept from this study's earlier attempt,
        reused from a study with the same data, student, seed and training (a sweep over how to distil trains
        it once per seed), or trained. ``teacher`` is only compared with, never learnt from."""
        fingerprint = self.cfg.baseline_fingerprint(__version__, view)
        if "baseline" not in self._previous:
            reused = self._reuse("baseline", "kd.baseline_fingerprint", fingerprint,
                                 self.builder(self.cfg.student, view), self.cfg.flat(),
                                 {"kd.view": view} if view else {}, teacher)
            if reused is not None:
                return reused[0]
        return self.train_role("baseline", self.cfg.student, "none", teacher=teacher, view=view,
                               extra_tags={"kd.baseline_fingerprint": fingerprint})

    def _reuse(self, role: str, tag: str, fingerprint: str, build: Callable[[], nn.Module], params: dict,
               extra_tags: dict[str, str], teacher: RoleResult | None = None) -> tuple[RoleResult, str] | None:
        """Log ``role`` with the weights of the newest finished run of that role and ``fingerprint``, and return
        it with the run its weights come from (None when there is none): evaluated here, never trained."""
        same = self.tracker.find_runs({"kd.role": role, tag: fingerprint}, status="FINISHED")
        if not same:
            return None
        origin = weights_run(same[0])
        model = self._load_weights(build, origin)
        run_id = self.tracker.start_run(role, self._tags(role, "none", **{tag: fingerprint, "kd.reused_from": origin,
                                                                          **extra_tags}),
                                        params, parent_id=self.study_id)
        self._open.append(run_id)
        self._copy_curves(origin, run_id, self.cfg.train.epochs_for(role))
        return self._finish_role(role, run_id, model, teacher=teacher, log_weights=False), origin

    def _copy_curves(self, origin: str, run_id: str, final_step: int) -> None:
        """The per-epoch curves (``train/*``, ``val/*`` before the final step) of the run a role's weights come
        from, so a reused role draws its training like one trained here."""
        by_step: dict[int, dict[str, float]] = {}
        for key in self.tracker.get_run(origin).metrics:
            if key.startswith(("train/", "val/")):
                for step, value in self.tracker.metric_history(origin, key):
                    if step < final_step:
                        by_step.setdefault(step, {})[key] = value
        for step in sorted(by_step):
            self.tracker.log_metrics(run_id, by_step[step], step)

    def train_role(self, role: str, model_cfg: ModelConfig, method: str, teacher: RoleResult | None,
                   extra_tags: dict[str, str] | None = None, temperature: float | None = None,
                   more_teachers: Sequence[RoleResult] = (), view: str | None = None,
                   params: dict | None = None, seed_offset: int = 0, weights: Sequence[float] | None = None,
                   ensemble: int = 1) -> RoleResult:
        """Train one model of the study with ``method`` (taught by ``teacher``) and log it as a role.

        ``temperature`` and ``params`` override ``distill.temperature`` and ``distill.params`` for this role
        (a stage of a chain); ``more_teachers`` also teach it (skip-to-teacher, several diverse teachers) and
        ``weights`` says how much ``teacher`` and each of them count (empty = equally): response terms read
        their mixed softened outputs, other terms are averaged over them. ``view`` is the part of multi-view
        inputs the model sees; ``seed_offset`` gives the role its own initial weights and batch order (a
        born-again generation must not retrace its teacher); ``ensemble`` > 1 trains that many models of
        ``model_cfg`` as one :class:`Ensemble`, logged as this one role.
        The teachers and the baseline learn from plain labels (no ``label_smoothing``): the baseline is the
        student trained alone, the reference every fix is judged against.
        """
        cfg, splits = self.cfg, self.splits
        assert splits is not None
        update = {k: v for k, v in (("temperature", temperature), ("params", params)) if v is not None}
        distill = cfg.distill.model_copy(update=update) if update else cfg.distill
        if is_teacher(role) or role == "baseline":
            distill = distill.for_plain_labels()
        tags = dict(extra_tags or {}) | ({"kd.view": view} if view else {})
        if METHODS.get(method).needs_teacher:
            tags["kd.temperature"] = f"{distill.temperature:g}"
        if ensemble > 1:
            tags["kd.ensemble"] = str(ensemble)

        needs_teacher = METHODS.get(method).needs_teacher

        def make(models: dict[str, nn.Module]) -> Method:
            # A method without a teacher (the baseline) gets none: no teacher pass, no cache.
            teachers = ([teacher] if teacher else []) + list(more_teachers) if needs_teacher else []
            sources, shares = teacher_sources(teachers, weights)
            if needs_teacher and not sources:
                raise ValueError(f"method {method} needs a teacher")
            distiller = build_method(method, models[role], sources[0] if sources else None, distill,
                                     example=splits.train.x[:EXAMPLE], more_teachers=sources[1:], weights=shares)
            if splits.deterministic:
                for k, source in enumerate(sources):
                    source.cache = self.teacher_cache(source, distiller.teacher_keys(k))
            return distiller

        build = self.builder(model_cfg, view)
        return self.train_models({role: ensemble_builder(build, ensemble) if ensemble > 1 else build}, make,
                                 method, tags, teacher, seed_offset=seed_offset)[role]

    def builder(self, model_cfg: ModelConfig, view: str | None = None) -> Callable[[], nn.Module]:
        """Builds ``model_cfg``'s model for this study's data (fresh weights from the current seed state);
        with ``view``, one that reads only that view of the dataset's paired inputs."""
        assert self.splits is not None
        shape, classes = self.splits.input_shape, self.splits.num_classes
        channels = (view, data_meta(self.cfg.data)["views"][view]) if view else None
        return lambda: build_model(model_cfg, shape, classes, channels)

    def train_models(self, models: dict[str, Callable[[], nn.Module]], make: Callable[[dict[str, nn.Module]], Method],
                     method: str, extra_tags: dict[str, str], teacher: RoleResult | None,
                     seed_offset: int = 0) -> dict[str, RoleResult]:
        """Train models together in one engine loop, each logged as its own role; the first is the method's student.

        ``models`` maps role -> builder, called in order right after seeding (so the first role starts
        from the same weights as the baseline, unless ``seed_offset`` gives them their own); ``make`` turns the
        built models into the method, whose ``peers()`` are the other roles. Finished roles of an interrupted
        attempt are reloaded, not retrained; an unfinished one continues from its checkpoint, and epochs it
        had already logged are not logged twice.
        """
        cfg, splits = self.cfg, self.splits
        assert splits is not None and self.study_id is not None
        previous = {role: self._previous.get(role) for role in models}
        if all(run is not None and run.status == "FINISHED" for run in previous.values()):
            results = {}
            for role, run in previous.items():
                assert run is not None
                model = self._load_weights(models[role], weights_run(run))
                probs = predictions(model, splits, self.device, cfg.train.amp)
                results[role] = self.roles[role] = RoleResult(role, run.run_id, model, run.metrics, probs)
            return results

        train = cfg.train
        params = cfg.flat()
        if seed_offset:
            train = train.model_copy(update={"seed": train.seed + seed_offset * SEED_STRIDE})
            params["train.seed_offset"] = str(seed_offset)
        set_determinism(train.seed, train.threads, self.device)  # same init for baseline and student
        built = {role: build() for role, build in models.items()}
        distiller = make(built)
        run_ids: dict[str, str] = {}
        logged: dict[str, int] = {}  # role -> last epoch its curves already hold (-1: none)
        for role, run in previous.items():
            if run is not None:
                run_ids[role] = run.run_id
                self._reopen(run.run_id)
                logged[role] = max((step for step, _ in self.tracker.metric_history(run.run_id, "val/acc")),
                                   default=-1)
            else:
                run_ids[role] = self.tracker.start_run(role, self._tags(role, method, **extra_tags), params,
                                                       parent_id=self.study_id)
                logged[role] = -1
            self._open.append(run_ids[role])

        def log(report: EpochReport) -> None:
            for role, metrics in {report.role: report.metrics, **report.peers}.items():
                if report.epoch > logged[role]:  # a resumed role retraces epochs logged before the crash
                    self.tracker.log_metrics(run_ids[role], metrics, report.epoch)

        def flush() -> None:
            for run_id in run_ids.values():
                self.tracker.flush(run_id)

        primary = next(iter(models))
        checkpoint = self.checkpoint_path(primary)
        placement = distiller.teacher_placement("" if splits.deterministic else "live: training batches are augmented")
        if placement:
            self.tracker.set_tags(run_ids[primary], {CACHE_TAG: placement})
        fit(distiller, splits, train, role=primary, epochs=train.epochs_for(primary), device=self.device,
            callbacks=[log], checkpoint=checkpoint, checkpoint_owner=f"{self.config_hash()}:{primary}",
            checkpoint_policy=CheckpointPolicy.of(train), before_checkpoint=flush, progress=self.progress)
        results = {role: self._finish_role(role, run_ids[role], model, teacher) for role, model in built.items()}
        checkpoint.unlink(missing_ok=True)
        return results

    def teacher_cache(self, source: TeacherSource, keys: set[str]) -> dict[str, torch.Tensor] | None:
        """The teacher's outputs on the whole training split, when they fit in ``train.cache_gib``: on the training
        device when they fit there too, else in CPU memory (see :func:`~kdcore.engine.cache_home`); None when the
        teacher must run live. ``source.placement`` records which, and why."""
        assert self.splits is not None
        x, cap = self.splits.train.x, self.cfg.train.cache_gib
        if "attentions" in keys:
            source.placement = "live: attention maps are not cached"
            return None
        if cap == 0:
            source.placement = "live: train.cache_gib is 0"
            return None
        shapes = {k: v.shape[1:] for k, v in predict_outputs(source.model, x[:2], self.device, False, keys).items()}
        size = len(x) * sum(torch.Size(s).numel() for s in shapes.values()) * 4
        if size > cap * GIB:
            source.placement = f"live: outputs {size_text(size)} exceed train.cache_gib {cap}"
            return None
        home, source.placement = cache_home(self.device, size)
        return predict_outputs(source.model, x, self.device, self.cfg.train.amp, keys, to=home)

    def _load_weights(self, build: Callable[[], nn.Module], run_id: str) -> nn.Module:
        model = build()
        state = torch.load(io.BytesIO(self.tracker.read_bytes(run_id, WEIGHTS)), map_location="cpu",
                           weights_only=True)
        model.load_state_dict(state)
        return model.to(self.device).eval()

    def _finish_role(self, role: str, run_id: str, model: nn.Module, teacher: RoleResult | None,
                     log_weights: bool = True) -> RoleResult:
        """Evaluate the selected model on every split, log metrics and artifacts, close the run."""
        splits = self.splits
        assert splits is not None
        amp = self.cfg.train.amp
        probs = predictions(model, splits, self.device, amp)
        metrics = split_metrics(probs, splits, teacher.probs if teacher else {})
        if isinstance(model, Ensemble):
            metrics |= member_metrics(model, splits, self.device, amp)
        metrics |= cost_metrics(deployed(model), splits.test.x[:1].to(self.device))
        self.tracker.log_metrics(run_id, metrics, step=self.cfg.train.epochs_for(role))
        table = predictions_npz(probs, splits)
        self.tracker.log_bytes(run_id, "predictions.npz", table)
        remember_predictions(self.tracker, run_id, table)  # the diagnosis reads it from memory, not the store
        maps = attentions_npz(model, splits.test.x[:ATTENTION_EXAMPLES].to(self.device))
        if maps is not None:
            self.tracker.log_bytes(run_id, ATTENTIONS, maps)
        if log_weights:
            buffer = io.BytesIO()
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buffer)
            self.tracker.log_bytes(run_id, WEIGHTS, buffer.getvalue())
        self._end(run_id, "FINISHED")
        result = RoleResult(role, run_id, model, metrics, probs)
        self.roles[role] = result
        return result


def teacher_label(cfg: ExperimentConfig) -> str:
    """Who teaches in a study of ``cfg``, as its name and its ``kd.teacher`` tag say: the teacher(s), the peers,
    or ``self``."""
    distill = cfg.distill
    if distill.mechanism == "online":
        return "+".join(model_spec(peer) for peer in distill.peers)
    if not MECHANISMS.entry(distill.mechanism).meta.get("teacher", True):
        return "self"
    return "+".join(model_spec(teacher) for teacher in (cfg.teacher, *distill.teachers))


def deployed(model: nn.Module) -> nn.Module:
    """The part of a trained model that is shipped: a multi-exit network ships its chosen exit only."""
    return model.deployed() if hasattr(model, "deployed") else model


