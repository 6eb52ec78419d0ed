"""Ctrl-C and SIGTERM during ``mlgen update``: every repository untouched or complete.

Real ``mlgen`` processes get real signals. A fleet run is stopped (SIGINT to its process
group, as a terminal's Ctrl-C does) once its first repository is done; a single update is
stopped inside a template migration that runs after every file and record was written, the
latest point at which there is still something to undo.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import pytest
import yaml

from mlgen.fleet import SUMMARY_HEADER
from mlgen.generate import generate
from mlgen.update import read_tree
from tests.conftest import BIN
from tests.versioned import commit_all, git, init_repo

FLEET_SIZE = 10


def _commit_of(repo: Path) -> str:
    return str(yaml.safe_load((repo / ".copier-answers.yml").read_text())["_commit"])


def _working_tree(repo: Path) -> dict[str, bytes]:
    return read_tree(repo)


@pytest.fixture(scope="module")
def v1_repo(tmp_path_factory: pytest.TempPathFactory, versioned_template: Path) -> Path:
    repo = tmp_path_factory.mktemp("interrupt") / "model"
    generate(repo, versioned_template, {}, defaults=True, vcs_ref="v1")
    return init_repo(repo)


def _wait_until(condition: object, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


class _Collected:
    """A child's output stream read by a thread while the child runs."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.chunks: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.chunks.append(line)

    def text(self) -> str:
        return "".join(self.chunks)

    def join(self) -> str:
        self.thread.join(timeout=30)
        return self.text()


def test_sigint_stops_a_fleet_run_leaving_each_repo_untouched_or_complete(
    tmp_path: Path, v1_repo: Path
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(v1_repo, reference, symlinks=True)
    done = subprocess.run(
        [str(BIN / "mlgen"), "update", "--vcs-ref", "v2", str(reference)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    updated_tree = _working_tree(reference)
    original_tree = _working_tree(v1_repo)

    fleet = tmp_path / "fleet"
    repos = [fleet / f"model-{index:02}" for index in range(FLEET_SIZE)]
    for repo in repos:
        shutil.copytree(v1_repo, repo, symlinks=True)
    process = subprocess.Popen(
        [str(BIN / "mlgen"), "update", "--vcs-ref", "v2", "--jobs", "2", str(fleet)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the signal reaches every worker
    )
    streams = {"stdout": _Collected(process.stdout), "stderr": _Collected(process.stderr)}
    # Once the first repository's progress line says it is updated (a repository whose
    # answers already name v2 may still be mid-update, and be rolled back).
    assert _wait_until(lambda: ": updated" in streams["stderr"].text(), 300)
    os.killpg(process.pid, signal.SIGINT)
    signalled = time.monotonic()
    process.wait(timeout=60)
    print(f"exit {time.monotonic() - signalled:.2f} s after SIGINT")
    stdout, stderr = (collected.join() for collected in streams.values())

    assert process.returncode == 130, stdout + stderr
    lines = stdout.splitlines()
    assert lines[0].split() == SUMMARY_HEADER
    column = SUMMARY_HEADER.index("result")
    rows = {Path(line.split()[0]).name: line.split() for line in lines[1 : FLEET_SIZE + 1]}
    assert sorted(rows) == [repo.name for repo in repos]
    complete = untouched = 0
    for repo in repos:
        result = rows[repo.name][column]
        tree = _working_tree(repo)
        if result == "updated":
            assert tree == updated_tree, repo
            complete += 1
        else:
            assert result in ("interrupted:", "not"), rows[repo.name]
            assert tree == original_tree, repo
            assert git(repo, "status", "--porcelain") == ""
            untouched += 1
    assert complete >= 1 and untouched >= 1
    assert "Interrupted" in stderr


def _template_with_slow_migration(root: Path, source: Path) -> Path:
    """The versioned template plus a v3 whose after-migration signals and then waits."""
    template = root / "template-slow"
    shutil.copytree(source, template, symlinks=True)
    config = template / "copier.yml"
    config.write_text(
        config.read_text()
        + """  - version: v3
    command: "touch .mlgen/migrating && exec sleep 60"
    when: "{{ _stage == 'after' }}"
"""
    )
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "Template v3.\n")
    commit_all(template, "v3")
    git(template, "tag", "v3")
    return template


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_single_update_stopped_after_its_writes_is_rolled_back(
    tmp_path: Path, versioned_template: Path, v1_repo: Path, signum: int
) -> None:
    template = _template_with_slow_migration(tmp_path, versioned_template)
    repo = tmp_path / "repo"
    shutil.copytree(v1_repo, repo, symlinks=True)
    before = _working_tree(repo)
    process = subprocess.Popen(
        [str(BIN / "mlgen"), "update", "--template", str(template), "--vcs-ref", "v3", str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait_until(lambda: (repo / ".mlgen/migrating").exists(), 300)
    assert _commit_of(repo) == "v3"  # every file and record is written by now
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stdout + stderr
    assert "interrupted" in stdout and "rolled back" in stdout
    assert _working_tree(repo) == before
    assert git(repo, "status", "--porcelain") == ""
    assert _commit_of(repo) == "v1"
