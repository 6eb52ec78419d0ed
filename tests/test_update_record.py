"""The three-way base of ``mlgen update`` is the recorded last generation, byte for byte,
whatever changed since: here a plugin's backend data (issue: plugin changes never arrived)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlgen import plugins
from mlgen.fleet import UpdateOptions, update_fleet
from mlgen.generate import generate
from mlgen.record import RECORD_FILE, decode_record, encode_record, read_record, snapshot
from mlgen.template import recorded_answers
from mlgen.update import last_generation
from tests.conftest import BIN, REPO_ROOT
from tests.rendering import installed_backends
from tests.versioned import MIGRATION_MARKER, init_repo


def test_record_round_trips_text_and_binary_and_is_deterministic() -> None:
    tree = {"a.txt": "héllo\n".encode(), "bin/blob": bytes(range(256)), "empty": b""}
    assert decode_record(encode_record(tree)) == tree
    assert encode_record(tree) == encode_record(dict(reversed(tree.items())))
    assert decode_record(b"not gzip") is None


@pytest.mark.parametrize("backend", installed_backends())
def test_base_is_the_recorded_generation_after_the_backend_data_changed(
    tmp_path: Path, template_root: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = generate(tmp_path / "repo", template_root, {"serving_backend": backend}, defaults=True)
    generated = snapshot(repo)
    assert read_record(repo) == generated

    registry = plugins.get_registry()
    registered = registry.backends[backend]
    changed = dataclasses.replace(
        registered.backend,
        dependencies=(*registered.backend.dependencies, "mlgen-base-probe>=1"),
    )
    monkeypatch.setitem(
        registry.backends, backend, dataclasses.replace(registered, backend=changed)
    )
    answers = {k: v for k, v in recorded_answers(repo).items() if not k.startswith("_")}

    base, source = last_generation(repo, str(template_root), answers, "")
    assert source == "record"
    assert sorted(base) == sorted(generated)
    assert [path for path in generated if base[path] != generated[path]] == []

    # Without the record (a repository from before it), the re-rendered base has moved
    # with the plugin: the hole that let plugin changes go missing.
    (repo / RECORD_FILE).unlink()
    rerendered, source = last_generation(repo, str(template_root), answers, "")
    assert source == "re-render"
    assert b"mlgen-base-probe>=1" in rerendered["pyproject.toml"]


# ---------------------------------------------------------------- the reproduction

RUNTIME_EXTRAS = re.compile(r"^    runtime_extras=", re.MULTILINE)
HTTP_PORT = re.compile(r"^HTTP_PORT = \d+$", re.MULTILINE)


def install_fastapi_copy(
    site: Path, version: str, *, bound: str | None = None, port: int | None = None
) -> None:
    """The built-in fastapi plugin, copied as its own distribution ``acme-fastapi``."""
    package = site / "acme_fastapi"
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(
        REPO_ROOT / "plugins" / "mlgen_fastapi",
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    init = package / "__init__.py"
    text = init.read_text()
    if bound is not None:
        # fastapi itself comes with mlgen-runtime[serving]; the new plugin version raises
        # the floor through its own backend data.
        text, found = RUNTIME_EXTRAS.subn(f'    dependencies=("fastapi>={bound}",),\n\\g<0>', text)
        assert found == 1
    if port is not None:
        text, found = HTTP_PORT.subn(f"HTTP_PORT = {port}", text)
        assert found == 1
    init.write_text(text)
    for info in site.glob("acme_fastapi-*.dist-info"):
        shutil.rmtree(info)
    info = site / f"acme_fastapi-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: acme-fastapi\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text("[mlgen]\nacme-fastapi = acme_fastapi\n")
    sys.modules.pop("acme_fastapi", None)
    plugins.get_registry.cache_clear()


def test_plugin_version_with_new_dependency_bound_and_port_arrives(
    tmp_path: Path, versioned_template: Path, plugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGEN_DISABLE_PLUGINS", "fastapi")  # the copy replaces the built-in
    install_fastapi_copy(plugin_site, "1.0")
    repo = generate(tmp_path / "repo", versioned_template, {}, defaults=True, vcs_ref="v1")
    init_repo(repo)
    service = repo / "deploy/k8s/base/service.yaml"
    deployment = repo / "deploy/k8s/base/deployment/deployment.yaml"
    assert "8080" in service.read_text() and "9090" not in service.read_text()

    install_fastapi_copy(plugin_site, "1.1", bound="0.135.1", port=9090)
    [outcome] = update_fleet([repo], UpdateOptions(vcs_ref="v1"))

    assert outcome.result == "updated", outcome.detail
    assert outcome.base == "record"
    assert outcome.plugins == (("acme-fastapi", "acme-fastapi 1.0", "acme-fastapi 1.1"),)
    assert outcome.count("merged") == 0  # nobody edited anything: taken as is
    updated = {path for action, path in outcome.changes if action == "updated"}
    assert {"pyproject.toml", "Dockerfile", str(service.relative_to(repo))} <= updated
    assert '"fastapi>=0.135.1"' in (repo / "pyproject.toml").read_text()
    for path in (repo / "Dockerfile", service, deployment):
        assert "9090" in path.read_text() and "8080" not in path.read_text(), path

    result = subprocess.run(
        [str(BIN / "mlgen"), "check", "--only", "container-probes", str(repo)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pass  container-probes" in result.stdout


@pytest.mark.parametrize("clone", ["full", "shallow"])
def test_a_repo_from_before_the_record_falls_back_and_gains_one(
    tmp_path: Path, versioned_template: Path, clone: str
) -> None:
    repo = generate(tmp_path / "repo", versioned_template, {}, defaults=True, vcs_ref="v1")
    (repo / RECORD_FILE).unlink()
    init_repo(repo)
    if clone == "shallow":  # no history to tell the generation commit: the re-render alone
        shallow = tmp_path / "shallow"
        subprocess.run(
            ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True
        )
        repo = shallow
    [outcome] = update_fleet([repo], UpdateOptions(vcs_ref="v2"))
    expected_base = "history" if clone == "full" else "re-render"
    assert outcome.result == "updated" and outcome.base == expected_base, outcome.detail
    assert ("updated", "README.md") in outcome.changes
    assert ("recorded", RECORD_FILE) in outcome.changes
    assert outcome.count("merged") == 0
    tree = snapshot(repo)
    del tree[MIGRATION_MARKER]  # written by the v2 migration, not generated
    assert read_record(repo) == tree  # the v2 generation: the base of the next update
