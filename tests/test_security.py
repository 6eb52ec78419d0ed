"""Hostile input to the generator: rejected cleanly before anything is written, or
rendered into a repository that passes the validators; interrupted runs leave nothing."""

from __future__ import annotations

import errno
import keyword
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlgen.answers import validate_answers
from mlgen.check_runner import run_checks
from mlgen.cli import cli
from mlgen.errors import AnswerError, MlgenError
from tests.conftest import BIN
from tests.fake_plugins import FakePlugin
from tests.rendering import render

FAST_CHECKS = (
    "pyproject",
    "python-syntax",
    "kustomize",
    "kubernetes-validate",
    "container-probes",
    "hadolint",
    "promtool",
    "grafana-dashboard",
    "actionlint",
    "actions-pinned",
    "workflow-permissions",
)

_label = st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_hostile_name = st.one_of(
    st.text(min_size=0, max_size=70),
    st.sampled_from(
        [
            "",
            "../etc",
            "a/b",
            "..",
            "Model",
            "my_model",
            "-x",
            "x-",
            "1abc",
            "a" * 64,
            "{{ 7*7 }}",
            "demo\nmodel",
            "ünïcode",
        ]
    ),
)
_hostile_text = st.one_of(
    st.text(max_size=120),
    st.sampled_from(
        [
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{% for x in range(10**9) %}{% endfor %}",
            "{# comment #}",
            "line\nbreak",
            "key: value # not yaml",
            "\"quoted\" and 'quoted'",
            "back\\slash",
            "</script><script>alert(1)</script>",
            "${{ secrets.X }}",
        ]
    ),
)
_number = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["abc", "", "1e309", "nan", "-0", "0x10", "5%"]),
)
_cron = st.one_of(
    st.sampled_from(["0 3 * * 1", "*/15 * * * *", "0 0 1,15 * 1-5"]),
    st.text(max_size=30),
    st.sampled_from(["* * * *", "60 * * * *", "@weekly", "0 3 * * 1; rm -rf /"]),
)
_VALID = {
    "model_name": _label,
    "package_name": st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True).filter(
        lambda name: not keyword.iskeyword(name) and not keyword.issoftkeyword(name)
    ),
    "description": st.text(
        st.characters(blacklist_characters="{}%#\r\n", blacklist_categories=("Cs", "Cc")),
        max_size=80,
    ),
    "k8s_namespace": _label,
    "canary_weight_percent": st.integers(1, 50),
    "latency_slo_p95_ms": st.floats(0.1, 60_000),
    "error_rate_slo": st.floats(0.0001, 0.5),
    "min_roc_auc": st.floats(0.51, 1.0),
    "psi_threshold": st.floats(0.01, 10),
    "ks_pvalue_threshold": st.floats(0.0001, 0.5),
    "retrain_schedule": st.sampled_from(
        ["0 3 * * 1", "*/15 * * * *", "0 0 1,15 * 1-5", "30 2 * * 0", "5 4 * 6-8 *"]
    ),
}
_HOSTILE = {
    "model_name": _hostile_name,
    "package_name": st.one_of(st.sampled_from(sorted(keyword.kwlist)), _hostile_name),
    "description": _hostile_text,
    "k8s_namespace": _hostile_name,
    "canary_weight_percent": _number,
    "latency_slo_p95_ms": _number,
    "error_rate_slo": _number,
    "min_roc_auc": _number,
    "psi_threshold": _number,
    "ks_pvalue_threshold": _number,
    "retrain_schedule": _cron,
}


@st.composite
def _answer_sets(draw: st.DrawFn) -> dict[str, object]:
    """Valid answers to some questions, and (half the time) one hostile answer."""
    answers: dict[str, object] = draw(st.fixed_dictionaries({}, optional=_VALID))
    if draw(st.booleans()):
        field = draw(st.sampled_from(sorted(_HOSTILE)))
        answers[field] = draw(_HOSTILE[field])
    return answers


ANSWERS = _answer_sets()


def _accepted(answers: dict[str, object]) -> bool:
    try:
        validate_answers(answers)
    except AnswerError:
        return False
    return True


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answers=ANSWERS)
def test_any_answer_set_is_rejected_cleanly_or_renders_valid_artifacts(
    tmp_path_factory: pytest.TempPathFactory, answers: dict[str, object]
) -> None:
    workdir = tmp_path_factory.mktemp("hostile")
    destination = workdir / "repo"
    arguments = ["new", str(destination), "--defaults"]
    for key, value in answers.items():
        arguments += ["-d", f"{key}={value}"]
    result = CliRunner().invoke(cli, arguments)
    accepted = _accepted({k: str(v) for k, v in answers.items()})
    event("accepted" if accepted else "rejected")
    if not accepted:
        assert result.exit_code == 1, result.output
        (line,) = result.output.strip().splitlines()
        field = line.removeprefix("Error: ").split(":", 1)[0]
        assert field in answers, line
        assert list(workdir.iterdir()) == []
        return
    if "package_name" not in answers and "model_name" in answers:
        # The derived default (model name with '_') is itself validated by copier.
        derived = str(answers["model_name"]).replace("-", "_")
        if not _accepted({"package_name": derived}):
            assert result.exit_code == 1 and list(workdir.iterdir()) == []
            return
    assert result.exit_code == 0, result.output
    failed = [
        f"{check.name}: {outcome.detail}"
        for check, outcome in run_checks(destination, only=FAST_CHECKS)
        if not outcome.ok
    ]
    assert failed == []
    if "description" in answers:
        assert str(answers["description"]) in (destination / "README.md").read_text()


@pytest.mark.slow
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    answers=ANSWERS.filter(
        lambda a: _accepted({k: str(v) for k, v in a.items()}) and "model_name" not in a
    )
)
def test_accepted_answer_sets_pass_the_full_mlgen_check(
    tmp_path_factory: pytest.TempPathFactory, answers: dict[str, object]
) -> None:
    from mlgen.environments import REPO_PYTHON_ENV, python_in, shared_environment

    destination = tmp_path_factory.mktemp("accepted") / "repo"
    result = CliRunner().invoke(
        cli, ["new", str(destination), "--defaults", *[f"-d{k}={v}" for k, v in answers.items()]]
    )
    assert result.exit_code == 0, result.output
    os.environ[REPO_PYTHON_ENV] = str(python_in(shared_environment(destination)))
    try:
        failed = [
            f"{check.name}: {outcome.detail}"
            for check, outcome in run_checks(destination)
            if not outcome.ok
        ]
    finally:
        os.environ.pop(REPO_PYTHON_ENV, None)
    assert failed == []


SLOW_PLUGIN = """
    import os
    import pathlib
    import time
    import mlgen

    @mlgen.hookimpl
    def mlgen_contribute_files(answers):
        slow = answers.get("description", "x").count("slow")
        if slow and os.environ.get("ACME_SLOW_STARTED"):  # say we are mid-render
            pathlib.Path(os.environ["ACME_SLOW_STARTED"]).touch()
        time.sleep(float(slow) * 30)
        return None
"""


def test_ctrl_c_during_generation_leaves_nothing(tmp_path: Path, plugin_site: Path) -> None:
    FakePlugin("acme-slow", "acme_slow_plugin", "slow", SLOW_PLUGIN).install(plugin_site)
    workdir = tmp_path / "work"
    workdir.mkdir()
    started = tmp_path / "started"
    process = subprocess.Popen(
        [str(BIN / "mlgen"), "new", str(workdir / "repo"), "--defaults", "-d", "description=slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ACME_SLOW_STARTED": str(started)},
        # Ctrl-C as a terminal sends it: a test run in the background inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # wait until the plugin's hook runs: the staging folder is full
    assert any(workdir.iterdir()), "no staging folder mid-render"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Traceback" not in stderr
    assert list(workdir.iterdir()) == []


DISK_FULL_PLUGIN = """
    import errno
    import mlgen

    @mlgen.hookimpl
    def mlgen_contribute_files(answers):
        raise OSError(errno.ENOSPC, "No space left on device")
"""


def test_disk_error_midway_leaves_nothing(tmp_path: Path, plugin_site: Path) -> None:
    FakePlugin("acme-disk", "acme_disk_plugin", "disk", DISK_FULL_PLUGIN).install(plugin_site)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = subprocess.run(
        [str(BIN / "mlgen"), "new", str(workdir / "repo"), "--defaults"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and os.strerror(errno.ENOSPC) in line
    assert "acme-disk" in line
    assert list(workdir.iterdir()) == []


RAISING_PLUGIN = """
    import mlgen

    @mlgen.hookimpl
    def mlgen_contribute_files(answers):
        if answers.get("description") == "boom":
            raise RuntimeError("plugin bug")
        return None
"""


def test_plugin_raising_is_reported_with_its_distribution(
    tmp_path: Path, plugin_site: Path
) -> None:
    FakePlugin("acme-buggy", "acme_buggy_plugin", "buggy", RAISING_PLUGIN).install(plugin_site)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = subprocess.run(
        [str(BIN / "mlgen"), "new", str(workdir / "repo"), "--defaults", "-d", "description=boom"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "acme-buggy" in line and "RuntimeError: plugin bug" in line
    assert list(workdir.iterdir()) == []


def test_update_with_a_raising_plugin_leaves_the_repo_untouched(
    tmp_path: Path, plugin_site: Path, versioned_template: Path
) -> None:
    from mlgen.generate import generate
    from mlgen.update import plan_update
    from tests.versioned import git, init_repo, install_plugin_version

    repo = tmp_path / "repo"
    init_repo(generate(repo, versioned_template, {}, defaults=True, vcs_ref="v1"))
    install_plugin_version(
        plugin_site, FakePlugin("acme-buggy", "acme_buggy_plugin", "buggy", RAISING_PLUGIN)
    )
    with pytest.raises(MlgenError, match="acme-buggy"):
        plan_update(repo, data={"description": "boom"})
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.slow
def test_secrets_check_catches_a_committed_key(tmp_path: Path, template_root: Path) -> None:
    repo = render(template_root, tmp_path / "repo")
    ((_, clean),) = run_checks(repo, only=("secrets",))
    assert clean.ok, clean.detail
    (repo / "src" / "settings.py").write_text('AWS_ACCESS_KEY_ID = "AKIAZ7Q3XK2M9P4RT6WB"\n')
    ((_, leaked),) = run_checks(repo, only=("secrets",))
    assert not leaked.ok and "AWS Access Key in src/settings.py:1" in leaked.detail


def test_security_policy_is_generated(tmp_path: Path, template_root: Path) -> None:
    policy = (render(template_root, tmp_path / "repo") / "SECURITY.md").read_text()
    for promise in (
        "Report a vulnerability",
        "non-root",
        "readOnlyRootFilesystem",
        "NetworkPolicy",
        "commit SHA",
        "by reference",
        "never a 5xx",
    ):
        assert promise in policy
