"""The command line: help, version, backends, new, and how errors are reported."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mlgen
from mlgen.cli import cli
from tests.conftest import BIN
from tests.fake_plugins import backend_plugin


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("command", _commands(cli), ids=lambda c: " ".join(c) or "mlgen")
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_version() -> None:
    result = subprocess.run(
        [BIN / "mlgen", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"mlgen, version {mlgen.__version__}"


def test_backends_json_lists_every_backend_with_its_distribution(plugin_site: Path) -> None:
    backend_plugin("echo", dist="acme-echo", version="0.4").install(plugin_site)
    result = subprocess.run(
        [BIN / "mlgen", "backends", "--json"], capture_output=True, text=True, check=True
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"fastapi", "echo"} <= set(rows)
    assert rows["echo"]["distribution"] == "acme-echo" and rows["echo"]["version"] == "0.4"
    assert rows["fastapi"]["format"] == "onnx" and rows["fastapi"]["distribution"] == "mlgen"
    assert rows["fastapi"]["frameworks"] == ["sklearn", "lightgbm", "xgboost"]
    assert rows["torchserve"]["formats"] == ["torchscript"]
    for row in rows.values():
        assert {"name", "description", "format", "distribution", "version"} <= set(row)


def test_backends_table() -> None:
    result = CliRunner().invoke(cli, ["backends"])
    assert result.exit_code == 0
    header, *lines = result.output.splitlines()
    assert header.split()[:4] == ["name", "format", "distribution", "version"]
    assert any(line.startswith("fastapi ") for line in lines)


def test_broken_plugin_is_a_warning_and_the_cli_keeps_working(plugin_site: Path) -> None:
    (plugin_site / "acme_bad_plugin").mkdir()
    (plugin_site / "acme_bad_plugin" / "__init__.py").write_text("raise ImportError('nope')\n")
    info = plugin_site / "acme_bad-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-bad\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mlgen]\nbad = acme_bad_plugin\n")
    result = subprocess.run([BIN / "mlgen", "backends"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "fastapi" in result.stdout
    assert result.stderr.startswith("Warning: plugin 'bad' from distribution 'acme-bad'")


def _new(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "mlgen", *arguments], capture_output=True, text=True)


def test_unknown_backend_is_one_line_with_did_you_mean(tmp_path: Path) -> None:
    result = _new("new", str(tmp_path / "repo"), "--backend", "fastap", "--defaults")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "Error: serving_backend: unknown backend 'fastap'. Did you mean 'fastapi'? "
        "Installed backends: fastapi"
    )
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-d", "model_name=Churn_Model"], "Error: model_name: 'Churn_Model' is not a DNS-1123"),
        (["-d", "canary_weight_percent=0"], "Error: canary_weight_percent: '0' is not a whole"),
        (
            ["-d", "modelname=x"],
            "Error: modelname: is not a question of this template. Did you mean 'model_name'?",
        ),
        (["-d", "novalue"], "Error: --answer 'novalue': expected KEY=VALUE"),
    ],
)
def test_bad_answers_are_one_line_errors(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = _new("new", str(tmp_path / "repo"), "--defaults", *arguments)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_non_empty_destination_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = _new("new", str(tmp_path), "--defaults")
    assert result.returncode == 1
    assert "is not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_empty_destination_is_used(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    result = _new("new", str(tmp_path / "repo"), "--defaults")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "repo" / "pyproject.toml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_traceback_flag_shows_the_traceback(tmp_path: Path) -> None:
    result = _new("--traceback", "new", str(tmp_path / "repo"), "-b", "nope", "--defaults")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "UnknownBackendError" in result.stderr


def test_failing_plugin_template_leaves_nothing_on_disk(tmp_path: Path, plugin_site: Path) -> None:
    backend_plugin(
        "echo",
        files={
            "a.txt.jinja": "fine\n",
            "b.txt.jinja": "{{ undefined_function() }}\n",
        },
    ).install(plugin_site)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = _new("new", str(workdir / "repo"), "-b", "echo", "--defaults")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    assert list(workdir.iterdir()) == []
