"""The template pins the runtime release it is written against, and that pin is real."""

from __future__ import annotations

import tomllib
from pathlib import Path

from mlgen import runtime_dist
from mlgen.template import _load_config
from tests.conftest import REPO_ROOT
from tests.rendering import render


def test_template_pin_equals_the_runtime_version() -> None:
    source = runtime_dist.runtime_source()
    assert source is not None and source.resolve() == (REPO_ROOT / "runtime").resolve()
    pinned = _load_config(REPO_ROOT)["mlgen_runtime_version"]["default"]
    assert pinned == runtime_dist.source_version(source)


def test_generated_repository_pins_a_compatible_release(tmp_path: Path) -> None:
    repo = render(REPO_ROOT, tmp_path / "repo", serving_backend="fastapi")
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = [dep for dep in project["dependencies"] if dep.startswith("mlgen-runtime")]
    version = runtime_dist.source_version(REPO_ROOT / "runtime")
    assert len(pins) == 1 and pins[0].endswith(f"]~={version}"), pins
    assert not (repo / "src" / "mlgen_runtime").exists()  # depended on, never copied
