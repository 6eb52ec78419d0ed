"""``mlgen plugin new``: the scaffold renders, lints, installs beside mlgen and works."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlgen import runtime_dist
from mlgen.cli import cli
from mlgen.environments import cache_root
from tests.conftest import BIN, REPO_ROOT


def _scaffold(destination: Path, name: str = "acme") -> Path:
    result = CliRunner().invoke(
        cli, ["plugin", "new", name, str(destination), "-d", "description=Acme serving backend"]
    )
    assert result.exit_code == 0, result.output
    return destination


def test_scaffold_is_a_complete_plugin_package(tmp_path: Path) -> None:
    package = _scaffold(tmp_path / "mlgen-acme")
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points.mlgen]\nacme = "mlgen_acme"' in pyproject
    module = package / "src" / "mlgen_acme"
    assert 'name="acme"' in (module / "__init__.py").read_text()
    files = sorted(
        p.relative_to(module / "files").as_posix()
        for p in (module / "files").rglob("*")
        if p.is_file()
    )
    assert files == [
        "Dockerfile.jinja",
        "deploy/k8s/base/deployment/server.yaml.jinja",
        "docs/serving.md.jinja",
        "src/{{ package_name }}/serving/__init__.py.jinja",
        "src/{{ package_name }}/serving/app.py.jinja",
        "src/{{ package_name }}/serving/smoke.py.jinja",
        "tests/test_serving.py.jinja",
    ]
    smoke = (module / "files" / "src/{{ package_name }}/serving/smoke.py.jinja").read_text()
    assert "from mlgen_runtime.process import" in smoke  # copied verbatim: rendered later
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "--isolated", "--no-cache", "."],
        cwd=package,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_scaffold_imports_no_backend_plugin(tmp_path: Path) -> None:
    """The scaffold carries its own files: it works with the built-in backends unimportable."""
    script = (
        "import sys\n"
        "for name in ('mlgen_fastapi', 'mlgen_triton', 'mlgen_torchserve', 'mlgen_tfserving'):\n"
        "    sys.modules[name] = None  # any import of it raises ImportError\n"
        "from pathlib import Path\n"
        "from mlgen.plugin_scaffold import scaffold_plugin\n"
        f"scaffold_plugin('acme', Path({str(tmp_path / 'p')!r}), {{}})\n"
    )
    result = subprocess.run([str(BIN / "python"), "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "p" / "src" / "mlgen_acme" / "files" / "Dockerfile.jinja").is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Acme", "is not a backend name"),
        ("1acme", "is not a backend name"),
    ],
)
def test_bad_plugin_name_is_refused(tmp_path: Path, name: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["plugin", "new", name, str(tmp_path / "p")])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_scaffold_installed_next_to_mlgen_works_end_to_end(tmp_path: Path) -> None:
    """A fresh environment with mlgen (built as a wheel) and the scaffolded plugin."""
    from mlgen.environments import uv_binary

    package = _scaffold(tmp_path / "mlgen-acme")
    environment = tmp_path / "venv"
    uv = uv_binary()
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(environment)], check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(environment / "bin" / "python"),
            f"{REPO_ROOT}[check,test]",
            f"{package}[test]",  # as its README says: pip install -e '.[test]'
        ],
        check=True,
    )
    bin_dir = environment / "bin"

    listed = subprocess.run(
        [str(bin_dir / "mlgen"), "backends", "--json"], check=True, capture_output=True, text=True
    ).stdout
    acme = next(row for row in json.loads(listed) if row["name"] == "acme")
    assert (acme["distribution"], acme["api_version"]) == ("mlgen-acme", 1)

    repo = tmp_path / "model"
    subprocess.run(
        [
            str(bin_dir / "copier"),
            "copy",
            "--quiet",
            "--trust",
            "--defaults",
            "-d",
            "serving_backend=acme",
            str(REPO_ROOT),
            str(repo),
        ],
        check=True,
    )
    manifest = json.loads((repo / ".mlgen" / "plugins.json").read_text())
    assert manifest["backend"]["distribution"] == "mlgen-acme"

    # The scaffold's own tests: registration, then the contract suite (which renders a
    # repository, runs `mlgen check` on it and serves a prediction).
    # mlgen is installed from a wheel here, so it has no checkout to build mlgen-runtime
    # from: hand it the wheel the way a team's index would.
    wheel = runtime_dist.local_wheel(cache_root())
    assert wheel is not None
    result = subprocess.run(
        [str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        capture_output=True,
        text=True,
        env={**os.environ, "MLGEN_RUNTIME_FIND_LINKS": str(wheel.parent)},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "11 passed" in result.stdout.splitlines()[-1]  # pytest-copie render included
