"""The ``kdx`` command line: run studies, list what is registered, list the studies in a store.

Bad input (a config, an override, a name) ends with one line on stderr and exit code 2, before
anything is trained or logged. A study that fails mid-way exits 1 and says how to resume it; one
stopped by Ctrl-C or SIGTERM ends KILLED and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcore.boundaries import BOUNDARY_FLAGS, BOUNDARY_NAMES, BOUNDARY_SWITCHES
from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS, UnknownNameError
from kdcore.tracker import TrackingUnavailable

if TYPE_CHECKING:
    from kdcore.advisor import Advice
    from kdcore.study import StudySummary

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_runs"
DASHBOARD_APP = ROOT / "dashboard" / "app.py"
REGISTRIES = {"datasets": DATASETS, "models": MODELS, "methods": METHODS, "mechanisms": MECHANISMS}


class UsageError(Exception):
    """Input the user can fix; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdx", description="KD Explorer: run and compare knowledge-distillation studies."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run a study: teacher, independent baseline and distilled student",
        description="Train a study from a YAML config and log it to MLflow, then print its summary.",
        epilog="example: kdx run examples/digits_kd.yaml distill.temperature=8 train.seed=2",
    )
    run.add_argument("config", nargs="?", help="YAML config file (see examples/); omit it with --resume")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="override a config field, e.g. distill.temperature=8 train.seed=2")
    run.add_argument("--resume", metavar="STUDY_ID",
                     help="continue a failed or interrupted study where it stopped (no config needed)")
    run.add_argument("--tracking-uri", metavar="URI",
                     help="MLflow store or server; default: tracking.uri, $MLFLOW_TRACKING_URI, ./mlflow.db")
    run.add_argument("--no-progress", action="store_true", help="hide the per-epoch progress bars")
    run.add_argument("--job", metavar="DIR",
                     help="run as a queued job of the dashboard's launcher, with its state in DIR")

    sweep = commands.add_parser(
        "sweep", help="run a sweep's studies one after another and compare each point with its baseline",
        description="Expand a sweep file (grid and/or random points, each per seed), run every study in this "
                    "process and log it under a sweep run, then print each point's paired student - baseline "
                    "difference over its seeds, Holm-corrected across points.",
        epilog="example: kdx sweep examples/sweep_temperature.yaml train.epochs=4",
    )
    sweep.add_argument("sweep_file", metavar="SWEEP", help="sweep YAML file (examples/sweep_*.yaml)")
    sweep.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="override a config field for every point, e.g. train.epochs=4")
    sweep.add_argument("--resume", metavar="SWEEP_ID",
                       help="continue a sweep (same file and overrides): points with a finished study are skipped")
    sweep.add_argument("--dry-run", action="store_true", help="print the points and the study count; run nothing")
    sweep.add_argument("--workers", type=int, default=1, metavar="N",
                       help="share the studies among N worker processes (jobs of the dashboard's launcher), by seed")
    sweep.add_argument("--out", type=Path, metavar="FILE",
                       help="also write the summary as a Markdown table into FILE, between markers of the sweep's "
                            "name (running it again replaces only that table), e.g. docs/results.md")
    sweep.add_argument("--job", metavar="DIR", help=argparse.SUPPRESS)  # run as a launcher job, state in DIR
    sweep.add_argument("--join", metavar="SWEEP_ID", help=argparse.SUPPRESS)  # a worker: add studies to this sweep
    sweep.add_argument("--share", metavar="K/N", help=argparse.SUPPRESS)  # a worker: its share of the points
    sweep.add_argument("--tracking-uri", metavar="URI",
                       help="MLflow store or server; default: tracking.uri, $MLFLOW_TRACKING_URI, ./mlflow.db")

    listing = commands.add_parser(
        "list", help="list the registered datasets, models, methods and mechanisms",
        description="Print each registered component with a one-line description.",
    )
    listing.add_argument("kind", nargs="?", choices=sorted(REGISTRIES), metavar="KIND",
                         help=f"only this registry: {', '.join(sorted(REGISTRIES))} (default: all)")

    studies = commands.add_parser(
        "studies", help="list the studies in the tracking store with their key numbers",
        description="A table of studies, newest first: status, dataset, models, method, accuracies, ratios.",
    )
    studies.add_argument("--tracking-uri", metavar="URI",
                         help="MLflow store or server; default: $MLFLOW_TRACKING_URI, else ./mlflow.db")
    studies.add_argument("--experiment", metavar="NAME", help="only studies of this MLflow experiment")
    studies.add_argument("--limit", type=int, default=20, metavar="N", help="show the newest N (default 20)")
    studies.add_argument("--all", action="store_true", help="show every study (no --limit)")
    studies.add_argument("--dataset", metavar="NAME", help="only studies on this dataset (e.g. digits, csv)")
    studies.add_argument("--json", action="store_true",
                         help="print the studies as a JSON list (every column, full ids) for scripts")

    diagnose = commands.add_parser(
        "diagnose", help="recompute a study's findings and quality gates and log them on it",
        description="Run the failure-mode detectors and the ten quality gates on a logged study, "
                    "without retraining, and store findings.json, gates.json and the kd.findings tag.",
    )
    diagnose.add_argument("study_id", metavar="STUDY_ID",
                          help="the study's id or a unique start of it, e.g. the 8 characters kdx studies shows")
    diagnose.add_argument("--tracking-uri", metavar="URI",
                          help="MLflow store or server; default: $MLFLOW_TRACKING_URI, else ./mlflow.db")

    export = commands.add_parser(
        "export", help="export a study's distilled student (or another role) for deployment",
        description="Write a role's weights as safetensors, ONNX (checked against PyTorch with ONNX Runtime on the "
                    "test split) or a Hugging Face folder, with the study's config.yaml, a model.json to rebuild "
                    "it with kdcore and a model card; --register adds it to MLflow's Model Registry.",
        epilog="example: kdx export 3f2a91c0 --format onnx --register digits-student",
    )
    export.add_argument("study_id", metavar="STUDY", help="the study's id or a unique start of it (kdx studies)")
    export.add_argument("--role", default="student", help="the role to export (default student)")
    export.add_argument("--format", required=True, metavar="FORMAT", help="safetensors, onnx or hf")
    export.add_argument("--out", type=Path, metavar="DIR", help="folder to write; default exports/<short id>-<role>")
    export.add_argument("--force", action="store_true", help="replace --out when it exists and is not empty")
    export.add_argument("--register", metavar="NAME",
                        help="register the export in the store's Model Registry as a new version of NAME")
    export.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow store or server; default: $MLFLOW_TRACKING_URI, else ./mlflow.db")

    advise = commands.add_parser(
        "advise", help="recommend a distillation approach for a teacher/student situation",
        description="Walk the decision tree (capacity gap, knowledge type, mechanism, representation gap) and "
                    "print the advice with the rule that fired at each step. A YAML situation file and flags "
                    "combine; flags win.",
        epilog="example: kdx advise --dataset mnist1d --teacher cnn1d:large --student mlp:tiny --write study.yaml",
    )
    advise.add_argument("situation", nargs="?", type=Path, help="YAML situation file (keys as in --help below)")
    advise.add_argument("--dataset", help="registered dataset (sizes the models, makes the config runnable)")
    for side in ("teacher", "student"):
        advise.add_argument(f"--{side}", metavar="MODEL[:SIZE]",
                            help=f"registered model of the {side}, with a size preset (tiny, small, medium, large)")
        advise.add_argument(f"--{side}-width", type=int, metavar="N", help=f"{side} width (overrides the preset)")
        advise.add_argument(f"--{side}-depth", type=int, metavar="N", help=f"{side} depth (overrides the preset)")
        advise.add_argument(f"--{side}-params", type=int, metavar="N",
                            help=f"{side} parameter count, instead of a model")
        advise.add_argument(f"--{side}-acc", type=float, metavar="A",
                            help=f"{side} accuracy in [0, 1]" + (" when trained alone" if side == "student" else ""))
        advise.add_argument(f"--{side}-modality", metavar="NAME", help=f"{side} modality, e.g. rgb, depth, text")
        advise.add_argument(f"--{side}-task", metavar="NAME", help=f"{side} task (default classification)")
    advise.add_argument("--needs", metavar="LIST", help="what the task needs: decisions, patterns, structure "
                                                        "(comma-separated for several)")
    advise.add_argument("--no-proven-teacher", action="store_true", help="no trained, trusted teacher exists")
    advise.add_argument("--unstable-domain", action="store_true", help="the data drifts while the student learns")
    advise.add_argument("--several-learners", action="store_true",
                        help="several learners train together (online only when exploration is needed too)")
    _add_boundary_switches(advise)
    advise.add_argument("--from-study", metavar="STUDY_ID",
                        help="take models, dataset and measured accuracies (teacher, baseline) from a study")
    advise.add_argument("--tracking-uri", metavar="URI", help="store of --from-study; default as for kdx studies")
    advise.add_argument("--write", type=Path, metavar="CONFIG",
                        help="write the advice as a runnable study config (YAML) to this file")
    advise.add_argument("--base", type=Path, metavar="CONFIG",
                        help="config whose other choices (training budget, tracking) --write keeps")

    bench = commands.add_parser(
        "bench", help="run the method zoo or a mechanism suite (results tables), or the speed benchmarks",
        description="Run every method on a dataset's benchmark pair (benchmarks/pairs/DATASET.yaml), or a "
                    "suite of mechanism variants (benchmarks/mechanisms/SUITE.yaml), for several seeds; log "
                    "the studies and write the table into a Markdown file.",
    )
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    methods = bench_commands.add_parser("methods", help="every method, same pair and budget")
    methods.add_argument("--dataset", required=True, help="dataset with a benchmark pair: digits, mnist1d")
    methods.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per method (default 3)")
    methods.add_argument("--methods", metavar="LIST", help="comma-separated subset (default: every method)")
    methods.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md",
                         help="Markdown file to write the table into (default docs/results.md)")
    methods.add_argument("--tracking-uri", metavar="URI",
                         help="MLflow store or server; default: $MLFLOW_TRACKING_URI, else ./mlflow.db")
    methods.add_argument("--progress", action="store_true", help="show the per-epoch progress bars")
    speed = bench_commands.add_parser(
        "speed", help="every speed target: training loop, tracking share, start-up, each beside its target",
        description="Time kdcore's loop against a hand-written one, MLflow's share of a study and the start-up of "
                    "kdx commands and launched studies; print every ratio beside its target (benchmarks/).")
    speed.add_argument("--rounds", type=int, default=5, metavar="N", help="alternating timed turns (default 5)")
    speed.add_argument("--epochs", type=int, default=5, metavar="N", help="epochs per training turn (default 5)")
    speed.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default 1)")
    speed.add_argument("--smoke", action="store_true", help="tiny sizes and one round: that it runs, in a minute")
    suite = bench_commands.add_parser("mechanisms", help="a suite of mechanism variants on one pair")
    suite.add_argument("--suite", required=True, help="suite in benchmarks/mechanisms/, e.g. mnist1d_hard")
    suite.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per variant (default 3)")
    suite.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override for every variant, e.g. distill.alpha=0.5 (repeatable); its table is kept "
                            "apart from the suite's plain one")
    suite.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md",
                       help="Markdown file to write the table into (default docs/results.md)")
    suite.add_argument("--tracking-uri", metavar="URI",
                       help="MLflow store or server; default: $MLFLOW_TRACKING_URI, else ./mlflow.db")
    suite.add_argument("--progress", action="store_true", help="show the per-epoch progress bars")

    dashboard = commands.add_parser(
        "dashboard", help="start the dashboard in the browser",
        description="Serve the Streamlit dashboard over the tracking store. An empty store is first "
                    "filled with the example studies of sample_runs/.",
    )
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to bind (default 127.0.0.1: this machine only)")
    dashboard.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    dashboard.add_argument("--allowed-host", action="append", metavar="NAME", default=[],
                           help="extra hostname browsers may use, besides the localhost names (repeatable)")
    dashboard.add_argument("--tracking-uri", metavar="URI",
                           help="MLflow store or server; default: $MLFLOW_TRACKING_URI, else ./mlflow.db")
    dashboard.add_argument("--max-concurrent", type=int, metavar="N",
                           help="studies that may train at once on the CPU (default 1; one per GPU on GPUs)")
    dashboard.add_argument("--no-samples", action="store_true",
                           help="do not load the example studies into an empty store")
    dashboard.add_argument("--data-root", metavar="DIR", type=Path,
                           help="folder Launch and the Advisor may read your models and data from; nothing "
                                "outside it is read (default: the current folder)")
    dashboard.add_argument("--workshop", action="store_true",
                           help="for a workshop: open on the Learn pages, hide advanced options and the deploy menu")

    samples = commands.add_parser(
        "samples", help="load or regenerate the example studies of sample_runs/",
        description="Example studies are real studies made by kdx, stored as one JSON file each.",
    )
    samples_commands = samples.add_subparsers(dest="samples_command", required=True, metavar="ACTION")
    load = samples_commands.add_parser("load", help="replay the example studies into a tracking store "
                                                    "(idempotent; keeps steps and timestamps)")
    load.add_argument("--folder", type=Path, default=SAMPLES, help=f"folder of study files (default {SAMPLES})")
    load.add_argument("--tracking-uri", metavar="URI",
                      help="MLflow store or server; default: $MLFLOW_TRACKING_URI, else ./mlflow.db")
    make = samples_commands.add_parser("make", help="re-run the example studies from their configs and "
                                                    "rewrite the files")
    make.add_argument("--folder", type=Path, default=SAMPLES, help=f"folder of study files (default {SAMPLES})")
    make.add_argument("--manifest", type=Path, default=None,
                      help="YAML list of {config, overrides} (default FOLDER/manifest.yaml)")
    make.add_argument("--only", metavar="TEXT",
                      help="re-run only the entries whose study name contains TEXT; the other files stay")
    return parser


# --- commands -------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    for kind, registry in REGISTRIES.items():
        if args.kind in (None, kind):
            print(f"{kind}:")
            entries = list(registry)
            width = max(12, *(len(entry.name) + 1 for entry in entries))
            for entry in entries:
                print(f"  {entry.name:<{width}} {entry.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kdcore.engine import resolve_device
    from kdcore.ownership import StudyBusy
    from kdcore.study import Study, StudyFailed, Terminated
    from kdcore.tracking import MlflowTracker, resolve_study_id

    if args.resume:
        if args.config or args.overrides:
            raise UsageError("--resume continues a study with its own config; give no CONFIG or KEY=VALUE")
        tracker = MlflowTracker(args.tracking_uri)
        try:
            study = Study.resume(resolve_study_id(args.resume, args.tracking_uri), tracker,
                                 progress=not args.no_progress)
        except StudyBusy as err:
            raise UsageError(f"--resume: {err}") from None
        except TrackingUnavailable:
            raise
        except Exception as err:  # an unknown id surfaces as MLflow's own exception type
            raise UsageError(f"--resume: cannot resume {args.resume}: {_one_line(err)}") from None
    else:
        if not args.config:
            raise UsageError("run: give a CONFIG file (e.g. examples/digits_kd.yaml) or --resume STUDY_ID")
        from kdcore.config import load_config

        cfg = load_config(args.config, args.overrides)
        try:
            resolve_device(cfg.train.device)
        except ValueError as err:
            raise UsageError(str(err)) from None
        from kdcore.preflight import check_models

        check_models(cfg)  # a model from outside that does not build: one line, and no store is even opened
        tracker = MlflowTracker(args.tracking_uri or cfg.tracking.uri, cfg.tracking.experiment)
        study = Study(cfg, tracker, progress=not args.no_progress)
    signal.signal(signal.SIGTERM, _terminate_once)  # timeout, systemd, docker stop: stop like Ctrl-C
    try:
        if args.job:
            from kdcore.launcher import run_job

            summary = run_job(Path(args.job), study)
        else:
            summary = study.run()
    except StudyBusy as err:
        raise UsageError(f"run: {err}") from None
    except StudyFailed as err:
        cause = err.__cause__
        print(f"kdx: {_one_line(err)}\n     continue it with: kdx run --resume {err.study_id}", file=sys.stderr)
        if isinstance(cause, Terminated):
            return 128 + signal.SIGTERM
        return 128 + signal.SIGINT if isinstance(cause, KeyboardInterrupt) else 1
    print(format_summary(summary, tracker.uri))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from kdcore.sweep_spec import SweepError, check, configure, count, expand, load_sweep

    try:
        spec = load_sweep(args.sweep_file, args.overrides)
        if spec.search is not None:  # Optuna picks the points as it goes: check the space, build the first
            check(spec)
            points = []
            cfg = configure(spec, {field: axis.ends()[0] for field, axis in spec.search.axes.items()},
                            spec.seeds[0])
        else:
            points = expand(spec)
            cfg = points[0].config
    except SweepError as err:
        raise UsageError(str(err)) from None
    if args.dry_run and spec.search is not None:
        axes = ", ".join(spec.search.axes)
        print(f"an Optuna search of {spec.search.trials} trials over {axes}, each on seeds {spec.seeds}, "
              f"optimising {spec.search.objective} ({spec.search.direction})")
        print(f"{count(spec)} studies at most (dry run: nothing ran)")
        return 0
    if args.dry_run:
        for point in points:
            print(f"{point.key:<8} {point.label}")
        print(f"{count(spec)} studies (dry run: nothing ran)")
        return 0
    from kdcore.engine import resolve_device
    from kdcore.study import Terminated
    from kdcore.sweep import SweepInterrupted, SweepRefused, run_sweep, summary_text
    from kdcore.tracking import MlflowTracker

    try:
        resolve_device(cfg.train.device)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.workers < 1:
        raise UsageError(f"--workers: {args.workers} is not a worker count; allowed: 1 or more")
    if args.workers > 1 and spec.search is not None:
        raise UsageError("--workers: a search runs its trials in order in one process; give --workers to grid and "
                         "random sweeps")
    tracker = MlflowTracker(args.tracking_uri or cfg.tracking.uri, cfg.tracking.experiment)
    signal.signal(signal.SIGTERM, _terminate_once)  # stop like Ctrl-C: the study and the sweep end KILLED
    if args.join:
        return _sweep_share(args, points, tracker, resolve_device(cfg.train.device))
    text = Path(args.sweep_file).read_text()
    execute = None
    if args.workers > 1:
        from kdcore.sweep_workers import executor

        execute = executor(Path(args.sweep_file), args.overrides, points, tracker, args.workers, spec.name)
    try:
        if args.job:
            from kdcore.launcher import run_sweep_job

            results: list = []

            def body(started: Callable[[str], None]) -> tuple[str, str]:
                results.append(run_sweep(spec, points, tracker, text, args.overrides, args.resume, started=started))
                failed = results[0].summary["failed"]
                return ("finished", "") if not failed else ("failed", f"{len(failed)} studies failed")

            run_sweep_job(Path(args.job), resolve_device(cfg.train.device), body)
            result = results[0]
        else:
            result = run_sweep(spec, points, tracker, text, args.overrides, args.resume, execute=execute)
    except SweepRefused as err:
        raise UsageError(str(err)) from None
    except SweepInterrupted as err:
        resume = " ".join(["kdx sweep", args.sweep_file, *args.overrides, "--resume", err.sweep_id])
        print(f"kdx: {_one_line(err)}\n     continue it with: {resume}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err.interrupt, Terminated) else signal.SIGINT)
    print(summary_text(result.summary))
    print(f"sweep {result.sweep_id} {result.status}; logged to {tracker.uri}")
    if args.out:
        from kdcore.bench import write_section
        from kdcore.sweep import summary_markdown

        write_section(args.out, f"sweep:{spec.name}", summary_markdown(result.summary, args.sweep_file))
        print(f"summary written to {args.out}")
    return 0 if result.status == "FINISHED" else 1


def _sweep_share(args: argparse.Namespace, points: list, tracker: Any, device: Any) -> int:
    """A worker of ``kdx sweep --workers``: its share of the points, added to the sweep ``--join`` names."""
    from kdcore.study import Terminated
    from kdcore.sweep_workers import run_share, share

    k, _, n = (args.share or "").partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise UsageError(f"--share: {args.share!r} is not K/N with 0 <= K < N")
    mine = share(points, int(k), int(n))
    try:
        if args.job:
            from kdcore.launcher import run_sweep_job

            def body(started: Callable[[str], None]) -> tuple[str, str]:
                started(args.join)
                failed = [o for o in run_share(tracker, args.join, mine) if o.status == "FAILED"]
                return ("finished", "") if not failed else ("failed", f"{len(failed)} studies failed")

            run_sweep_job(Path(args.job), device, body)
        else:
            run_share(tracker, args.join, mine)
    except KeyboardInterrupt as err:
        print(f"kdx: worker {args.share} of sweep {args.join} stopped ({type(err).__name__})", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)
    return 0


def _terminate_once(signum: int, frame: object) -> None:
    """Turn SIGTERM into :class:`Terminated` once; a second one must not interrupt the study's cleanup."""
    from kdcore.study import Terminated

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated("stopped by SIGTERM")


def cmd_studies(args: argparse.Namespace) -> int:
    import json

    from kdcore.local_store import resolve_uri
    from kdcore.study_list import list_studies

    if args.limit < 1:
        raise UsageError(f"--limit: give a number of studies of at least 1 (got {args.limit})")
    frame = list_studies(args.tracking_uri, args.experiment)
    if args.dataset:
        frame = frame[frame["dataset"] == args.dataset]
    total = len(frame)
    shown = frame if args.all else frame.head(args.limit)
    if args.json:
        records = json.loads(shown.to_json(orient="records", date_format="iso"))
        print(json.dumps(records, indent=1))
        return 0
    if frame.empty:
        where = f" on dataset {args.dataset}" if args.dataset else ""
        print(f"no studies{where} in {resolve_uri(args.tracking_uri)}; run one with: kdx run examples/digits_kd.yaml")
        return 0
    print("  ".join(f"{title:{align}{width}}" for title, width, align in STUDY_TABLE))
    for row in shown.itertuples():
        findings = len([f for f in str(row.findings or "").split(",") if f]) if not _missing(row.findings) else 0
        gates = "-" if _missing(row.gates_passed) else f"{int(row.gates_passed)}/10"
        cells = [str(row.study_id)[:8], _s(row.name, 34), _s(row.status, 8), _s(row.dataset, 11), _s(row.method, 6),
                 _pct(row.teacher_acc), _pct(row.baseline_acc), _pct(row.student_acc), _num(row.ratio_teacher),
                 _num(row.ratio_baseline), str(findings), gates]
        print("  ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, STUDY_TABLE, strict=True)))
    if len(shown) < total:
        print(f"showing the newest {len(shown)} of {total} studies; --all shows every one, --limit N more")
    return 0


# kdx studies: (title, width, alignment) of each column; ids are the 8-character prefix every command accepts
STUDY_TABLE = [("study", 8, "<"), ("name", 34, "<"), ("status", 8, "<"), ("dataset", 11, "<"), ("method", 6, "<"),
               ("teacher", 7, ">"), ("baseline", 8, ">"), ("student", 7, ">"), ("s/t", 5, ">"), ("s/b", 5, ">"),
               ("findings", 8, ">"), ("gates", 5, ">")]


# --- formatting -----------------------------------------------------------------------------------
def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _s(value: object, width: int | None = None) -> str:
    """Store text for a terminal cell: one line, cut to ``width`` with an ellipsis."""
    text = "-" if _missing(value) else " ".join(str(value).split())
    return text if width is None or len(text) <= width else text[:width - 1] + "…"


def _pct(value: object) -> str:
    if _missing(value):
        return "-"
    number = float(value)  # type: ignore[arg-type]
    return f"{100 * number:.1f}%" if math.isfinite(number) else str(number)


def _num(value: object) -> str:
    if _missing(value):
        return "-"
    number = float(value)  # type: ignore[arg-type]
    return f"{number:.2f}" if math.isfinite(number) else str(number)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def format_summary(s: StudySummary, uri: str) -> str:
    """The study's roles and ratios as a small table for the terminal."""
    cfg = s.cfg
    lines = [f"study {s.study_id}  {s.name}",
             f"  {'role':<11} {'val acc':>8} {'test acc':>9} {'shift acc':>10} {'params':>9} {'ms/sample':>10}"]
    for role, m in s.roles.items():
        lines.append(f"  {role:<11} {_pct(m['val/best_acc']):>8} {_pct(m['test/acc']):>9} {_pct(m['shift/acc']):>10} "
                     f"{int(m['model/params']):>9,} {m['model/latency_ms']:>10.4f}")
    if all("test/token_acc" in m for m in s.roles.values()):  # sequences: exact matches, or tokens
        if all(m["test/acc"] == m["test/token_acc"] for m in s.roles.values()):
            per_token = ", ".join(f"{role} {m['test/perplexity']:.2f}" for role, m in s.roles.items())
            lines.append(f"  accuracies are per token (running text); perplexity: {per_token}")
        else:
            per_token = ", ".join(f"{role} {_pct(m['test/token_acc'])} (perplexity {m['test/perplexity']:.2f})"
                                  for role, m in s.roles.items())
            lines.append(f"  accuracies are exact matches per sequence; per token: {per_token}")
    st = s.metrics
    if "teacher" in s.roles:
        lines.append(
            f"  student/teacher {_num(st.get('study/acc_ratio_teacher'))}   "
            f"student/baseline {_num(st.get('study/acc_ratio_baseline'))}   "
            f"params {_num(st.get('study/param_ratio'))}x fewer   speed-up {_num(st.get('study/speedup'))}x"
        )
    else:  # online and self studies train no teacher
        peers = (f"   best peer {_pct(st['study/peer_best_acc'])}, mean {_pct(st['study/peer_mean_acc'])}"
                 if "study/peer_best_acc" in st else "")
        lines.append(f"  student/baseline {_num(st.get('study/acc_ratio_baseline'))}{peers}   (no teacher: "
                     f"{cfg.distill.mechanism} mechanism)")
    passed = sum(g.status == "passed" for g in s.gates)
    lines.append(f"  quality gates passed {passed}/{len(s.gates)}; findings: "
                 + (", ".join(f"{f.title} ({f.severity})" for f in s.findings) or "none"))
    if s.teacher_reused_from:
        lines.append(f"  teacher reused from run {s.teacher_reused_from} (identical config)")
    if s.teacher_cache:
        lines.append(f"  teacher outputs for the student: {s.teacher_cache}")
    for role, model in (("teacher", s.cfg.teacher), ("student", s.cfg.student)):
        if model.checkpoint or (model.path and not model.train):
            origin = model.checkpoint or model.path
            lines.append(f"  {role} weights from {origin} ({'trained further' if model.train else 'as is'})")
    if s.shift:
        lines.append(f"  shifted test split: {s.shift}")
    lines.append(f"  method {cfg.distill.method}, T={cfg.distill.temperature}, alpha={cfg.distill.alpha}; "
                 f"logged to {uri} in {st.get('study/wall_s', 0):.1f}s")
    return "\n".join(lines)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from kdcore.study_results import diagnose
    from kdcore.tracker import STUDY_ROLE
    from kdcore.tracking import MlflowTracker, resolve_study_id

    try:
        args.study_id = resolve_study_id(args.study_id, args.tracking_uri)
        tracker = MlflowTracker.for_run(args.study_id, args.tracking_uri)
        if tracker.get_run(args.study_id).tags.get("kd.role") != STUDY_ROLE:
            raise ValueError("it is not a study")
    except TrackingUnavailable:
        raise
    except Exception as err:  # an unknown id surfaces as MLflow's own exception type
        raise UsageError(f"diagnose: cannot read study {args.study_id}: {_one_line(err)}") from None
    findings, gates = diagnose(tracker, args.study_id)
    for gate in gates:
        numbers = ", ".join(f"{k} {v:.3g}" for k, v in gate.numbers.items())
        print(f"  gate {gate.number:>2} {gate.status:<15} {gate.name}" + (f" ({numbers})" if numbers else "")
              + (f"; {gate.reason}" if gate.reason and gate.status != "passed" else ""))
    for finding in findings:
        evidence = ", ".join(f"{k} {v:.3g}" for k, v in finding.evidence.items())
        print(f"  finding [{finding.severity}] {finding.title}: {evidence}\n    fix: {finding.fix}")
    if not findings:
        print("  no failure mode detected")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from kdcore.export import export_study
    from kdcore.export_error import ExportError

    try:
        result = export_study(args.study_id, role=args.role, fmt=args.format, out=args.out, force=args.force,
                              register=args.register, uri=args.tracking_uri)
    except ExportError as err:
        raise UsageError(f"export: {err}") from None
    print("\n".join(result.lines()))
    return 0


def _add_boundary_switches(advise: argparse.ArgumentParser) -> None:
    """One switch per NOT-FOR boundary (different tasks come from --teacher-task / --student-task), and
    --accept-boundary to distill despite one."""
    for flag, meaning in BOUNDARY_SWITCHES.items():
        advise.add_argument(f"--{flag.replace('_', '-')}", action="store_true",
                            help=f"NOT-FOR boundary {flag}: {meaning}")
    advise.add_argument("--accept-boundary", action="append", default=[], choices=BOUNDARY_NAMES, metavar="NAME",
                        help="distill despite this NOT-FOR boundary (repeatable; recorded in the config): "
                             f"{', '.join(BOUNDARY_NAMES)}")


def situation_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The raw situation: the YAML file (or a study's measurements), then the flags on top."""
    from kdcore.config import load_raw

    raw: dict[str, Any] = {}
    if args.situation is not None:
        raw = load_raw(args.situation, "situation file")
    if args.from_study:
        raw = _measured(args.from_study, args.tracking_uri) | raw
    if args.dataset:
        raw["dataset"] = args.dataset
    for side in ("teacher", "student"):
        spec = raw.setdefault(side, {})
        if not isinstance(spec, dict):
            raise UsageError(f"{side}: expected a mapping of model, size, params, accuracy, ...")
        model = getattr(args, side)
        if model:
            name, _, size = model.partition(":")
            spec.update({"model": name, "size": size or None})
            spec.pop("params", None)
        for key, attr in (("width", "width"), ("depth", "depth"), ("params", "params"), ("accuracy", "acc"),
                          ("modality", "modality"), ("task", "task")):
            value = getattr(args, f"{side}_{attr}")
            if value is not None:
                spec[key] = value
    if args.needs:
        raw["needs"] = [n.strip() for n in args.needs.split(",") if n.strip()]
    for flag, key, value in ((args.no_proven_teacher, "proven_teacher", False),
                             (args.unstable_domain, "stable_domain", False),
                             (args.several_learners, "several_learners", True)):
        if flag:
            raw[key] = value
    raw |= {flag: True for flag in BOUNDARY_FLAGS if getattr(args, flag)}
    return raw


def _measured(study_id: str, uri: str | None) -> dict[str, Any]:
    from kdcore.diagnostics import measured_situation
    from kdcore.study_results import study_results
    from kdcore.tracking import MlflowTracker, resolve_study_id

    try:
        study_id = resolve_study_id(study_id, uri)
        tracker = MlflowTracker.for_run(study_id, uri)
        found = measured_situation(study_results(tracker, study_id))
    except TrackingUnavailable:
        raise
    except Exception as err:  # an unknown id surfaces as MLflow's own exception type
        raise UsageError(f"--from-study: cannot read study {study_id}: {_one_line(err)}") from None
    if found is None:
        raise UsageError(f"--from-study: study {study_id} has no registered teacher and student to assess")
    return found.model_dump(mode="json", exclude_defaults=True)


def format_advice(advice: Advice, accept: Sequence[str] = ()) -> str:
    """The verdict (with the alternative when a NOT-FOR boundary applies), the path through the tree, then
    what to run, for the terminal."""
    lines = [f"verdict         {advice.verdict}"]
    for boundary in advice.not_for:
        lines += [f"  {boundary.name}: {boundary.boundary}", f"    instead: {boundary.instead}"]
    for step in advice.path:
        lines.append(f"{step.step}. {step.question}: {step.rule} -> {step.outcome}")
        if step.detail:
            lines.append(f"     {step.detail}")
    low, high, suggested = advice.temperature
    lines += [f"mechanism       {advice.mechanism}",
              f"knowledge       {', '.join(advice.knowledge)} (method {advice.method})",
              f"representation  {advice.representation}",
              f"temperature     {low:g}-{high:g} (suggested {suggested:g})"]
    for k, assistant in enumerate(advice.assistants, start=1):
        size = f"{assistant.name} width {assistant.width} depth {assistant.depth}" if assistant.name else "a model"
        lines.append(f"assistant {k}     {size}, ~{assistant.params:,} parameters")
    for rule in (advice.chain_rule, advice.assistant_rule, advice.stage_rule):
        if rule:
            lines.append(f"                {rule}")
    if advice.policy:
        lines.append(f"policy          {advice.policy}")
    problem = advice.runnable(accept)
    lines.append(f"runnable        {'no: ' + problem if problem else 'yes (--write CONFIG writes the study)'}")
    return "\n".join(lines)


def cmd_advise(args: argparse.Namespace) -> int:
    from kdcore.advisor import advise
    from kdcore.config import SECTIONS, load_raw

    advice = advise(situation_from_args(args))
    print(format_advice(advice, args.accept_boundary))
    if args.write:
        base = load_raw(args.base, "--base config file", SECTIONS) if args.base else None
        cfg = advice.to_config(base, accept=args.accept_boundary)
        args.write.parent.mkdir(parents=True, exist_ok=True)
        cfg.save(args.write)
        print(f"wrote {args.write}; run it with: kdx run {args.write}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_command == "speed":
        return _bench_speed(args)
    from kdcore import bench

    if args.seeds < 1:
        raise UsageError(f"--seeds: must be at least 1 (got {args.seeds})")
    try:
        if args.bench_command == "mechanisms":
            section = ":".join(["mechanisms", args.suite, *args.set])
            rows = bench.run_suite(args.suite, args.seeds, args.tracking_uri, args.progress, args.set)
            text = bench.suite_table(args.suite, rows, args.seeds, args.set)
        else:
            section = args.dataset
            chosen = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
            rows, reference = bench.run_methods(args.dataset, args.seeds, chosen, args.tracking_uri, args.progress)
            text = bench.table(args.dataset, rows, reference, args.seeds)
    except ValueError as err:
        raise UsageError(str(err)) from None
    bench.write_section(args.out, section, text)
    print(text + f"\nwritten to {args.out}")
    return 0


def _bench_speed(args: argparse.Namespace) -> int:
    """Run benchmarks/bench_speed.py, which prints every speed ratio beside its target."""
    import importlib.util

    script = ROOT / "benchmarks" / "bench_speed.py"
    if not script.is_file():
        raise UsageError(f"bench speed: no {script}; it runs from a source checkout of KD Explorer")
    for name, value in (("--rounds", args.rounds), ("--epochs", args.epochs), ("--threads", args.threads)):
        if value < 1:
            raise UsageError(f"{name}: must be at least 1 (got {value})")
    spec = importlib.util.spec_from_file_location("bench_speed", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([f"--rounds={args.rounds}", f"--epochs={args.epochs}", f"--threads={args.threads}",
                 *(["--smoke"] if args.smoke else [])])
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import os

    from kdcore.dashboard_server import dashboard_command
    from kdcore.store_probe import is_empty_store
    from kdcore.tracking import resolve_uri

    uri = resolve_uri(args.tracking_uri)
    if args.data_root is not None and not args.data_root.expanduser().is_dir():
        raise UsageError(f"--data-root: no folder {str(args.data_root)!r}")
    if not args.no_samples and SAMPLES.is_dir() and is_empty_store(uri):
        from kdcore.samples import SampleError, load_samples

        try:
            print(f"kdx: loaded {load_samples(SAMPLES, uri)} example studies into {uri}")
        except SampleError as err:
            raise UsageError(str(err)) from None
    from kdcore import warm_start

    warm_start.ensure()  # launched studies fork from it: their imports are paid now, once
    command, env = dashboard_command(DASHBOARD_APP, args.host, args.port, args.allowed_host, args.workshop,
                                     args.max_concurrent, uri, data_root=args.data_root or Path.cwd())
    print(f"kdx: dashboard on http://{args.host}:{args.port} over {uri}", flush=True)
    os.execve(sys.executable, command, env)  # become the server: stopping kdx stops Streamlit, nothing is orphaned
    return 0  # not reached


def cmd_samples(args: argparse.Namespace) -> int:
    import time

    from kdcore.samples import SampleError, load_samples, make_samples
    from kdcore.tracking import resolve_uri

    if not args.folder.is_dir():
        raise UsageError(f"--folder: {args.folder} is not a folder")
    if args.samples_command == "load":
        started = time.perf_counter()
        try:
            count = load_samples(args.folder, resolve_uri(args.tracking_uri))
        except SampleError as err:
            raise UsageError(str(err)) from None
        print(f"loaded {count} studies from {args.folder} into {resolve_uri(args.tracking_uri)} "
              f"in {time.perf_counter() - started:.1f}s")
        return 0
    manifest = args.manifest or args.folder / "manifest.yaml"
    if not manifest.is_file():
        raise UsageError(f"--manifest: {manifest} does not exist")
    try:
        written = make_samples(args.folder, manifest, args.only)
    except SampleError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {len(written)} study files to {args.folder}")
    return 0


def _open_named_store(args: argparse.Namespace) -> None:
    """A store named by --tracking-uri or $MLFLOW_TRACKING_URI that cannot be used fails in seconds, before
    torch loads (a store named only in a config is checked when the config has been read)."""
    import os

    from kdcore.local_store import existing_sqlite

    uri = getattr(args, "tracking_uri", None) or os.environ.get("MLFLOW_TRACKING_URI")
    if args.command == "studies" and existing_sqlite(uri):  # read with SQLite itself; a bad file falls back to MLflow
        return
    if (uri and hasattr(args, "tracking_uri") and (args.command != "advise" or args.from_study)
            and not getattr(args, "dry_run", False)):
        from kdcore.tracking import open_store

        open_store(uri)


COMMANDS = {"run": cmd_run, "list": cmd_list, "studies": cmd_studies, "diagnose": cmd_diagnose,
            "advise": cmd_advise, "bench": cmd_bench, "dashboard": cmd_dashboard,
            "samples": cmd_samples, "export": cmd_export, "sweep": cmd_sweep}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _open_named_store(args)
        return COMMANDS[args.command](args)
    except (UnknownNameError, UsageError, TrackingUnavailable, *_loaded_errors()) as err:
        print(f"kdx: error: {_one_line(err)}", file=sys.stderr)
        return 2


USER_ERRORS = (("kdcore.config", "ConfigError"), ("kdcore.advisor", "AdviceError"))  # modules a command may import


def _loaded_errors() -> tuple[type[Exception], ...]:
    """The user-input errors of the modules this command imported: one it never imported cannot have raised its
    error, and importing it only to name the class would cost every command its start-up time."""
    return tuple(getattr(sys.modules[module], name) for module, name in USER_ERRORS if module in sys.modules)


if __name__ == "__main__":
    sys.exit(main())
