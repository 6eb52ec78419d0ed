"""A repository from before the generation record takes its base from its generation commit.

The re-render of its old template uses today's plugins; once their backend data moved, a
file the user never touched would conflict. The commit that generated the repository holds
what was really generated, and is used when git history shows it is that commit and it is
pristine (docs/updating.md, "Repositories from before the record").
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from mlgen import plugins
from mlgen.generate import generate
from mlgen.gitrepo import files_added_in, generation_commit
from mlgen.record import RECORD_FILE, snapshot
from mlgen.template import ANSWERS_FILE, recorded_answers
from mlgen.update import MANIFEST_FILE, last_generation, plan_update
from tests.versioned import commit_all, git, init_repo

PROBE = b'"mlgen-history-probe>=1"'


# ---------------------------------------------------------------- which commit generated it


def _write(repo: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)


def test_the_commit_that_added_the_answers_gives_the_files_it_added(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    _write(repo, {"notes.txt": "the user's, from before\n"})
    commit_all(repo, "Before generating")
    _write(repo, {"notes.txt": "changed by the generation\n", ANSWERS_FILE: "_commit: v1\n"})
    _write(repo, {"src/model.py": "FIT = 1\n", ".gitattributes": "*.bat text eol=crlf\n"})
    _write(repo, {"run.bat": "echo one\necho two\n"})
    commit_all(repo, "Generated")
    generated = git(repo, "rev-parse", "HEAD").strip()
    (repo / "run.bat").unlink()
    git(repo, "checkout", "--", "run.bat")  # as a clone has it
    _write(repo, {"src/model.py": "FIT = 2\n"})
    commit_all(repo, "A local edit")

    assert generation_commit(repo, ANSWERS_FILE) == generated
    added = files_added_in(repo, generated)
    assert sorted(added) == sorted([".gitattributes", ANSWERS_FILE, "run.bat", "src/model.py"])
    assert added["src/model.py"] == b"FIT = 1\n"  # as generated, not as edited since
    assert added["run.bat"] == (repo / "run.bat").read_bytes() == b"echo one\r\necho two\r\n"


def test_a_later_commit_that_changed_the_answers_is_an_update_not_a_generation(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    _write(repo, {ANSWERS_FILE: "_commit: v1\n", "a.txt": "one\n"})
    commit_all(repo, "Generated")
    _write(repo, {ANSWERS_FILE: "_commit: v2\n", "a.txt": "one, merged with mine\n"})
    commit_all(repo, "Updated by an older mlgen")
    assert generation_commit(repo, ANSWERS_FILE) is None


def test_a_shallow_clone_hides_which_commit_generated_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    _write(repo, {ANSWERS_FILE: "_commit: v1\n"})
    commit_all(repo, "Generated")
    _write(repo, {"a.txt": "one\n"})
    commit_all(repo, "More")
    assert generation_commit(repo, ANSWERS_FILE) is not None
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True)
    # The boundary commit of the clone looks like a root commit that added everything.
    assert generation_commit(clone, ANSWERS_FILE) is None


def test_a_repository_in_a_subfolder_of_a_monorepo(tmp_path: Path) -> None:
    monorepo = tmp_path / "mono"
    repo = monorepo / "models" / "churn"
    repo.mkdir(parents=True)
    git(monorepo, "init", "-q")
    _write(monorepo, {"README.md": "the monorepo\n"})
    _write(repo, {ANSWERS_FILE: "_commit: v1\n", "src/model.py": "FIT = 1\n"})
    commit_all(monorepo, "Generated churn")
    generated = generation_commit(repo, ANSWERS_FILE)
    assert generated is not None
    assert files_added_in(repo, generated) == {
        ANSWERS_FILE: b"_commit: v1\n",
        "src/model.py": b"FIT = 1\n",
    }

    # Moved into another folder later: the move added nothing, it generated nothing.
    _write(repo, {"src/model.py": "FIT = 2\n"})
    commit_all(monorepo, "A local edit")
    git(monorepo, "mv", "models/churn", "models/churn-v2")
    commit_all(monorepo, "Rename the model")
    assert generation_commit(monorepo / "models" / "churn-v2", ANSWERS_FILE) is None


# ---------------------------------------------------------------- the base it gives


@pytest.fixture
def pre_record_repo(tmp_path: Path, versioned_template: Path) -> Path:
    """A fastapi repository as a release before the record wrote it: no record, and the
    pristine body of every plugin file kept in ``.mlgen/plugins.json``."""
    repo = generate(tmp_path / "repo", versioned_template, {}, defaults=True, vcs_ref="v1")
    (repo / RECORD_FILE).unlink()
    manifest_path = repo / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    for path, entry in manifest["files"].items():
        entry["content"] = (repo / path).read_text()
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return repo


def move_backend_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Today's fastapi plugin: its backend data gained a dependency since generation."""
    registry = plugins.get_registry()
    registered = registry.backends["fastapi"]
    changed = dataclasses.replace(
        registered.backend,
        dependencies=(*registered.backend.dependencies, PROBE.decode().strip('"')),
    )
    monkeypatch.setitem(
        registry.backends, "fastapi", dataclasses.replace(registered, backend=changed)
    )


def _answers(repo: Path) -> dict[str, object]:
    return {k: v for k, v in recorded_answers(repo).items() if not k.startswith("_")}


def test_the_generation_commit_is_the_base_and_the_plugin_change_arrives(
    pre_record_repo: Path, versioned_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = pre_record_repo
    generated = snapshot(repo)
    init_repo(repo)
    model = repo / "src/demo_model/modeling.py"
    model.write_text(model.read_text() + "\n# tuned by the data scientist\n")
    commit_all(repo, "A local edit")
    move_backend_data(monkeypatch)

    base, source = last_generation(repo, str(versioned_template), _answers(repo), "v1")
    assert source == "history"
    assert [path for path in generated if base.get(path) != generated[path]] == []
    assert PROBE not in base["pyproject.toml"]

    plan = plan_update(repo, vcs_ref="v1")
    actions = {change.path: change.action for change in plan.changes}
    assert plan.base_source == "history" and plan.conflicts == 0
    assert actions["pyproject.toml"] == "updated"  # untouched: the new version, no conflict
    assert PROBE in next(c.content for c in plan.changes if c.path == "pyproject.toml")
    assert "src/demo_model/modeling.py" not in actions  # the edit stays, nothing to merge


def test_a_generation_commit_with_edits_to_plugin_files_in_it_is_not_used(
    pre_record_repo: Path, versioned_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Edited before the first commit: the commit is not what was generated. This shows in
    # the plugin files, whose pristine bodies .mlgen/plugins.json kept (in the previous
    # release they included the model code).
    repo = pre_record_repo
    app = repo / "src/demo_model/serving/app.py"
    app.write_text(app.read_text() + "\n# tuned before the first commit\n")
    init_repo(repo)
    move_backend_data(monkeypatch)

    base, source = last_generation(repo, str(versioned_template), _answers(repo), "v1")
    assert source == "re-render"
    assert PROBE in base["pyproject.toml"]  # the re-render with today's plugin
    assert b"tuned before the first commit" not in base["src/demo_model/serving/app.py"]
