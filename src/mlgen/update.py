"""``mlgen update``: bring one generated repository to a new template and plugin version.

Three trees meet for every file:

* **base**: what was generated last time, byte for byte, from the generation record
  ``.mlgen/generated.json.gz`` (:mod:`mlgen.record`). Re-rendering the old template
  version cannot give that back once a plugin's files or backend data, the runtime pin,
  copier or Jinja have moved (the hole a plain ``copier update`` has). A repository
  generated before the record existed falls back to re-rendering the template version
  in ``.copier-answers.yml`` (``_commit``), with the plugin file bodies that older
  ``.mlgen/plugins.json`` files kept; where git history shows the commit that generated
  it, the files as that commit holds them replace the re-rendered ones
  (:func:`pristine_generation`).
* **new**: the target template version rendered with the installed plugins and the
  recorded answers plus any ``-d/--answer`` changes.
* **current**: the working tree.

A file the user never touched takes the new version (or goes, if upstream dropped it);
a file upstream did not change stays as the user has it; otherwise ``git merge-file``
merges the two changes and leaves conflict markers (or a ``.rej`` file) where they
overlap. Nothing is overwritten without a merge, and a user's deletion stays.

Applying a plan is all or nothing: every file it replaces is journaled first, the records
(``.copier-answers.yml``, ``.mlgen/*``) are written last, each with an atomic rename, and any
failure or interruption puts the journaled files back. So an interrupted update never
leaves a repository that claims a version it does not hold.
"""

from __future__ import annotations

import json
import os
import re
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
from mlgen.gitrepo import (
    files_added_in,
    generation_commit,
    is_git_repository,
    require_clean_tree,
    show_file,
)
from mlgen.journal import Journal
from mlgen.merge import is_text, merge_three_way, unified_diff
from mlgen.python_format import formatted_sides
from mlgen.record import RECORD_FILE, read_record
from mlgen.render import render_template
from mlgen.template import (
    ANSWERS_FILE,
    TEMPLATE_CONFIG,
    answers_for_update,
    default_template,
    recorded_answers,
)

MANIFEST_FILE = ".mlgen/plugins.json"
OWNED_FILES = (ANSWERS_FILE, MANIFEST_FILE, RECORD_FILE)
"""The records: only copier/mlgen write them; always replaced by the new render, never
merged, and written last."""

Action = Literal[
    "added",
    "updated",
    "merged",
    "conflict",
    "removed",
    "kept-deleted",
    "kept-edited",
    "recorded",
]
COUNTED: tuple[Action, ...] = (
    "updated",
    "merged",
    "conflict",
    "kept-edited",
    "kept-deleted",
    "added",
    "removed",
)
"""What a summary counts: ``updated`` = taken as is (the user had not touched it), ``merged``
= both sides changed it, ``kept-edited`` = upstream dropped it but the user edited it,
``kept-deleted`` = the user deleted it and upstream changed it. Records are not counted."""
ConflictMode = Literal["inline", "rej"]
BaseSource = Literal["record", "history", "re-render"]
"""Where an update's base came from: the generation record; for a repository from before
the record, the re-render with the files of its generation commit; or the re-render alone."""


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
    base_source: BaseSource = "record"
    plugins_from: dict[str, str] = field(default_factory=dict)
    plugins_to: dict[str, str] = field(default_factory=dict)
    runtime_from: str = "-"
    runtime_to: str = "-"

    def count(self, *actions: Action) -> int:
        """How many files get one of ``actions``."""
        return sum(change.action in actions for change in self.changes)

    def paths(self, action: Action) -> list[str]:
        """The files that get ``action``, sorted."""
        return sorted(change.path for change in self.changes if change.action == action)

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
        if new is None:
            # A target template that writes no generation record: drop the old one, or
            # it would pose as the base of the next update. (Other records stay.)
            if path == RECORD_FILE and current is not None:
                return FileChange(path, "recorded")
            return None
        return None if new == current else FileChange(path, "recorded", new)
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


def last_generation(
    repo: Path, source: str, answers: Mapping[str, Any], commit: str
) -> tuple[Tree, BaseSource]:
    """The tree ``repo`` was last generated as: the three-way base of its update.

    From the generation record when the repository has one; else (generated before the
    record existed) the template version ``commit`` re-rendered with ``answers``, with the
    plugin file bodies an older ``.mlgen/plugins.json`` kept, and each file its pristine
    generation commit holds taken from there (:func:`pristine_generation`).
    """
    recorded = read_record(repo)
    if recorded is not None:
        return recorded, "record"
    with tempfile.TemporaryDirectory(prefix="mlgen-base-") as scratch:
        render_template(source, Path(scratch), answers, vcs_ref=commit or None)
        old_render = read_tree(Path(scratch))
    manifest = repo / MANIFEST_FILE
    raw_manifest = manifest.read_bytes() if manifest.is_file() else None
    base = base_tree(old_render, raw_manifest)
    generated = pristine_generation(repo, _plugin_files(_manifest(raw_manifest)))
    if generated is None:
        return base, "re-render"
    return {path: generated.get(path, content) for path, content in base.items()}, "history"


def pristine_generation(repo: Path, plugin_bodies: Mapping[str, bytes | None]) -> Tree | None:
    """The files as the commit that generated ``repo`` holds them, if that commit is pristine.

    The re-render of the old template uses today's plugins: once their backend data has
    moved (dependencies, ports, probes), its template files differ from what was really
    generated, and a file the user never touched would conflict. The generation commit
    (:func:`mlgen.gitrepo.generation_commit`) holds what was generated, unless the user
    edited before committing it. That is checked where it can be: every plugin file whose
    pristine body ``.mlgen/plugins.json`` kept (in the previous release, the model code
    among them) must be committed exactly so; otherwise the commit is not used. Files that
    existed before that commit are the user's, not generated, and are left out.
    """
    commit = generation_commit(repo, ANSWERS_FILE)
    if commit is None:
        return None
    generated = files_added_in(repo, commit)
    for path, body in plugin_bodies.items():
        if body is not None and generated.get(path) != body:
            return None
    return generated


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
    new_answers = answers_for_update(old_answers, changes)
    from_commit = str(answers.get("_commit") or "")
    base, base_source = last_generation(repo, source, old_answers, from_commit)
    with tempfile.TemporaryDirectory(prefix="mlgen-update-") as scratch:
        render_template(source, Path(scratch), new_answers, vcs_ref=vcs_ref)
        new_render = read_tree(Path(scratch))
    base_manifest = _manifest(base.get(MANIFEST_FILE))
    new_manifest = _manifest(new_render.get(MANIFEST_FILE))
    new_commit = str(yaml.safe_load(new_render.get(ANSWERS_FILE, b"{}")).get("_commit") or "")
    to_version = new_commit or "unversioned"
    plan = UpdatePlan(
        repo=repo,
        from_version=from_commit or "unversioned",
        to_version=to_version,
        from_backend=_backend_label(base_manifest),
        to_backend=_backend_label(new_manifest),
        template=source,
        base_source=base_source,
        plugins_from=plugin_versions(base_manifest),
        plugins_to=plugin_versions(new_manifest),
        runtime_from=runtime_version(base_manifest, base.get("pyproject.toml")),
        runtime_to=runtime_version(new_manifest, new_render.get("pyproject.toml")),
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


def plugin_versions(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``{plugin: "distribution version"}`` of the plugins a manifest names."""
    plugins = manifest.get("plugins")
    if isinstance(plugins, dict) and plugins:
        return {
            str(name): f"{entry.get('distribution')} {entry.get('version')}"
            for name, entry in sorted(plugins.items())
            if isinstance(entry, dict)
        }
    backend = manifest.get("backend") or {}
    if not backend:
        return {}
    return {str(backend.get("plugin")): f"{backend.get('distribution')} {backend.get('version')}"}


_RUNTIME_PIN = re.compile(rb"mlgen-runtime(?:\[[^\]]*\])?\s*~=\s*([0-9][0-9A-Za-z.+-]*)")


def runtime_version(manifest: Mapping[str, Any], pyproject: bytes | None) -> str:
    """The mlgen-runtime release a generation pinned (manifest, else its pyproject pin)."""
    runtime = manifest.get("runtime")
    if isinstance(runtime, dict) and runtime.get("version"):
        return str(runtime["version"])
    match = _RUNTIME_PIN.search(pyproject or b"")
    return match.group(1).decode() if match else "-"


def _backend_label(manifest: Mapping[str, Any]) -> str:
    backend = manifest.get("backend", {})
    if not backend:
        return "unknown"
    return f"{backend.get('name')} ({backend.get('distribution')} {backend.get('version')})"


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
    """Carry out a plan: before-migrations, file writes, records, after-migrations.

    All or nothing: on any error or interruption (:class:`KeyboardInterrupt`, or
    :class:`mlgen.interrupt.Interrupted` from SIGTERM) the repository is put back as it was
    and the exception propagates.
    """
    journal = Journal(plan.repo)
    ordered = sorted(plan.changes, key=lambda change: change.path in OWNED_FILES)
    try:
        if plan.migrations:
            journal.ran_commands = True
        _run_migrations(plan, "before")
        for change in ordered:
            if change.action == "removed" or (
                change.action == "recorded" and change.content is None
            ):
                journal.remove(change.path)
            elif change.content is not None:
                journal.write(change.path, change.content)
            if change.reject is not None:
                journal.write(change.path + ".rej", change.reject)
        _run_migrations(plan, "after")
    except BaseException:
        journal.rollback()
        raise
