"""``mlgen update --branch NAME [--push] [--message TEXT]`` over a fleet with bare remotes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlgen.fleet import SUMMARY_HEADER, UpdateOptions, update_fleet
from mlgen.generate import generate
from tests.conftest import BIN
from tests.versioned import README_V2_LINE, commit_all, git, init_repo

IDENTITY = {
    "GIT_AUTHOR_NAME": "mlgen tests",
    "GIT_AUTHOR_EMAIL": "tests@mlgen.invalid",
    "GIT_COMMITTER_NAME": "mlgen tests",
    "GIT_COMMITTER_EMAIL": "tests@mlgen.invalid",
}


@pytest.fixture(scope="module")
def v1_repo(tmp_path_factory: pytest.TempPathFactory, versioned_template: Path) -> Path:
    repo = tmp_path_factory.mktemp("branch") / "model"
    generate(repo, versioned_template, {}, defaults=True, vcs_ref="v1")
    return init_repo(repo)


def _with_remote(source: Path, repo: Path, remote: Path) -> Path:
    shutil.copytree(source, repo, symlinks=True)
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", remote.as_uri())
    git(repo, "push", "-q", "origin", "HEAD:refs/heads/main")
    return repo


def _remote_branches(remote: Path) -> list[str]:
    result = subprocess.run(
        ["git", "--git-dir", str(remote), "for-each-ref", "--format=%(refname:short)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(result.stdout.split())


def test_branch_push_commits_clean_updates_and_leaves_conflicts_alone(
    tmp_path: Path, v1_repo: Path
) -> None:
    fleet, remotes = tmp_path / "fleet", tmp_path / "remotes"
    repos = [
        _with_remote(v1_repo, fleet / f"m{index}", remotes / f"m{index}.git") for index in range(3)
    ]
    readme = repos[1] / "README.md"
    readme.write_text(readme.read_text() + "\nOur own closing line.\n")
    commit_all(repos[1], "local edit where v2 appends")
    heads = [git(repo, "rev-parse", "HEAD").strip() for repo in repos]
    branches = [git(repo, "branch", "--show-current").strip() for repo in repos]

    command = [str(BIN / "mlgen"), "update", "--vcs-ref", "v2", "--jobs", "2", str(fleet)]
    result = subprocess.run(
        [*command, "--branch", "tpl-v2", "--push"],
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY},
    )

    assert result.returncode == 1, result.stdout + result.stderr  # the conflict needs you
    lines = result.stdout.splitlines()
    column = SUMMARY_HEADER.index("result")
    rows = {Path(line.split()[0]).name: line for line in lines[1:4]}
    assert rows["m0"].split()[column] == "updated:" and "pushed to origin" in rows["m0"]
    assert rows["m2"].split()[column] == "updated:"
    assert rows["m1"].split()[column] == "conflicts:" and "left alone" in rows["m1"]
    assert f"{repos[1]}: conflict: README.md" in lines

    for index in (0, 2):
        remote, repo = remotes / f"m{index}.git", repos[index]
        assert _remote_branches(remote) == ["main", "tpl-v2"]
        show = ["git", "--git-dir", str(remote), "show"]
        readme_v2 = subprocess.run([*show, "tpl-v2:README.md"], capture_output=True, text=True)
        assert readme_v2.stdout.endswith(README_V2_LINE)
        log = subprocess.run([*show, "-s", "--format=%s%n%P", "tpl-v2"], capture_output=True)
        subject, parent = log.stdout.decode().split("\n")[:2]
        assert subject == "Update to template v2 (mlgen update)" and parent == heads[index]
        # the checkout itself did not move: same branch, same commit, clean
        assert git(repo, "branch", "--show-current").strip() == branches[index]
        assert git(repo, "rev-parse", "HEAD").strip() == heads[index]
        assert git(repo, "status", "--porcelain") == ""
        assert not (repo / "UPGRADING.md").exists()

    assert _remote_branches(remotes / "m1.git") == ["main"]
    assert "tpl-v2" not in git(repos[1], "branch", "--list")
    assert git(repos[1], "rev-parse", "HEAD").strip() == heads[1]
    assert git(repos[1], "status", "--porcelain") == ""


def test_branch_with_message_and_an_existing_branch(
    tmp_path: Path, v1_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)
    repo = tmp_path / "repo"
    shutil.copytree(v1_repo, repo, symlinks=True)
    options = UpdateOptions(vcs_ref="v2", branch="tpl-v2", message="Template v2, please review")
    [outcome] = update_fleet([repo], options)
    assert outcome.result == "updated" and outcome.branch == "tpl-v2", outcome.detail
    assert git(repo, "log", "-1", "--format=%s", "tpl-v2") == "Template v2, please review\n"

    [again] = update_fleet([repo], options)  # the branch exists: refused, nothing written
    assert again.result == "error" and "tpl-v2" in again.detail
    assert git(repo, "status", "--porcelain") == ""


def test_push_and_message_need_a_branch(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "mlgen"), "update", "--push", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "--push and --message need --branch" in result.stderr
