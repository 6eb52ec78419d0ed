"""mlgen_runtime.export: artifacts replace their target in one step, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgen_runtime.export import replaced_atomically


def test_a_file_replaces_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with replaced_atomically(target) as partial:
        assert partial.parent == tmp_path and partial != target
        partial.write_text("new")
        assert target.read_text() == "old"  # readers see the old file until the swap
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_folder_replaces_the_old_one_with_its_versions(tmp_path: Path) -> None:
    target = tmp_path / "models"
    (target / "m" / "1").mkdir(parents=True)
    with replaced_atomically(target) as partial:
        (partial / "m" / "2").mkdir(parents=True)
    assert sorted(p.name for p in (target / "m").iterdir()) == ["2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_a_failed_write_leaves_the_target_and_no_scratch(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="conversion failed"), replaced_atomically(target) as p:
        p.write_text("half")
        raise RuntimeError("conversion failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_leftovers_of_a_crashed_run_are_cleared(tmp_path: Path) -> None:
    (tmp_path / ".models.partial" / "stale").mkdir(parents=True)
    with replaced_atomically(tmp_path / "models") as partial:
        assert not partial.exists()
        partial.mkdir()
    assert (tmp_path / "models").is_dir()
