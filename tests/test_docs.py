"""The plugin docs run: every Python example executes, every hook is documented and tested."""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest

import mlgen
from mlgen import hookspecs
from mlgen.check_runner import collect_checks
from mlgen.checks import run_check
from mlgen.environments import prepare_environment
from mlgen.testing import registry_with
from tests.conftest import REPO_ROOT
from tests.rendering import render

DOC = REPO_ROOT / "docs" / "plugins.md"
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("mlgen_"))
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _sections() -> dict[str, str]:
    """Markdown text per heading (any level)."""
    parts = re.split(r"^#+ (.+)$", DOC.read_text(), flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _examples() -> list[tuple[str, str]]:
    return [
        (heading, block) for heading, text in _sections().items() for block in _BLOCK.findall(text)
    ]


def _install_example(site: Path, name: str, code: str) -> object:
    """Write an example as a real package (with a files/ folder) and import it."""
    package = site / name
    (package / "files").mkdir(parents=True)
    (package / "__init__.py").write_text(code)
    (package / "files" / "SERVING.md.jinja").write_text("{{ model_name }} on acme\n")
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_documented_section_with_an_example(hook: str) -> None:
    sections = _sections()
    assert hook in sections, f"docs/plugins.md has no section '### {hook}'"
    assert _BLOCK.search(sections[hook]), f"the {hook} section has no Python example"
    doc = getattr(hookspecs, hook).__doc__
    assert doc and doc.strip(), f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_exercised_by_a_test(hook: str) -> None:
    sources = [path for path in (REPO_ROOT / "tests").glob("*.py") if path.name != "test_docs.py"]
    assert any(hook in path.read_text() for path in sources), f"no test exercises {hook}"


def test_every_backend_field_is_documented() -> None:
    table = _sections()["The Backend object"]
    for field in dataclasses.fields(mlgen.Backend):
        assert f"`{field.name}`" in table, field.name
    for field in dataclasses.fields(mlgen.ContainerSpec):
        assert f"`{field.name}`" in table, field.name


def test_register_backends_example(plugin_site: Path, template_root: Path, tmp_path: Path) -> None:
    (code,) = _BLOCK.findall(_sections()["mlgen_register_backends"])
    module = _install_example(plugin_site, "mlgen_acme", code)
    registry = registry_with(module)
    acme = registry.get_backend("acme")
    assert acme.backend.container.port("metrics").container_port == 9090
    files = registry.contributed_files({"serving_backend": "acme"})
    assert list(files) == ["SERVING.md"]


def test_contribute_files_example(plugin_site: Path) -> None:
    (code,) = _BLOCK.findall(_sections()["mlgen_contribute_files"])
    module = _install_example(plugin_site, "mlgen_oncall", code)
    registry = registry_with(module)
    files = registry.contributed_files({"serving_backend": "fastapi", "k8s_namespace": "ml-a"})
    assert "{{ latency_slo_p95_ms }}" in files["docs/runbook.md"].source
    assert "docs/runbook.md" not in registry.contributed_files(
        {"serving_backend": "fastapi", "k8s_namespace": "prod"}
    )


def test_register_checks_example(plugin_site: Path, template_root: Path, tmp_path: Path) -> None:
    (code,) = _BLOCK.findall(_sections()["mlgen_register_checks"])
    module = _install_example(plugin_site, "mlgen_acme_checks", code)
    repo = render(template_root, tmp_path / "repo")
    (repo / "acme.json").write_text('{"workers": 2}')
    checks = {check.name: check for check in collect_checks(repo, registry_with(module))}
    assert checks["acme-config"].run(repo).ok
    assert checks["acme-json"].run(repo).ok
    assert checks["acme-package"].takes_answers and run_check(checks["acme-package"], repo).ok


def test_prepare_environment_example(
    plugin_site: Path, template_root: Path, tmp_path: Path
) -> None:
    (code,) = _BLOCK.findall(_sections()["mlgen_prepare_environment"])
    module = _install_example(plugin_site, "mlgen_acme_env", code)
    repo = render(template_root, tmp_path / "repo", serving_backend="fastapi")
    environment = Path(sys.executable).parent.parent
    scratch = tmp_path / "env"
    (scratch / "bin").mkdir(parents=True)
    (scratch / "bin" / "python").symlink_to(environment / "bin" / "python")
    prepare_environment(scratch, repo, registry_with(module))
    assert not (scratch / ".acme-prepared").exists()  # not an acme repository
    (repo / ".copier-answers.yml").write_text(
        (repo / ".copier-answers.yml")
        .read_text()
        .replace("serving_backend: fastapi", "serving_backend: acme")
    )
    prepare_environment(scratch, repo, registry_with(module))
    assert (scratch / ".acme-prepared").read_text() == "ok\n"


@pytest.mark.parametrize(
    ("heading", "code"),
    [example for example in _examples() if example[0] not in HOOKS],
    ids=lambda value: value if len(value) < 40 else None,
)
def test_other_examples_run(heading: str, code: str) -> None:
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(textwrap.dedent(code), f"docs/plugins.md: {heading}", "exec"), namespace)
    if "BackendContract" in code:
        from mlgen.testing import BackendContract

        classes = [
            value
            for value in namespace.values()
            if isinstance(value, type) and issubclass(value, BackendContract)
        ]
        assert classes and "contract_backend" in namespace
