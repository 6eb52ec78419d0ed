"""mlgen_runtime.training and mlgen_runtime.artifacts: the checks and records around training."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mlgen_runtime.artifacts import model_version, sha256_of, write_json
from mlgen_runtime.serving import file_version
from mlgen_runtime.training import TrainingError, check_export, check_gate, summary


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
