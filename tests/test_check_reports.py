"""``mlgen check`` reports, read back with the readers CI systems use, and its result cache.

SARIF is loaded with ``sarif-pydantic`` (the SARIF 2.1.0 object model), JUnit XML with
``junitparser``; JSON must list every check with its status and detail. The CLI runs
the cheap checks of a rendered repository (no checkov, no environment build).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import junitparser
import pytest
import sarif_pydantic

from mlgen.check_cache import CheckCache, RepoFiles, check_key
from mlgen.check_reports import render
from mlgen.check_runner import CheckOutcome, execute
from mlgen.checks import Check, CheckResult
from tests.conftest import BIN
from tests.rendering import render as render_repo

CHEAP = ("pyproject", "python-syntax", "actions-pinned", "workflow-permissions")


def _outcomes(repo: Path) -> list[CheckOutcome]:
    passing = Check("readme", lambda _: CheckResult(True, "ok"), inputs=("README.md",))
    failing = Check(
        "dockerfile-user",
        lambda _: CheckResult(False, "USER is root <&>"),
        inputs=("Dockerfile",),
        description="The image runs as a non-root user.",
    )
    skipped = Check("slow", lambda _: CheckResult(True))
    return execute(repo, [passing, failing, skipped], skip=("slow",))


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("hello\n")
    (repo / "Dockerfile").write_text("FROM scratch\n")
    return repo


def test_sarif_is_a_valid_2_1_0_log(small_repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "report.sarif"
    path.write_text(render("sarif", _outcomes(small_repo), small_repo))
    log = sarif_pydantic.load(path)
    assert log.version == "2.1.0"
    (run,) = log.runs
    assert run.tool.driver.name == "mlgen"
    assert [rule.id for rule in run.tool.driver.rules or []] == [
        "readme",
        "dockerfile-user",
        "slow",
    ]
    (result,) = run.results or []
    assert result.rule_id == "dockerfile-user" and result.level == "error"
    assert result.message.text == "USER is root <&>"
    (location,) = result.locations or []
    assert location.physical_location.artifact_location.uri == "Dockerfile"


def test_junit_parses_with_a_junit_reader(small_repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text(render("junit", _outcomes(small_repo), small_repo))
    suites = junitparser.JUnitXml.fromfile(str(path))
    (suite,) = list(suites)
    assert (suite.tests, suite.failures, suite.skipped) == (3, 1, 1)
    cases = {case.name: case for case in suite}
    assert cases["readme"].is_passed
    (failure,) = cases["dockerfile-user"].result
    assert isinstance(failure, junitparser.Failure) and failure.message == "USER is root <&>"
    assert cases["slow"].is_skipped


def test_json_lists_every_check_with_status_and_detail(small_repo: Path) -> None:
    report = json.loads(render("json", _outcomes(small_repo), small_repo))
    rows = {row["name"]: (row["status"], row["detail"]) for row in report["checks"]}
    assert rows == {
        "readme": ("pass", "ok"),
        "dockerfile-user": ("fail", "USER is root <&>"),
        "slow": ("skipped", "skipped (--only/--skip)"),
    }
    assert report["summary"] == {"pass": 1, "fail": 1, "skipped": 1}


def test_a_change_reruns_only_the_checks_that_read_it(small_repo: Path, tmp_path: Path) -> None:
    runs: list[str] = []

    def counting(name: str) -> Check:
        def run(repo: Path) -> CheckResult:
            runs.append(name)
            return CheckResult(True, name)

        inputs = {"readme": ("README.md",), "docker": ("Dockerfile",), "all": ()}[name]
        return Check(name, run, inputs=inputs)

    checks = [counting("readme"), counting("docker"), counting("all")]
    cache = CheckCache(tmp_path / "cache")
    first = execute(small_repo, checks, cache=cache)
    assert sorted(runs) == ["all", "docker", "readme"] and not any(o.cached for o in first)
    runs.clear()
    again = execute(small_repo, checks, cache=cache)
    assert runs == [] and all(o.cached and o.status == "pass" for o in again)
    (small_repo / "Dockerfile").write_text("FROM scratch\nUSER 10001\n")
    execute(small_repo, checks, cache=cache)
    assert sorted(runs) == ["all", "docker"]
    (small_repo / "__pycache__").mkdir()  # caches tools write are not inputs
    (small_repo / "__pycache__" / "x.pyc").write_bytes(b"\0")
    runs.clear()
    execute(small_repo, checks, cache=cache)
    assert runs == []


def test_failures_and_uncacheable_checks_always_run(small_repo: Path, tmp_path: Path) -> None:
    runs: list[str] = []

    def record(name: str, ok: bool) -> Check:
        def run(repo: Path) -> CheckResult:
            runs.append(name)
            return CheckResult(ok)

        return Check(name, run, inputs=("README.md",), cacheable=name != "server")

    checks = [record("failing", False), record("server", True)]
    cache = CheckCache(tmp_path / "cache")
    execute(small_repo, checks, cache=cache)
    execute(small_repo, checks, cache=cache)
    assert sorted(runs) == ["failing", "failing", "server", "server"]


def test_input_patterns(small_repo: Path) -> None:
    (small_repo / "deploy" / "k8s").mkdir(parents=True)
    (small_repo / "deploy" / "k8s" / "a.yaml").write_text("a: 1\n")
    (small_repo / "src").mkdir()
    (small_repo / "src" / "m.py").write_text("x = 1\n")
    files = RepoFiles(small_repo)
    assert files.matching(("deploy/",)) == ["deploy/k8s/a.yaml"]
    assert files.matching(("*.py",)) == ["src/m.py"]
    assert files.matching(("Dockerfile", "missing.txt")) == ["Dockerfile"]
    assert len(files.matching(())) == 4
    check = Check("c", lambda _: CheckResult(True), inputs=("deploy/",))
    before = check_key(check, files)
    (small_repo / "README.md").write_text("changed\n")
    assert check_key(check, RepoFiles(small_repo)) == before
    (small_repo / "deploy" / "k8s" / "b.yaml").write_text("b: 1\n")
    assert check_key(check, RepoFiles(small_repo)) != before


def _mlgen_check(repo: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mlgen"), "check", str(repo), *arguments], capture_output=True, text=True
    )


def test_cli_formats_selection_and_output_file(template_root: Path, tmp_path: Path) -> None:
    repo = render_repo(template_root, tmp_path / "repo")
    only = [option for name in CHEAP for option in ("--only", name)]
    sarif = _mlgen_check(repo, *only, "--format", "sarif", "--output", str(tmp_path / "r.sarif"))
    assert sarif.returncode == 0, sarif.stderr
    assert sarif.stdout == ""  # the report went to the file, progress to stderr
    assert f"{len(CHEAP)} passed, 0 failed" in sarif.stderr
    assert sarif_pydantic.load(tmp_path / "r.sarif").version == "2.1.0"
    listed = json.loads(_mlgen_check(repo, *only, "--skip", "pyproject", "--format", "json").stdout)
    statuses = {row["name"]: row["status"] for row in listed["checks"]}
    assert statuses["pyproject"] == "skipped" and statuses["python-syntax"] == "pass"
    assert set(CHEAP) < set(statuses)  # every registered check is listed
    junit = _mlgen_check(repo, "--only", "pyproject", "--format", "junit", "--no-cache")
    assert junit.returncode == 0
    junit_path = tmp_path / "r.xml"
    junit_path.write_text(junit.stdout)
    (suite,) = list(junitparser.JUnitXml.fromfile(str(junit_path)))
    cases = {case.name: case for case in suite}
    assert cases["pyproject"].is_passed and cases["hadolint"].is_skipped
    unknown = _mlgen_check(repo, "--skip", "no-such-check")
    assert unknown.returncode == 2
    assert "no check is called no-such-check; the checks are: hadolint," in unknown.stderr


def test_generated_ci_uploads_the_sarif_report(template_root: Path, tmp_path: Path) -> None:
    import yaml

    repo = render_repo(template_root, tmp_path / "repo")
    ci = yaml.safe_load((repo / ".github" / "workflows" / "ci.yml").read_text())
    job = ci["jobs"]["mlgen-check"]
    assert job["permissions"] == {"contents": "read", "security-events": "write"}
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "mlgen check --format sarif --output mlgen-check.sarif" in runs
    assert "mlgen[check]" in runs
    (upload,) = [s for s in job["steps"] if "upload-sarif" in s.get("uses", "")]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert len(upload["uses"].split("@")[1]) == 40  # pinned by full commit SHA
    assert upload["with"]["sarif_file"] == "mlgen-check.sarif"
    assert "!cancelled()" in upload["if"]  # findings are uploaded when a check failed too
