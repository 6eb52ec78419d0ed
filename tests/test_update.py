"""``mlgen update``: template and plugin upgrades that never lose a local edit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mlgen.errors import MlgenError
from mlgen.fleet import SUMMARY_HEADER, UpdateOptions, update_fleet
from mlgen.generate import generate
from mlgen.update import apply_plan, decide, plan_update
from tests.conftest import BIN, REPO_ROOT
from tests.versioned import (
    MIGRATION_MARKER,
    README_V2_LINE,
    commit_all,
    echo_plugin,
    git,
    init_repo,
    install_plugin_version,
)


def make_repo(destination: Path, template: Path, **answers: str) -> Path:
    """A repository generated from template v1 and committed to git."""
    generate(destination, template, answers, defaults=True, vcs_ref="v1")
    return init_repo(destination)


def update(repo: Path, **kwargs: object) -> list[tuple[str, str]]:
    """Plan and apply an update; return the (action, path) pairs."""
    plan = plan_update(repo, **kwargs)  # type: ignore[arg-type]
    apply_plan(plan)
    return [(change.action, change.path) for change in plan.changes]


def cli_update(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mlgen"), "update", *arguments], capture_output=True, text=True, cwd=cwd
    )


def answers_of(repo: Path) -> dict[str, object]:
    return dict(yaml.safe_load((repo / ".copier-answers.yml").read_text()))


# ---------------------------------------------------------------- the conflict rule

BASE_LINES = ["a", "b", "c", "d", "e"]


def _edited(**lines: str | None) -> bytes:
    """BASE_LINES with line N (``l2=...``) replaced, or deleted (None); ``end`` appends."""
    result = []
    for number, line in enumerate(BASE_LINES, start=1):
        replacement = lines.get(f"l{number}", line)
        if replacement is not None:
            result.append(replacement)
    if "end" in lines:
        result.append(str(lines["end"]))
    return "".join(f"{line}\n" for line in result).encode()


@pytest.mark.parametrize(
    ("local", "upstream", "conflict"),
    [
        (_edited(l2="B"), _edited(l3="C"), True),  # touching: no unchanged line between
        (_edited(l2="B"), _edited(l3=None), True),  # touching a deletion
        (_edited(end="mine"), _edited(end="theirs"), True),  # both add at the same place
        (_edited(l2="B"), _edited(l2="B2"), True),  # the same line
        (_edited(l2="B"), _edited(l4="D"), False),  # one unchanged line between: both kept
        (_edited(l2="B"), _edited(l2="B"), False),  # the same change on both sides
    ],
)
def test_the_documented_conflict_rule(local: bytes, upstream: bytes, conflict: bool) -> None:
    base = _edited()
    change = decide("notes.txt", base, upstream, local, "inline", "upstream")
    if conflict:
        assert change is not None and change.action == "conflict"
        assert change.content is not None and b"<<<<<<< local" in change.content
    elif local == upstream:
        assert change is None  # the user already has the new version
    else:
        assert change is not None and change.action == "merged"
        assert change.content == b"a\nB\nc\nD\ne\n"


def test_readme_and_docs_state_the_conflict_rule() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    docs = (REPO_ROOT / "docs" / "updating.md").read_text()
    assert "**or touch** (no unchanged line between" in " ".join(readme.split())
    assert "one unchanged line between them is enough" in " ".join(readme.split())
    assert "**or when they touch**: no unchanged line separates them" in " ".join(docs.split())


# ---------------------------------------------------------------- template upgrades


def test_clean_template_upgrade(tmp_path: Path, versioned_template: Path) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    assert answers_of(repo)["_commit"] == "v1"
    changes = update(repo, vcs_ref="v2")
    assert ("updated", "README.md") in changes
    assert ("added", "UPGRADING.md") in changes
    assert (repo / "README.md").read_text().endswith(README_V2_LINE)
    assert (repo / "UPGRADING.md").read_text().startswith("# Upgrading demo-model")
    assert "*.log" in (repo / ".gitignore").read_text()
    assert answers_of(repo)["_commit"] == "v2"
    assert (repo / MIGRATION_MARKER).read_text().strip() == "v1-v2"


def test_local_edit_that_does_not_overlap_is_kept(tmp_path: Path, versioned_template: Path) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    readme = repo / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    readme.write_text("# My churn model (edited locally)\n" + "".join(lines[1:]))
    commit_all(repo, "local edit")
    changes = update(repo, vcs_ref="v2")
    assert ("merged", "README.md") in changes
    text = readme.read_text()
    assert text.startswith("# My churn model (edited locally)\n")
    assert text.endswith(README_V2_LINE)
    assert "<<<<<<<" not in text


def test_overlapping_edit_is_a_conflict_with_markers_and_exit_1(
    tmp_path: Path, versioned_template: Path
) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "\nMy own closing line.\n")
    commit_all(repo, "local edit at the end")
    result = cli_update("--vcs-ref", "v2", str(repo))
    assert result.returncode == 1
    assert "conflict      README.md" in result.stdout
    assert result.stdout.splitlines()[-2].split()[-1] == "conflicts"
    assert result.stdout.splitlines()[-1] == f"{repo}: conflict: README.md"
    text = readme.read_text()
    assert "<<<<<<< local" in text and "=======" in text and ">>>>>>> upstream v2" in text
    assert "My own closing line." in text and README_V2_LINE.strip() in text


def test_conflict_rej_mode_keeps_the_file_and_writes_a_reject(
    tmp_path: Path, versioned_template: Path
) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    readme = repo / "README.md"
    mine = readme.read_text() + "\nMy own closing line.\n"
    readme.write_text(mine)
    commit_all(repo, "local edit at the end")
    result = cli_update("--vcs-ref", "v2", "--conflict", "rej", str(repo))
    assert result.returncode == 1
    assert readme.read_text() == mine
    reject = (repo / "README.md.rej").read_text()
    assert reject.startswith("--- a/README.md") and "+" + README_V2_LINE.strip() in reject


def test_user_deleted_file_stays_deleted(tmp_path: Path, versioned_template: Path) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    (repo / ".gitignore").unlink()
    commit_all(repo, "we do not want a .gitignore")
    changes = update(repo, vcs_ref="v2")
    assert ("kept-deleted", ".gitignore") in changes
    assert not (repo / ".gitignore").exists()


def test_dirty_tree_is_refused_and_left_alone(tmp_path: Path, versioned_template: Path) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    (repo / "README.md").write_text("work in progress\n")
    result = cli_update("--vcs-ref", "v2", str(repo))
    assert result.returncode == 1
    assert "uncommitted change" in result.stdout and "commit or stash" in result.stdout
    assert (repo / "README.md").read_text() == "work in progress\n"
    assert not (repo / "UPGRADING.md").exists()
    with pytest.raises(MlgenError, match="uncommitted"):
        plan_update(repo, vcs_ref="v2")


def test_not_a_git_repository_is_refused(tmp_path: Path, versioned_template: Path) -> None:
    repo = tmp_path / "repo"
    generate(repo, versioned_template, {}, defaults=True, vcs_ref="v1")
    with pytest.raises(MlgenError, match="not a git repository"):
        plan_update(repo, vcs_ref="v2")


def test_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, versioned_template: Path
) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    head = git(repo, "rev-parse", "HEAD")
    result = cli_update("--vcs-ref", "v2", "--dry-run", str(repo))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "added         UPGRADING.md" in result.stdout
    assert "would update" in result.stdout
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "rev-parse", "HEAD") == head


def test_update_is_idempotent(tmp_path: Path, versioned_template: Path) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    update(repo, vcs_ref="v2")
    commit_all(repo, "update to v2")
    assert update(repo, vcs_ref="v2") == []


# ---------------------------------------------------------------- plugin upgrades


@pytest.fixture
def echo_repo(tmp_path: Path, versioned_template: Path, plugin_site: Path) -> Path:
    """A repository generated with backend ``echo`` 1.0, then echo 2.0 installed."""
    install_plugin_version(plugin_site, echo_plugin("1.0"))
    repo = make_repo(tmp_path / "repo", versioned_template, serving_backend="echo")
    assert (repo / "OLD_NOTES.md").is_file()
    install_plugin_version(plugin_site, echo_plugin("2.0"))
    return repo


def test_plugin_upgrade_changes_adds_and_removes_files(echo_repo: Path) -> None:
    changes = update(echo_repo, vcs_ref="v1")
    assert ("updated", "serving.conf") in changes
    assert ("updated", "src/demo_model/serving/server.py") in changes
    assert ("added", "healthcheck.sh") in changes
    assert ("removed", "OLD_NOTES.md") in changes
    assert "timeout = 60" in (echo_repo / "serving.conf").read_text()
    assert (echo_repo / "healthcheck.sh").is_file()
    assert not (echo_repo / "OLD_NOTES.md").exists()
    manifest = (echo_repo / ".mlgen" / "plugins.json").read_text()
    assert '"version": "2.0"' in manifest


def test_plain_copier_update_misses_the_plugin_upgrade_mlgen_does_not(echo_repo: Path) -> None:
    """copier re-renders the old version with the new plugin: it sees no plugin change."""
    result = subprocess.run(
        [
            str(BIN / "copier"),
            "update",
            "--trust",
            "--defaults",
            "--quiet",
            "--vcs-ref",
            "v2",
            str(echo_repo),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (echo_repo / "README.md").read_text().endswith(README_V2_LINE)  # template: applied
    assert "timeout = 30" in (echo_repo / "serving.conf").read_text()  # plugin: not applied
    assert (echo_repo / "OLD_NOTES.md").is_file()  # ... and not corrupted either
    commit_all(echo_repo, "copier update")
    changes = update(echo_repo, vcs_ref="v2")
    assert ("updated", "serving.conf") in changes and ("added", "healthcheck.sh") in changes
    assert "timeout = 60" in (echo_repo / "serving.conf").read_text()


def test_plugin_file_local_edit_is_kept(echo_repo: Path) -> None:
    conf = echo_repo / "serving.conf"
    conf.write_text(conf.read_text().replace("workers = 2", "workers = 8"))
    commit_all(echo_repo, "more workers")
    changes = update(echo_repo, vcs_ref="v1")
    assert ("merged", "serving.conf") in changes
    assert conf.read_text() == "name = demo-model\nworkers = 8\n\n# limits\ntimeout = 60\n"


def test_plugin_file_overlapping_edit_is_a_conflict(echo_repo: Path) -> None:
    conf = echo_repo / "serving.conf"
    conf.write_text(conf.read_text().replace("timeout = 30", "timeout = 45"))
    commit_all(echo_repo, "my timeout")
    result = cli_update("--vcs-ref", "v1", str(echo_repo))
    assert result.returncode == 1
    assert "conflict      serving.conf" in result.stdout
    text = conf.read_text()
    assert "<<<<<<< local\ntimeout = 45" in text and "timeout = 60\n>>>>>>> upstream" in text


def test_plugin_file_deleted_by_user_stays_deleted(echo_repo: Path) -> None:
    (echo_repo / "serving.conf").unlink()
    commit_all(echo_repo, "no conf")
    changes = update(echo_repo, vcs_ref="v1")
    assert ("kept-deleted", "serving.conf") in changes
    assert not (echo_repo / "serving.conf").exists()


def test_plugin_dropped_file_that_the_user_edited_is_kept(echo_repo: Path) -> None:
    notes = echo_repo / "OLD_NOTES.md"
    notes.write_text("Notes for v1.\nMine too.\n")
    commit_all(echo_repo, "my notes")
    changes = update(echo_repo, vcs_ref="v1")
    assert ("kept-edited", "OLD_NOTES.md") in changes
    assert notes.read_text() == "Notes for v1.\nMine too.\n"


def test_plugin_dry_run_writes_nothing(echo_repo: Path) -> None:
    result = cli_update("--vcs-ref", "v1", "--dry-run", str(echo_repo))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed       OLD_NOTES.md" in result.stdout
    assert git(echo_repo, "status", "--porcelain") == ""


def test_switching_backend_removes_untouched_files_and_keeps_edited_ones(
    tmp_path: Path, versioned_template: Path, plugin_site: Path
) -> None:
    install_plugin_version(plugin_site, echo_plugin("1.0"))
    repo = make_repo(tmp_path / "repo", versioned_template, serving_backend="echo")
    conf = repo / "serving.conf"
    conf.write_text(conf.read_text() + "# tuned by us\n")
    commit_all(repo, "tuned")
    changes = dict(
        (path, action)
        for action, path in update(repo, vcs_ref="v1", data={"serving_backend": "fastapi"})
    )
    assert changes["serving.conf"] == "kept-edited"
    assert changes["OLD_NOTES.md"] == "removed"
    assert changes["src/demo_model/serving/app.py"] == "added"
    assert changes["Dockerfile"] == "added"
    assert answers_of(repo)["serving_backend"] == "fastapi"
    assert not (repo / "src/demo_model/serving/server.py").exists()
    assert conf.read_text().endswith("# tuned by us\n")


def test_unknown_backend_in_data_is_refused(tmp_path: Path, versioned_template: Path) -> None:
    repo = make_repo(tmp_path / "repo", versioned_template)
    with pytest.raises(MlgenError, match="Did you mean 'fastapi'"):
        plan_update(repo, vcs_ref="v2", data={"serving_backend": "fastap"})


# ---------------------------------------------------------------- fleets


def test_fleet_updates_each_repo_and_reports_the_one_conflict(
    tmp_path: Path, versioned_template: Path
) -> None:
    repos = [
        make_repo(
            tmp_path / "fleet" / f"model-{index}", versioned_template, model_name=f"model-{index}"
        )
        for index in range(5)
    ]
    readme = repos[2] / "README.md"
    readme.write_text(readme.read_text() + "\nLocal closing line.\n")
    commit_all(repos[2], "conflicting edit")
    (repos[4] / "README.md").write_text("dirty\n")  # refused, not fatal to the fleet
    listing = tmp_path / "repos.txt"
    listing.write_text("# the fleet\n" + "\n".join(str(r) for r in repos[:3]) + "\n")
    result = cli_update(
        "--vcs-ref", "v2", "--from-file", str(listing), str(repos[3]), str(repos[4]), "--jobs", "2"
    )
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == SUMMARY_HEADER
    by_repo = {line.split()[0]: line.split() for line in lines[1 : len(repos) + 1]}
    result_column = SUMMARY_HEADER.index("result")
    assert [by_repo[str(r)][result_column] for r in repos[:4]] == [
        "updated",
        "updated",
        "conflicts",
        "updated",
    ]
    assert by_repo[str(repos[2])][SUMMARY_HEADER.index("conflict")] == "1"
    assert by_repo[str(repos[0])][SUMMARY_HEADER.index("template")] == "v1->v2"
    assert by_repo[str(repos[4])][result_column] == "error:"
    assert f"{repos[2]}: conflict: README.md" in lines
    # Progress in a log (not a terminal): exactly one line per repository, on stderr.
    progress = [line for line in result.stderr.splitlines() if line.startswith(str(tmp_path))]
    assert sorted(line.split(": ")[0] for line in progress) == sorted(map(str, repos))
    assert any(line.startswith(f"{repos[2]}: conflicts (") for line in progress), progress
    for repo in (repos[0], repos[1], repos[3]):
        assert (repo / "UPGRADING.md").is_file()


def test_fleet_dry_run_over_a_folder_of_repos(tmp_path: Path, versioned_template: Path) -> None:
    for index in range(3):
        make_repo(tmp_path / "fleet" / f"m{index}", versioned_template, model_name=f"m{index}")
    outcomes = update_fleet(
        [tmp_path / "fleet" / f"m{index}" for index in range(3)],
        UpdateOptions(vcs_ref="v2", dry_run=True),
        jobs=2,
    )
    assert [outcome.result for outcome in outcomes] == ["would update"] * 3
    result = cli_update("--vcs-ref", "v2", "--dry-run", str(tmp_path / "fleet"))
    assert result.returncode == 0 and result.stdout.count("would update") == 3
    for index in range(3):
        assert not (tmp_path / "fleet" / f"m{index}" / "UPGRADING.md").exists()


@pytest.mark.slow
def test_upgraded_repo_passes_mlgen_check_and_its_own_tests(
    tmp_path: Path, versioned_template: Path
) -> None:
    from mlgen.check_runner import run_checks
    from mlgen.environments import REPO_PYTHON_ENV, python_in, run_in_repo, shared_environment

    repo = make_repo(tmp_path / "repo", versioned_template)
    readme = repo / "README.md"
    readme.write_text("# Our model\n" + readme.read_text().split("\n", 1)[1])
    commit_all(repo, "local edit")
    assert ("merged", "README.md") in update(repo, vcs_ref="v2")
    environment = shared_environment(repo)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(REPO_PYTHON_ENV, str(python_in(environment)))
        failed = [
            f"{check.name}: {result.detail}" for check, result in run_checks(repo) if not result.ok
        ]
    assert failed == []
    result = run_in_repo(
        repo,
        environment,
        # the production profile's integration tests run once, in test_generated_repo.py
        ["python", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not integration"],
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
