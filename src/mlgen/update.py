"""``mlgen update``: bring one generated repository to a new template and plugin version.

Three trees meet for every file:

* **base**: what was generated last time. Template files come from re-rendering the
  template version recorded in ``.copier-answers.yml`` (``_commit``) with the recorded
  answers; plugin files come from ``.mlgen/plugins.json``, which holds their pristine
  bodies. (Re-rendering cannot give those: the plugin version that wrote them may be
  gone. This is the hole a plain ``copier update`` has.)
* **new**: the target template version rendered with the installed plugins and the
  recorded answers plus any ``--data`` changes.
* **current**: the working tree.

A file the user never touched takes the new version (or goes, if upstream dropped it);
a file upstream did not change stays as the user has it; otherwise ``git merge-file``
merges the two changes and leaves conflict markers (or a ``.rej`` file) where they
overlap. Nothing is overwritten without a merge, and a user's deletion stays.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2.sandbox import SandboxedEnvironment
from packaging.version import InvalidVersion, Version

from mlgen.errors import MlgenError
from mlgen.generate import check_answers
from mlgen.gitrepo import is_git_repository, require_clean_tree, show_file
from mlgen.merge import is_text, merge_three_way, unified_diff
from mlgen.python_format import formatted_sides
from mlgen.render import render_template
from mlgen.template import ANSWERS_FILE, TEMPLATE_CONFIG, default_template, recorded_answers

MANIFEST_FILE = ".mlgen/plugins.json"
OWNED_FILES = (ANSWERS_FILE, MANIFEST_FILE)
"""Files only copier/mlgen write: always replaced by the new render, never merged."""

Action = Literal["added", "updated", "merged", "conflict", "removed", "kept-deleted", "kept-edited"]
ConflictMode = Literal["inline", "rej"]


@dataclass(frozen=True)
class FileChange:
    """What the update does to one file."""

    path: str
    action: Action
    content: bytes | None = None  # what to write (None: delete, or nothing to write)
    reject: bytes | None = None  # the body of PATH.rej in --conflict rej mode


@dataclass
class UpdatePlan:
    """Everything an update would do, computed without touching the repository."""

    repo: Path
    from_version: str
    to_version: str
    from_backend: str
    to_backend: str
    changes: list[FileChange] = field(default_factory=list)
    migrations: list[dict[str, Any]] = field(default_factory=list)
    template: str = ""

    def count(self, *actions: Action) -> int:
        """How many files get one of ``actions``."""
        return sum(change.action in actions for change in self.changes)

    @property
    def conflicts(self) -> int:
        return self.count("conflict")


Tree = dict[str, bytes]


def read_tree(root: Path) -> Tree:
    """Every file below ``root`` (no ``.git``), by POSIX relative path."""
    tree: Tree = {}
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            tree[path.relative_to(root).as_posix()] = path.read_bytes()
    return tree


def _manifest(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _plugin_files(manifest: Mapping[str, Any]) -> dict[str, bytes | None]:
    files = manifest.get("files", {})
    result: dict[str, bytes | None] = {}
    for path, entry in files.items():
        content = entry.get("content") if isinstance(entry, dict) else None
        result[path] = content.encode() if isinstance(content, str) else None
    return result


def base_tree(old_render: Tree, current_manifest: bytes | None) -> Tree:
    """The last generation: template files re-rendered, plugin files from the manifest."""
    recorded = _plugin_files(_manifest(current_manifest))
    rendered_plugin_paths = set(_plugin_files(_manifest(old_render.get(MANIFEST_FILE))))
    base = {
        path: content for path, content in old_render.items() if path not in rendered_plugin_paths
    }
    for path, content in recorded.items():
        if content is None:  # an old manifest without bodies: fall back to the re-render
            if path in old_render:
                base[path] = old_render[path]
        else:
            base[path] = content
    return base


def decide(
    path: str,
    base: bytes | None,
    new: bytes | None,
    current: bytes | None,
    conflict_mode: ConflictMode,
    new_label: str,
) -> FileChange | None:
    """The change for one file, or ``None`` when it stays as it is."""
    if path in OWNED_FILES:
        return None if new == current else FileChange(path, "updated", new)
    if new in (base, current):
        return None  # upstream did not change it, or the user already has the new version
    if current == base:
        if new is None:
            return FileChange(path, "removed")
        return FileChange(path, "added" if current is None else "updated", new)
    if current is None:
        return FileChange(path, "kept-deleted")
    if new is None:
        return FileChange(path, "kept-edited")
    if not (is_text(current) and is_text(new) and is_text(base or b"")):
        reject = new if conflict_mode == "rej" else None
        return FileChange(path, "conflict", None, reject)
    labels = ("local", "last generated", new_label)
    merged = merge_three_way(current, base or b"", new, labels=labels)
    if merged.conflicts:
        # Maybe only the layout moved upstream: merge again in the new formatting.
        formatted_current, formatted_base = formatted_sides(path, current, base or b"", new)
        if formatted_current != current:
            reformatted = merge_three_way(formatted_current, formatted_base, new, labels=labels)
            merged = reformatted if reformatted.conflicts == 0 else merged
    if merged.conflicts == 0:
        return FileChange(path, "merged", merged.content)
    if conflict_mode == "rej":
        return FileChange(path, "conflict", None, unified_diff(path, base or b"", new))
    return FileChange(path, "conflict", merged.content)


def _template_source(answers: Mapping[str, Any], repo: Path, template: str | None) -> str:
    if template:
        return template
    source = answers.get("_src_path")
    if not source:
        raise MlgenError(f"{repo / ANSWERS_FILE} records no _src_path; pass --template SRC")
    if "://" not in str(source) and not str(source).startswith("git@"):
        local = Path(str(source))
        if not local.is_absolute():
            local = (repo / local).resolve()
        if not (local / TEMPLATE_CONFIG).is_file():
            raise MlgenError(
                f"the template {source} recorded in {ANSWERS_FILE} is not there; "
                "pass --template SRC"
            )
        return str(local)
    return str(source)


def _version_of(commit: str | None) -> Version | None:
    match = re.match(r"^v?(\d+(?:\.\d+)*)", commit or "")
    if not match:
        return None
    try:
        return Version(match.group(1))
    except InvalidVersion:
        return None


def _migrations(
    source: str, ref: str | None, from_commit: str, to_commit: str
) -> list[dict[str, Any]]:
    """Migrations of the target template whose version lies in (from, to]."""
    local = Path(source)
    text = None
    if local.is_dir() and is_git_repository(local) and ref:
        text = show_file(local, ref, TEMPLATE_CONFIG)
    elif (local / TEMPLATE_CONFIG).is_file():
        text = (local / TEMPLATE_CONFIG).read_text(encoding="utf-8")
    config = yaml.safe_load(text) if text else {}
    low, high = _version_of(from_commit), _version_of(to_commit)
    selected = []
    for migration in (config or {}).get("_migrations", []) or []:
        version = _version_of(str(migration.get("version", "")))
        if version is None or low is None or high is None:
            continue
        if low < version <= high:
            selected.append(migration)
    return selected


def plan_update(
    repo: Path,
    *,
    template: str | None = None,
    vcs_ref: str | None = None,
    data: Mapping[str, Any] | None = None,
    conflict_mode: ConflictMode = "inline",
) -> UpdatePlan:
    """Compute the update of ``repo`` without writing to it."""
    repo = repo.resolve()
    require_clean_tree(repo)
    answers = recorded_answers(repo)
    source = _template_source(answers, repo, template)
    old_answers = {key: value for key, value in answers.items() if not key.startswith("_")}
    changes = dict(data or {})
    if changes:
        check_answers(changes, Path(source) if Path(source).is_dir() else default_template())
    new_answers = {**old_answers, **changes}
    from_commit = str(answers.get("_commit") or "")
    with tempfile.TemporaryDirectory(prefix="mlgen-update-") as scratch:
        old_dir, new_dir = Path(scratch) / "old", Path(scratch) / "new"
        render_template(source, old_dir, old_answers, vcs_ref=from_commit or None)
        render_template(source, new_dir, new_answers, vcs_ref=vcs_ref)
        old_render, new_render = read_tree(old_dir), read_tree(new_dir)
    current_manifest = (
        (repo / MANIFEST_FILE).read_bytes() if (repo / MANIFEST_FILE).is_file() else None
    )
    base = base_tree(old_render, current_manifest)
    new_commit = str(yaml.safe_load(new_render.get(ANSWERS_FILE, b"{}")).get("_commit") or "")
    to_version = new_commit or "unversioned"
    plan = UpdatePlan(
        repo=repo,
        from_version=from_commit or "unversioned",
        to_version=to_version,
        from_backend=_backend_label(current_manifest),
        to_backend=_backend_label(new_render.get(MANIFEST_FILE)),
        template=source,
    )
    for path in sorted(set(base) | set(new_render)):
        current_path = repo / path
        current = current_path.read_bytes() if current_path.is_file() else None
        change = decide(
            path,
            base.get(path),
            new_render.get(path),
            current,
            conflict_mode,
            f"upstream {to_version}",
        )
        if change is not None:
            plan.changes.append(change)
    if from_commit and new_commit and from_commit != new_commit:
        plan.migrations = _migrations(source, vcs_ref or new_commit, from_commit, new_commit)
    return plan


def _backend_label(raw: bytes | None) -> str:
    backend = _manifest(raw).get("backend", {})
    if not backend:
        return "unknown"
    return f"{backend.get('name')} ({backend.get('distribution')} {backend.get('version')})"


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.mlgen-partial")
    partial.write_bytes(content)
    if path.exists():
        shutil.copymode(path, partial)
    os.replace(partial, path)


def _run_migrations(plan: UpdatePlan, stage: str) -> None:
    environment = SandboxedEnvironment()
    variables = {
        "_stage": stage,
        "_version_from": plan.from_version,
        "_version_to": plan.to_version,
    }
    for migration in plan.migrations:
        when = migration.get("when", True)
        if isinstance(when, str):
            when = environment.from_string(when).render(variables).strip().lower() in (
                "true",
                "1",
                "yes",
            )
        if not when:
            continue
        command = migration["command"]
        env = {
            **os.environ,
            "STAGE": stage,
            "VERSION_FROM": plan.from_version,
            "VERSION_TO": plan.to_version,
        }
        result = subprocess.run(
            command,
            shell=isinstance(command, str),
            cwd=plan.repo,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise MlgenError(
                f"migration {migration.get('version')} ({stage}) failed: "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )


def apply_plan(plan: UpdatePlan) -> None:
    """Carry out a plan: before-migrations, file writes, after-migrations."""
    _run_migrations(plan, "before")
    for change in plan.changes:
        target = plan.repo / change.path
        if change.action == "removed":
            target.unlink(missing_ok=True)
            _prune_empty_parents(target.parent, plan.repo)
        elif change.content is not None:
            _write(target, change.content)
        if change.reject is not None:
            _write(target.with_name(target.name + ".rej"), change.reject)
    _run_migrations(plan, "after")


def _prune_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
