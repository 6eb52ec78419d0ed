"""Plugin loading: built-ins, entry points, broken and duplicate plugins, blocking."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from mlgen import hookspecs
from mlgen.backend import BackendDefinitionError
from mlgen.errors import PluginError, UnknownBackendError
from mlgen.plugins import DISABLE_ENV, PluginLoadWarning, load_plugins
from tests.fake_plugins import FakePlugin, backend_plugin

# Every backend installed before a test adds its own (built-ins, and any third-party
# plugin installed in the environment, such as the example under examples/).
INSTALLED_BACKENDS = sorted(load_plugins().backends)


def test_builtin_backend_is_loaded_from_the_mlgen_entry_point_group() -> None:
    registry = load_plugins()
    fastapi = registry.get_backend("fastapi")
    assert fastapi.plugin.distribution == "mlgen"
    assert fastapi.plugin.name == "fastapi"
    assert fastapi.backend.export_format == "onnx"
    # Built-ins come first, through the same group as everyone else's.
    assert next(iter(registry.plugins.values())).distribution == "mlgen"


def test_entry_point_plugin_from_another_distribution_is_registered(plugin_site: Path) -> None:
    backend_plugin("echo", dist="acme-echo", version="2.3").install(plugin_site)
    registry = load_plugins()
    echo = registry.get_backend("echo")
    assert (echo.plugin.distribution, echo.plugin.version) == ("acme-echo", "2.3")
    assert set(registry.backend_names()) == {"echo", *INSTALLED_BACKENDS}


def test_plugin_that_fails_to_import_is_a_warning_naming_its_distribution(
    plugin_site: Path,
) -> None:
    FakePlugin(
        "acme-broken", "acme_broken_plugin", "broken", "import module_that_does_not_exist\n"
    ).install(plugin_site)
    backend_plugin("echo").install(plugin_site)
    with pytest.warns(PluginLoadWarning, match=r"'broken'.*'acme-broken'.*ModuleNotFoundError"):
        registry = load_plugins()
    assert "echo" in registry.backends and "fastapi" in registry.backends
    assert len(registry.load_warnings) == 1


def test_plugin_raising_while_registering_is_a_warning(plugin_site: Path) -> None:
    FakePlugin(
        "acme-raises",
        "acme_raises_plugin",
        "raises",
        """
        import mlgen

        @mlgen.hookimpl
        def mlgen_register_backends(register):
            raise RuntimeError("boom")
    """,
    ).install(plugin_site)
    with pytest.warns(PluginLoadWarning, match=r"acme-raises 1.0.*RuntimeError: boom"):
        registry = load_plugins()
    assert "raises" not in registry.plugins
    assert registry.backend_names() == INSTALLED_BACKENDS


def test_two_backends_with_one_name_is_an_error_naming_both_distributions(
    plugin_site: Path,
) -> None:
    backend_plugin("echo", dist="acme-echo").install(plugin_site)
    other = backend_plugin("echo", dist="other-echo")
    other.entry_name = "other-echo"
    other.install(plugin_site)
    with pytest.raises(PluginError, match=r"'echo'.*acme-echo 1.0.*other-echo 1.0"):
        load_plugins()


def test_backend_clashing_with_a_builtin_names_mlgen(plugin_site: Path) -> None:
    clash = backend_plugin("fastapi", dist="acme-fastapi")
    clash.entry_name = "acme-fastapi"
    clash.install(plugin_site)
    with pytest.raises(PluginError, match=r"'fastapi'.*\(mlgen .*acme-fastapi 1.0"):
        load_plugins()


def test_disable_env_var_blocks_named_plugins(
    plugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend_plugin("echo").install(plugin_site)
    monkeypatch.setenv(DISABLE_ENV, "echo, fastapi")
    registry = load_plugins()
    assert "echo" not in registry.backend_names() and "fastapi" not in registry.backend_names()
    monkeypatch.setenv(DISABLE_ENV, "echo")
    assert load_plugins().backend_names() == INSTALLED_BACKENDS


def test_misspelled_hook_fails_loudly(plugin_site: Path) -> None:
    FakePlugin(
        "acme-typo",
        "acme_typo_plugin",
        "typo",
        """
        import mlgen

        @mlgen.hookimpl
        def mlgen_register_backend(register):
            pass
    """,
    ).install(plugin_site)
    with pytest.raises(PluginError, match=r"'typo' \(acme-typo 1.0\).*mlgen_register_backend"):
        load_plugins()


def test_plugin_for_another_api_version_is_refused(plugin_site: Path) -> None:
    backend_plugin("future", api=hookspecs.PLUGIN_API_VERSION + 1).install(plugin_site)
    with pytest.warns(PluginLoadWarning, match=r"plugin API 2, this mlgen provides API 1"):
        registry = load_plugins()
    assert "future" not in registry.backends


def test_unknown_backend_suggests_the_closest_installed_name() -> None:
    with pytest.raises(
        UnknownBackendError,
        match=r"'fastpi'\. Did you mean 'fastapi'\? Installed backends: fastapi",
    ):
        load_plugins().get_backend("fastpi")


def test_contributed_files_of_the_selected_backend(plugin_site: Path) -> None:
    backend_plugin("echo").install(plugin_site)
    files = load_plugins().contributed_files({"serving_backend": "echo"})
    assert sorted(files) == ["SERVING.md", "src/{{ package_name }}/serving/server.py"]
    assert files["SERVING.md"].origin == "plugin 'echo' (mlgen-echo 1.0)"


def test_contribute_files_hook_adds_files_for_any_backend(plugin_site: Path) -> None:
    FakePlugin(
        "acme-extra",
        "acme_extra_plugin",
        "extra",
        """
        import mlgen

        @mlgen.hookimpl
        def mlgen_contribute_files(answers):
            return [mlgen.FileContribution("EXTRA.md", "for {{ model_name }}")]
    """,
    ).install(plugin_site)
    files = load_plugins().contributed_files({"serving_backend": "fastapi"})
    assert files["EXTRA.md"].origin == "plugin 'extra' (acme-extra 1.0)"


def test_two_plugins_contributing_one_path_is_an_error(plugin_site: Path) -> None:
    FakePlugin(
        "acme-extra",
        "acme_extra_plugin",
        "extra",
        """
        import mlgen

        @mlgen.hookimpl
        def mlgen_contribute_files(answers):
            return [mlgen.FileContribution("SERVING.md", "clash")]
    """,
    ).install(plugin_site)
    backend_plugin("echo").install(plugin_site)
    with pytest.raises(PluginError, match=r"'SERVING.md'.*'echo'.*'extra'"):
        load_plugins().contributed_files({"serving_backend": "echo"})


CHECKS_PLUGIN = """
    import mlgen

    def _readme(repo):
        return mlgen.CheckResult((repo / "README.md").is_file(), "README.md")

    def _needs_tool(repo):
        mlgen.checks.find_tool("surely-not-installed-validator", "pip install acme-validator")
        return mlgen.CheckResult(True)

    @mlgen.hookimpl
    def mlgen_register_checks(register, repo, answers):
        register(mlgen.Check("acme-readme", _readme))
        register(mlgen.Check("acme-tool", _needs_tool))
        register(mlgen.Check("acme-module", _readme, requires=("acme_missing_module",),
                             install_hint="pip install acme-extra"))
"""


def test_register_checks_hook_feeds_mlgen_check(
    plugin_site: Path, tmp_path: Path, template_root: Path
) -> None:
    from mlgen.check_runner import run_checks
    from tests.rendering import render

    FakePlugin("acme-checks", "acme_checks_plugin", "acme-checks", CHECKS_PLUGIN).install(
        plugin_site
    )
    repo = render(template_root, tmp_path / "repo")
    registry = load_plugins()
    results = {
        check.name: result
        for check, result in run_checks(
            repo, registry, only=("acme-readme", "acme-tool", "acme-module")
        )
    }
    assert results["acme-readme"].ok
    assert not results["acme-tool"].ok
    assert results["acme-tool"].detail == (
        "surely-not-installed-validator is not installed; install it with: "
        "pip install acme-validator"
    )
    assert results["acme-module"].detail == (
        "acme_missing_module is not installed; install it with: pip install acme-extra"
    )
    (repo / "README.md").unlink()
    again = dict((c.name, r) for c, r in run_checks(repo, registry, only=("acme-readme",)))
    assert not again["acme-readme"].ok


def test_check_registration_failure_names_the_plugin(
    plugin_site: Path, tmp_path: Path, template_root: Path
) -> None:
    from mlgen.check_runner import collect_checks
    from tests.rendering import render

    FakePlugin(
        "acme-bad-checks",
        "acme_bad_checks_plugin",
        "bad-checks",
        """
        import mlgen

        @mlgen.hookimpl
        def mlgen_register_checks(register):
            raise RuntimeError("no checks today")
    """,
    ).install(plugin_site)
    repo = render(template_root, tmp_path / "repo")
    with pytest.raises(PluginError, match=r"'bad-checks' \(acme-bad-checks 1.0\).*no checks"):
        collect_checks(repo, load_plugins())


def test_mlgen_check_cli_exit_status(
    plugin_site: Path, tmp_path: Path, template_root: Path
) -> None:
    import subprocess

    from tests.conftest import BIN
    from tests.rendering import render

    FakePlugin("acme-checks", "acme_checks_plugin", "acme-checks", CHECKS_PLUGIN).install(
        plugin_site
    )
    repo = render(template_root, tmp_path / "repo")
    passing = subprocess.run(
        [BIN / "mlgen", "check", str(repo), "--only", "acme-readme"], capture_output=True, text=True
    )
    assert passing.returncode == 0, passing.stdout
    first, summary = passing.stdout.splitlines()
    assert first == "pass  acme-readme  README.md"
    assert re.fullmatch(r"1 passed, 0 failed \(\d+ skipped\)", summary), summary
    again = subprocess.run(
        [BIN / "mlgen", "check", str(repo), "--only", "acme-readme"], capture_output=True, text=True
    )
    assert again.stdout.splitlines()[0] == "pass  acme-readme (cached)  README.md"
    failing = subprocess.run(
        [BIN / "mlgen", "check", str(repo), "--only", "acme-readme", "--only", "acme-tool"],
        capture_output=True,
        text=True,
    )
    assert failing.returncode == 1
    assert "FAIL  acme-tool  surely-not-installed-validator is not installed" in failing.stdout
    unknown = subprocess.run(
        [BIN / "mlgen", "check", str(repo), "--only", "nope"], capture_output=True, text=True
    )
    assert unknown.returncode == 2, unknown.stderr
    assert "no check is called nope; the checks are: " in unknown.stderr
    assert "acme-readme" in unknown.stderr


@pytest.mark.parametrize("export_format", ["onnx", "pmml", "mlflow-pyfunc"])
def test_export_format_is_an_open_name(export_format: str) -> None:
    backend = load_plugins().get_backend("fastapi").backend
    assert replace(backend, export_format=export_format).export_format == export_format


@pytest.mark.parametrize("export_format", ["", "ONNX", "saved model", "1onnx"])
def test_export_format_must_be_a_lower_case_name(export_format: str) -> None:
    backend = load_plugins().get_backend("fastapi").backend
    with pytest.raises(BackendDefinitionError, match="must be a lower-case name"):
        replace(backend, export_format=export_format)


NEW_FIELDS_PLUGIN = """
import dataclasses

import mlgen
import mlgen_fastapi

MLGEN_PLUGIN_API = 1

BACKEND = dataclasses.replace(
    mlgen_fastapi.BACKEND,
    name="roomy",
    templates_package=__name__,
    container=dataclasses.replace(
        mlgen_fastapi.BACKEND.container,
        startup=mlgen.Probe("/health", "http", period_seconds=5, failure_threshold=30),
        env=(mlgen.EnvVar("SERVED_MODEL", "{model_name}"), mlgen.EnvVar("WORKERS", "2")),
        volumes=(mlgen.Volume("dshm", "/dev/shm", size_limit="1Gi", medium="Memory"),),
        tmp_size_limit="2Gi",
    ),
    serving_dependencies=("roomy-server>=1.2",),
    serving_runtime_extras=("serving",),
    kustomize_patches=(
        "deploy/k8s/base/deployment/grace.yaml",
        "deploy/k8s/base/pdb-patch.yaml",
    ),
)


@mlgen.hookimpl
def mlgen_register_backends(register):
    register(BACKEND)
"""

GRACE_PATCH = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: "{{ model_name }}"
  namespace: "{{ k8s_namespace }}"
spec:
  template:
    spec:
      terminationGracePeriodSeconds: 77
"""

PDB_PATCH = """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: "{{ model_name }}"
  namespace: "{{ k8s_namespace }}"
spec:
  minAvailable: 2
"""


def _kustomize(folder: Path) -> list[dict[str, object]]:
    import subprocess

    import yaml

    from mlgen.checks import find_tool

    built = subprocess.run(
        [find_tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    return [document for document in yaml.safe_load_all(built) if document]


def test_container_fields_and_kustomize_patches_reach_every_overlay(
    plugin_site: Path, tmp_path: Path, template_root: Path
) -> None:
    import tomllib

    from mlgen.template import recorded_answers
    from tests.rendering import render

    FakePlugin(
        "mlgen-roomy",
        "roomy_plugin",
        "roomy",
        NEW_FIELDS_PLUGIN,
        files={
            "deploy/k8s/base/deployment/grace.yaml.jinja": GRACE_PATCH,
            "deploy/k8s/base/pdb-patch.yaml.jinja": PDB_PATCH,
        },
    ).install(plugin_site)
    repo = render(template_root, tmp_path / "repo", serving_backend="roomy")
    model_name = recorded_answers(repo)["model_name"]
    overlays = sorted((repo / "deploy" / "k8s" / "overlays").iterdir())
    assert len(overlays) >= 2
    for overlay in overlays:
        objects = _kustomize(overlay)
        deployments = [o for o in objects if o["kind"] == "Deployment"]
        assert deployments, overlay.name
        for deployment in deployments:  # the canary track too: it reuses base/deployment
            pod = deployment["spec"]["template"]["spec"]  # type: ignore[index]
            (server,) = pod["containers"]
            assert pod["terminationGracePeriodSeconds"] == 77, overlay.name
            assert server["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
            assert server["startupProbe"]["failureThreshold"] == 30
            assert {"name": "SERVED_MODEL", "value": model_name} in server["env"]
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
            assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "2Gi"}
            assert {"name": "dshm", "mountPath": "/dev/shm"} in server["volumeMounts"]
        (pdb,) = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
        assert pdb["spec"]["minAvailable"] == 2  # type: ignore[index]
    dockerfile_requirements = load_plugins().get_backend("roomy").backend.serving_requirements("9")
    assert dockerfile_requirements == ["mlgen-runtime[serving]~=9", "roomy-server>=1.2"]
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    assert "roomy-server>=1.2" in project["dependencies"]


def test_a_backend_without_the_new_fields_renders_as_before(
    tmp_path: Path, template_root: Path
) -> None:
    import yaml

    from tests.rendering import render

    repo = render(template_root, tmp_path / "repo", serving_backend="fastapi")
    deployment = yaml.safe_load((repo / "deploy/k8s/base/deployment/deployment.yaml").read_text())
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "startupProbe" not in server and "env" not in server
    assert deployment["spec"]["template"]["spec"]["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
    ]
    kustomization = yaml.safe_load((repo / "deploy/k8s/base/kustomization.yaml").read_text())
    assert "patches" not in kustomization


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"volumes": ("tmp", "/scratch")}, "other than 'tmp'"),
        ({"volumes": ("scratch", "/tmp")}, "not /tmp"),
        ({"volumes": ("dshm", "/dev/shm", "lots")}, "not a quantity"),
        ({"env": ("1ST", "x")}, "must be letters, digits"),
        ({"env2": ("A", "x")}, "environment variables must be unique"),
        ({"startup_port": "grpc"}, "startup probe uses port 'grpc'"),
        ({"tmp_size_limit": "big"}, "tmp_size_limit 'big'"),
    ],
)
def test_invalid_container_fields_are_refused(change: dict[str, object], message: str) -> None:
    import mlgen

    container = load_plugins().get_backend("fastapi").backend.container
    with pytest.raises(BackendDefinitionError, match=re.escape(message)):
        if "volumes" in change:
            replace(container, volumes=(mlgen.Volume(*change["volumes"]),))  # type: ignore[misc]
        elif "env" in change:
            replace(container, env=(mlgen.EnvVar(*change["env"]),))  # type: ignore[misc]
        elif "env2" in change:
            twice = mlgen.EnvVar(*change["env2"])  # type: ignore[misc]
            replace(container, env=(twice, twice))
        elif "startup_port" in change:
            replace(container, startup=mlgen.Probe("/x", str(change["startup_port"])))
        else:
            replace(container, tmp_size_limit=str(change["tmp_size_limit"]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kustomize_patches": ("deploy/k8s/overlays/staging/x.yaml",)}, "must be a .yaml file in"),
        ({"kustomize_patches": ("deploy/k8s/base/x.json",)}, "must be a .yaml file in"),
        (
            {"kustomize_patches": ("deploy/k8s/base/x.yaml", "deploy/k8s/base/x.yaml")},
            "must be unique",
        ),
        ({"serving_runtime_extras": ("feast",)}, "are not in runtime_extras"),
    ],
)
def test_invalid_backend_fields_are_refused(change: dict[str, object], message: str) -> None:
    backend = load_plugins().get_backend("fastapi").backend
    with pytest.raises(BackendDefinitionError, match=re.escape(message)):
        replace(backend, **change)  # type: ignore[arg-type]


PREPARE_PLUGIN = """
import mlgen


@mlgen.hookimpl
def mlgen_prepare_environment(environment, repo, answers):
    marker = environment / "prepared.txt"
    calls = int(marker.read_text().split()[0]) + 1 if marker.exists() else 1
    marker.write_text(f"{calls} {answers['model_name']} {repo.name}")


@mlgen.hookimpl
def mlgen_register_checks(register, repo, answers):
    def package_named_in_answers(repo, answers):
        return mlgen.CheckResult((repo / "src" / answers["package_name"]).is_dir(),
                                 answers["package_name"])

    register(mlgen.Check("acme-answers", package_named_in_answers, inputs=("src/",)))
"""


def test_prepare_environment_hook_and_a_check_taking_answers(
    plugin_site: Path, tmp_path: Path, template_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlgen_prepare_environment runs on the environment handed out; a check's ``run``
    with an ``answers`` parameter gets the recorded answers."""
    from mlgen.check_runner import run_checks
    from mlgen.environments import REPO_PYTHON_ENV, prepare_environment, repo_environment
    from mlgen.template import recorded_answers
    from tests.rendering import render

    FakePlugin("acme-prepare", "acme_prepare_plugin", "acme-prepare", PREPARE_PLUGIN).install(
        plugin_site
    )
    repo = render(template_root, tmp_path / "repo")
    answers = recorded_answers(repo)
    environment = tmp_path / "env"
    (environment / "bin").mkdir(parents=True)
    monkeypatch.setenv(REPO_PYTHON_ENV, str(environment / "bin" / "python"))
    assert repo_environment(repo) == environment
    assert (environment / "prepared.txt").read_text() == f"1 {answers['model_name']} repo"
    prepare_environment(environment, repo, load_plugins())
    assert (environment / "prepared.txt").read_text().startswith("2 ")

    ((check, result),) = run_checks(repo, load_plugins(), only=("acme-answers",))
    assert check.takes_answers
    assert result.ok and result.detail == answers["package_name"]
