"""mlgen_runtime.training and mlgen_runtime.artifacts: the checks and records around training."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mlgen_runtime.artifacts import model_version, repo_root, sha256_of, write_json
from mlgen_runtime.serving import file_version
from mlgen_runtime.training import (
    TrainingError,
    check_export,
    check_gate,
    load_dataset,
    main,
    summary,
    training_cutoff,
    write_record,
)


def test_gate_passes_at_the_gate_and_refuses_below_or_nan() -> None:
    check_gate({"roc_auc": 0.75}, 0.75)
    with pytest.raises(TrainingError, match=r"quality gate failed: ROC AUC 0\.7499 is below 0\.75"):
        check_gate({"roc_auc": 0.7499}, 0.75)
    with pytest.raises(TrainingError, match="f1 nan"):
        check_gate({"f1": float("nan")}, 0.5, metric="f1")


def test_export_check_returns_the_difference_and_refuses_a_mismatch() -> None:
    expected = np.array([0.1, 0.5, 0.9])
    assert check_export(expected, expected.astype(np.float32), 1e-4) < 1e-7
    with pytest.raises(TrainingError, match=r"differ .* by up to 1\.00e-03"):
        check_export(expected, expected + 1e-3, 1e-4)
    with pytest.raises(TrainingError, match="shape"):
        check_export(expected, expected[:2], 1e-4)
    with pytest.raises(TrainingError):
        check_export(expected, np.full(3, np.nan), 1e-4)


def test_summary_reports_metrics_gate_artifact_and_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    record = {
        "model_name": "churn",
        "roc_auc": 0.91234,
        "accuracy": 0.8,
        "log_loss": 0.3,
        "auc_gate": 0.75,
        "artifact": "model.onnx",
        "export_format": "onnx",
    }
    line = summary(record, tmp_path / "artifacts")
    assert line == (
        "churn: roc_auc=0.912 accuracy=0.800 log_loss=0.300 (gate 0.75) -> "
        "artifacts/model.onnx [onnx]"
    )
    registered = summary({**record, "registry": {"version": "3", "alias": "champion"}}, Path("/x"))
    assert registered.endswith("-> /x/model.onnx [onnx] registered v3 as champion")


def test_digests_of_files_and_directories(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights")
    assert sha256_of(model) == hashlib.sha256(b"weights").hexdigest()
    assert model_version(model) == f"sha256-{sha256_of(model)[:12]}" == file_version(model)
    saved = tmp_path / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    (saved / "variables" / "v.data").write_bytes(b"data")
    before = sha256_of(saved)
    assert model_version(saved) == file_version(saved)  # served version == recorded digest
    (saved / "variables" / "v.data").write_bytes(b"other")
    assert sha256_of(saved) != before
    (saved / "variables" / "v.data").rename(saved / "v.data")
    assert sha256_of(saved) != before  # names count, not only contents


def test_write_json_is_atomic_and_sorted(tmp_path: Path) -> None:
    path = tmp_path / "out" / "metrics.json"
    write_json(path, {"b": 1, "a": [1.5]})
    assert path.read_text() == json.dumps({"a": [1.5], "b": 1}, indent=2) + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def _train(out_dir: Path, rows: int, seed: int, source: str, register: bool) -> dict[str, object]:
    """A real (tiny) training step: it writes a record beside an artifact, as a
    repository's ``train`` does, and fails the gate below 100 rows."""
    check_gate({"roc_auc": 0.9 if rows >= 100 else 0.5}, 0.75)
    artifact = Path(out_dir) / "model.bin"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(f"{rows} {seed} {source} {register}".encode())
    record = {"model_name": "toy", "roc_auc": 0.9, "auc_gate": 0.75, "export_format": "bin"}
    return write_record(artifact, record)


def test_the_training_command_parses_trains_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLGEN_PROFILE", raising=False)
    options = {"prog": "toy", "out": tmp_path / "default", "rows": 500, "seed": 1, "min_rows": 10}
    argv = ["--out", str(tmp_path / "a"), "--seed", "7", "--source", "synthetic", "--no-register"]
    assert main(_train, argv, **options) == 0
    assert (tmp_path / "a" / "model.bin").read_bytes() == b"500 7 synthetic False"
    record = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert record["artifact"] == "model.bin" and record["artifact_sha256"] and record["trained_at"]
    assert capsys.readouterr().out.startswith("toy: roc_auc=0.900 (gate 0.75) -> ")
    assert main(_train, ["--rows", "50"], **options) == 1  # the gate failed: nothing to ship
    assert "error: quality gate failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(_train, ["--rows", "5"], **options)
    assert usage.value.code == 2 and "--rows must be at least 10" in capsys.readouterr().err


def test_the_training_command_checks_the_production_stores_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLGEN_PROFILE", "production")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    options = {"prog": "toy", "out": tmp_path, "rows": 500, "seed": 1, "min_rows": 10}
    assert main(_train, [], **options) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: MLFLOW_TRACKING_URI") and "\n" not in error
    assert not (tmp_path / "metrics.json").exists()


def test_datasets_by_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def synthetic(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        return rng.normal(size=(rows, 2)), rng.integers(0, 2, rows)

    X, y = load_dataset("synthetic", 20, 3, synthetic, "no_such_module")
    assert X.shape == (20, 2) and np.array_equal(y, synthetic(20, 3)[1])
    with pytest.raises(ValueError, match="source must be one of feast, synthetic, got 'csv'"):
        load_dataset("csv", 20, 3, synthetic, "no_such_module")
    assert training_cutoff("synthetic", "no_such_module") is None
    package = tmp_path / "toy_store"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import numpy as np\nWRITTEN = []\n"
        "def write_source_data(rows, seed): WRITTEN.append((rows, seed))\n"
        "def apply_definitions(): return 'store'\n"
        "def training_data(store): return np.zeros((len(WRITTEN), 1)), np.array([store])\n"
        "def training_cutoff(): return '2026-01-01T00:00:00+00:00'\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("MLGEN_PROFILE", raising=False)
    X, y = load_dataset("feast", 20, 3, synthetic, "toy_store")  # local: writes the source
    assert X.shape == (1, 1) and list(y) == ["store"]
    monkeypatch.setenv("MLGEN_PROFILE", "production")
    X, _ = load_dataset("feast", 20, 3, synthetic, "toy_store")  # production: never rewrites
    assert X.shape == (1, 1)
    assert training_cutoff("feast", "toy_store") == "2026-01-01T00:00:00+00:00"


def test_repo_root_of_a_source_tree(tmp_path: Path) -> None:
    module = tmp_path / "src" / "toy" / "artifacts.py"
    module.parent.mkdir(parents=True)
    assert repo_root(module) is None  # no pyproject.toml: an installed copy
    (tmp_path / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    assert repo_root(module) == tmp_path
