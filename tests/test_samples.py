"""Sample studies: exported to a JSON file, replayed into an empty store as they were, and made from a manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from kdcore.config import config_from_yaml
from kdcore.samples import (
    HASH_TAG,
    SAMPLE_EXPERIMENT,
    SAMPLE_TAG,
    SAMPLES_DIR,
    SOURCE_TAG,
    SampleError,
    export_study,
    load_samples,
    make_samples,
    read_manifest,
)
from kdcore.store_probe import is_empty_store
from kdcore.study import Study
from kdcore.tracker import DIAGNOSIS_METRICS
from kdcore.tracking import MlflowTracker, list_studies, load_predictions, read_artifact, study_runs
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """A tiny finished study in its own store and its sample file: (source uri, study id, file)."""
    root = tmp_path_factory.mktemp("source")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    summary = Study(tiny_config("train.epochs=2"), MlflowTracker(uri), progress=False).run()
    return uri, summary.study_id, export_study(summary.study_id, root / "samples", uri)


def _all_runs(uri: str) -> list:
    return MlflowTracker(uri, SAMPLE_EXPERIMENT).find_runs({})


def test_export_writes_one_readable_file(exported) -> None:
    _, study_id, path = exported
    assert path.name == "digits-mlp-w32-d1-mlp-w8-d1-kd-t4-seed0.json"
    doc = json.loads(path.read_text())
    assert doc["study"]["tags"]["kd.study_id"] == study_id
    assert sorted(r["tags"]["kd.role"] for r in doc["roles"]) == ["baseline", "student", "teacher"]
    assert not any(k.startswith("mlflow.") for r in [doc["study"], *doc["roles"]] for k in r["tags"])
    assert '"val/acc": [\n' in path.read_text()  # one metric row per line: readable diffs
    assert "state_dict" not in path.read_text()


def test_load_replays_the_study_as_it_was(exported, sqlite_uri: str) -> None:
    source_uri, study_id, path = exported
    assert is_empty_store(sqlite_uri)
    assert load_samples(path.parent, sqlite_uri) == 1
    assert not is_empty_store(sqlite_uri)
    (new_id,) = list_studies(sqlite_uri, SAMPLE_EXPERIMENT)["study_id"]
    before, after = study_runs(study_id, source_uri), study_runs(new_id, sqlite_uri)

    assert len(after) == len(before) == 4
    assert "kd.teacher_fingerprint" in before[1].tags  # the source teacher had one ...
    for old, new in zip(before, after, strict=True):
        assert (new.name, new.status, new.start_time, new.end_time) == (old.name, old.status, old.start_time,
                                                                          old.end_time)
        assert new.params == old.params
        replayed = {key: rows for key, rows in new.history.items() if key not in DIAGNOSIS_METRICS}
        assert replayed == {key: rows for key, rows in old.history.items() if key not in DIAGNOSIS_METRICS}  # steps,
        # values and timestamps; the diagnosis is this version's, made once on load
        assert {key: [row[:2] for row in rows] for key, rows in new.history.items() if key in DIAGNOSIS_METRICS} == \
            {key: [row[:2] for row in rows] for key, rows in old.history.items() if key in DIAGNOSIS_METRICS}
        assert new.tags["kd.study_id"] == new_id
        assert new.tags[SAMPLE_TAG] == "true" and new.tags[SOURCE_TAG] == path.name and HASH_TAG in new.tags
        assert not {"kd.teacher_fingerprint", "kd.baseline_fingerprint"} & new.tags.keys()  # ... a replayed one
        kept = {k: v for k, v in old.tags.items() if k.startswith("kd.") and k not in {  # has no weights to reuse
            "kd.study_id", "kd.teacher_fingerprint", "kd.baseline_fingerprint"}}
        assert kept.items() <= new.tags.items()
    for new in after[1:]:
        assert new.tags["mlflow.parentRunId"] == new_id
        assert new.artifacts == ["predictions.npz"]
        old = next(r for r in before if r.tags["kd.role"] == new.tags["kd.role"])
        replayed, original = load_predictions(new.run_id, sqlite_uri), load_predictions(old.run_id, source_uri)
        assert sorted(replayed) == sorted(original)
        assert {"val_probs", "val_labels"} <= replayed.keys()  # validation predictions travel with the sample
        for key in ("val", "test", "shift"):
            np.testing.assert_array_equal(replayed[f"{key}_labels"], original[f"{key}_labels"])
            np.testing.assert_allclose(replayed[f"{key}_probs"], original[f"{key}_probs"], atol=5.1e-5)
    assert read_artifact(new_id, "config.yaml", sqlite_uri) == read_artifact(study_id, "config.yaml", source_uri)


def test_second_load_adds_nothing(exported, sqlite_uri: str) -> None:
    folder = exported[2].parent
    assert load_samples(folder, sqlite_uri) == 1
    count = len(_all_runs(sqlite_uri))
    assert load_samples(folder, sqlite_uri) == 0
    assert len(_all_runs(sqlite_uri)) == count == 4


def _corrupt(doc: dict, how: str) -> str:
    if how == "status":
        doc["roles"][1]["status"] = "DONE"
    elif how == "metric":
        doc["roles"][0]["metrics"]["val/acc"][0] = [0, 0.5]
    elif how == "predictions":
        doc["roles"][2]["predictions"]["test_labels"].pop()
    elif how == "half validation":
        del doc["roles"][2]["predictions"]["val_labels"]
    elif how == "config":
        doc["config_yaml"] = ["just text\n"]
    return json.dumps(doc)


@pytest.mark.parametrize(("how", "where"), [
    ("json", "Invalid JSON"), ("status", "roles.1.status"), ("metric", "roles.0.metrics.val/acc.0"),
    ("predictions", "roles.2.predictions"), ("half validation", "roles.2.predictions: val_probs and val_labels"),
    ("config", "config_yaml: not a YAML mapping"),
])
def test_malformed_file_is_named_and_loads_nothing(exported, sqlite_uri: str, tmp_path: Path, how: str,
                                                   where: str) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    shutil.copy(exported[2], folder / "a-good.json")  # checked files come first: none is loaded
    text = exported[2].read_text()
    (folder / "b-bad.json").write_text(text[:-200] if how == "json" else _corrupt(json.loads(text), how))
    with pytest.raises(SampleError, match=r"^sample b-bad\.json: ") as err:
        load_samples(folder, sqlite_uri)
    assert where in str(err.value) and "\n" not in str(err.value)
    assert _all_runs(sqlite_uri) == []


def _refused(doc: dict) -> str:
    """A file that passes every check but holds a metric name the store refuses."""
    doc["roles"][1]["metrics"]["val acc?"] = doc["roles"][1]["metrics"].pop("val/acc")
    return json.dumps(doc)


def test_a_file_the_store_refuses_is_removed_again(exported, sqlite_uri: str, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "refused.json").write_text(_refused(json.loads(exported[2].read_text())))
    with pytest.raises(SampleError, match=r'^sample refused\.json: not loaded, the store refused it: .*"val acc\?"'):
        load_samples(folder, sqlite_uri)
    assert _all_runs(sqlite_uri) == []  # the parent and the roles replayed before the refusal are gone


def _broken(doc: dict, how: str) -> str:
    if how == "truncated":
        return json.dumps(doc)[:-300]
    if how == "structure":
        return json.dumps([doc])
    if how == "missing":
        del doc["roles"][0]["tags"]
    elif how == "type":
        doc["study"]["start_time"] = "yesterday"
    return _refused(doc) if how == "refused" else json.dumps(doc)


@pytest.mark.parametrize(("how", "where"), [
    ("truncated", "Invalid JSON: EOF while parsing"), ("structure", "Input should be an object"),
    ("missing", "roles.0.tags: Field required"), ("type", "study.start_time: Input should be a valid integer"),
    ("refused", "not loaded, the store refused it: Invalid value"),
])
def test_kdx_samples_load_names_a_corrupt_file_in_one_line(exported, tmp_path: Path, how: str, where: str) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "broken.json").write_text(_broken(json.loads(exported[2].read_text()), how))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kdx = shutil.which("kdx", path=str(Path(sys.executable).parent))
    done = subprocess.run([kdx, "samples", "load", "--folder", str(folder), "--tracking-uri", uri],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(done.stderr.splitlines()) == 1, done.stderr[-2000:]
    assert done.stderr.startswith("kdx: error: sample broken.json: ") and where in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert _all_runs(uri) == []


def test_a_sample_without_validation_predictions_loads_and_its_gates_say_so(exported, sqlite_uri: str,
                                                                           tmp_path: Path) -> None:
    doc = json.loads(exported[2].read_text())
    for role in doc["roles"]:  # as the samples made before roles logged their validation predictions
        for key in ("val_probs", "val_labels"):
            del role["predictions"][key]
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "old.json").write_text(json.dumps(doc))
    assert load_samples(folder, sqlite_uri) == 1
    (study_id,) = list_studies(sqlite_uri, SAMPLE_EXPERIMENT)["study_id"]
    gates = {g["number"]: g for g in json.loads(read_artifact(study_id, "gates.json", sqlite_uri))}
    assert gates[9]["status"] == "not measurable" and "validation predictions" in gates[9]["reason"]


def test_export_refuses_a_role_run(exported) -> None:
    uri, study_id, _ = exported
    teacher = study_runs(study_id, uri)[1]
    with pytest.raises(ValueError, match="is not a study"):
        export_study(teacher.run_id, Path("unused"), uri)


def test_make_samples_writes_the_manifest_studies_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tiny_config("train.epochs=1").save(tmp_path / "tiny.yaml")
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "stale.json").write_text("{}")
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump([{"config": "tiny.yaml", "overrides": ["tracking.study_name=Tiny one"]}]))
    assert [p.name for p in make_samples(folder, manifest)] == ["tiny-one.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.yaml", "tiny-one.json"]


def test_make_samples_only_reruns_the_named_entries_and_keeps_the_other_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tiny_config("train.epochs=1").save(tmp_path / "tiny.yaml")
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "tiny-one.json").write_text("kept")
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump([{"config": "tiny.yaml", "overrides": [f"tracking.study_name=Tiny {n}"]}
                                        for n in ("one", "two")]))
    assert [p.name for p in make_samples(folder, manifest, only="two")] == ["tiny-two.json"]
    assert (folder / "tiny-one.json").read_text() == "kept"
    with pytest.raises(ValueError, match=r"^--only: no entry of manifest.yaml has a study name containing 'six'"):
        make_samples(folder, manifest, only="six")


def test_manifest_errors_are_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("- config: a.yaml\n  overides: [x=1]\n")
    with pytest.raises(ValueError, match=r"^manifest manifest.yaml: entry 0.overides: Extra inputs"):
        read_manifest(manifest)


def test_the_shipped_samples_load_as_finished_studies(sqlite_uri: str) -> None:
    files = sorted(SAMPLES_DIR.glob("*.json"))
    assert len(files) == len(read_manifest(SAMPLES_DIR / "manifest.yaml"))
    assert load_samples(SAMPLES_DIR, sqlite_uri) == len(files)
    studies = list_studies(sqlite_uri)
    assert len(studies) == len(files)
    assert (studies["status"] == "FINISHED").all()
    assert studies["student_acc"].notna().all()
    for path in files:  # the stored configs are still valid configs of this version
        config_from_yaml("".join(json.loads(path.read_text())["config_yaml"]))
    for study_id in studies["study_id"]:  # diagnosed on load, by this version's detectors and gates
        gates = json.loads(read_artifact(study_id, "gates.json", sqlite_uri))
        assert [g["number"] for g in gates] == list(range(1, 11))
        json.loads(read_artifact(study_id, "findings.json", sqlite_uri))
