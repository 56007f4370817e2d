"""Dashboard read speed on a store of 1,000 runs, created through kdcore's tracking.

Prints (targets in brackets):
  - the Studies page, warm (second render of a session)                   [<= 2 s]
  - Compare over 50 runs with 20 metrics of 50 steps each: the reads,
    and the whole page rendered warm                                      [<= 1 s]
The store is built once (about a minute); times are medians of alternating repeats.

    python benchmarks/bench_dashboard.py [--studies 250] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from kdcore.tracker import STUDY_ROLE
from kdcore.tracking import MlflowTracker, list_runs, list_studies, metric_history

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
ROLES = ("teacher", "baseline", "student")
CURVES = [f"bench/metric_{i:02d}" for i in range(20)]


def build_store(uri: str, studies: int, compared: int) -> list[str]:
    """``studies`` studies of 4 runs each; the first ``compared`` studies' roles get 20 x 50-step curves."""
    tracker = MlflowTracker(uri, "bench")
    rng = random.Random(0)
    ids = []
    for s in range(studies):
        tags = {"kd.role": STUDY_ROLE, "kd.dataset": rng.choice(["digits", "mnist1d"]), "kd.method": "kd",
                "kd.mechanism": "offline", "kd.knowledge": "response", "kd.teacher": "cnn2d-w32-d2",
                "kd.student": "mlp-w32-d1", "kd.findings": ""}
        params = {"distill.temperature": str(rng.choice([2, 4, 8])), "train.seed": str(s % 3),
                  "train.epochs": "50"}
        study_id = tracker.start_run(f"bench study {s}", tags, params)
        tracker.set_tags(study_id, {"kd.study_id": study_id})
        accs = {}
        for role in ROLES:
            run_id = tracker.start_run(role, {**tags, "kd.role": role, "kd.study_id": study_id}, params,
                                       parent_id=study_id)
            if s < compared:
                for step in range(50):
                    tracker.log_metrics(run_id, {k: rng.random() for k in CURVES}, step)
            accs[role] = rng.uniform(0.6, 0.99)
            tracker.log_metrics(run_id, {"test/acc": accs[role], "val/best_acc": accs[role],
                                         "model/params": rng.uniform(1e3, 1e5)}, step=50)
            tracker.end_run(run_id)
        tracker.log_metrics(study_id, {"study/teacher_acc": accs["teacher"], "study/student_acc": accs["student"],
                                       "study/baseline_acc": accs["baseline"],
                                       "study/acc_ratio_teacher": accs["student"] / accs["teacher"],
                                       "study/acc_ratio_baseline": accs["student"] / accs["baseline"]}, step=0)
        tracker.end_run(study_id)
        ids.append(study_id)
    return ids


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=250, help="studies in the store (4 runs each)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement")
    parser.add_argument("--smoke", action="store_true", help="20 studies, one repeat: that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.studies, args.repeats = 20, 1

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ["KDX_JOBS_DIR"] = str(Path(tmp) / "jobs")
        compared = 17  # 17 studies x 3 roles = 51 runs -> the first 50 are compared
        started = time.perf_counter()
        ids = build_store(uri, args.studies, compared)
        print(f"store: {args.studies * 4} runs, built in {time.perf_counter() - started:.0f}s")

        runs = list_runs(ids[:compared], uri).head(50)
        run_ids = list(runs["run_id"])
        cold, reads, studies_page, compare_page, studies_cold, compare_cold = [], [], [], [], [], []
        studies_app = AppTest.from_file(APP, default_timeout=120)
        studies_app.run()
        compare_app = AppTest.from_file(APP, default_timeout=120)
        compare_app.session_state["selection"] = ids[:compared]
        compare_app.run()
        compare_app.switch_page("views/compare.py").run()
        for _ in range(args.repeats):  # alternating turns
            cold.append(timed(lambda: list_studies(uri)))
            reads.append(timed(lambda: (list_runs(ids[:compared], uri),
                                        metric_history(run_ids, CURVES, uri))))
            studies_page.append(timed(studies_app.run))
            compare_page.append(timed(compare_app.run))
            studies_cold.append(timed(lambda: (st.cache_data.clear(), studies_app.run())))
            compare_cold.append(timed(lambda: (st.cache_data.clear(), compare_app.run())))
        history = metric_history(run_ids, CURVES, uri)
        assert len(history) == 50 * 20 * 50, len(history)
        print(f"Studies: list_studies over the store (uncached)      {statistics.median(cold):.2f}s")
        print(f"Studies page, warm                                   {statistics.median(studies_page):.2f}s"
              "   (target <= 2 s)")
        print(f"Compare reads: 50 runs, 20 metrics x 50 steps (bulk) {statistics.median(reads):.2f}s"
              "   (target <= 1 s)")
        print(f"Compare page, warm (cached reads, charts drawn)      {statistics.median(compare_page):.2f}s")
        print(f"Studies page, cold cache                             {statistics.median(studies_cold):.2f}s")
        print(f"Compare page, cold cache (reads and charts)          {statistics.median(compare_cold):.2f}s")


if __name__ == "__main__":
    main()
