"""Template sources and generated repositories the benchmarks work on.

The versioned template (git tags v1 and v2) is built exactly as the update tests build
it (``tests/versioned.py``): the checkout's template at v1, plus a changed README, a new
UPGRADING.md, a longer .gitignore and a migration at v2.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from _common import REPO_ROOT

from tests.versioned import build_versioned_template, commit_all, git, init_repo

ANSWERS = {"model_name": "bench-model", "serving_backend": "fastapi"}
"""The answers every benchmark renders with (the rest are the template's defaults)."""

__all__ = [
    "ANSWERS",
    "apply_local_edits",
    "build_versioned_template",
    "check_updated",
    "commit_all",
    "data_flags",
    "edited_repo",
    "git",
    "init_repo",
    "plain_template",
    "versioned_template",
]


def data_flags(answers: dict[str, str]) -> list[str]:
    """``-d KEY=VALUE`` for each answer (``mlgen new`` and ``copier copy`` both take it)."""
    flags: list[str] = []
    for key, value in answers.items():
        flags += ["-d", f"{key}={value}"]
    return flags


def plain_template(root: Path) -> Path:
    """The checkout's template as a plain folder (how a wheel ships it): no git."""
    template = root / "template-folder"
    template.mkdir()
    shutil.copy2(REPO_ROOT / "copier.yml", template / "copier.yml")
    shutil.copytree(
        REPO_ROOT / "template",
        template / "template",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return template


def versioned_template(root: Path) -> Path:
    """A git repository with the template at tag v1 and a changed one at tag v2."""
    root.mkdir(parents=True, exist_ok=True)
    return build_versioned_template(root, REPO_ROOT)


def apply_local_edits(repo: Path) -> None:
    """Edits a user makes after generation, none overlapping the v1 -> v2 change:
    the README's title, a line at the top of .gitignore, a changed default in the
    drift module, and a new file. Committed, as ``update`` requires."""
    readme = repo / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    readme.write_text("# Our churn model (edited locally)\n" + "".join(lines[1:]))
    gitignore = repo / ".gitignore"
    gitignore.write_text("# local: scratch data\nscratch/\n" + gitignore.read_text())
    drift = next((repo / "src").glob("*/drift.py"))
    text = drift.read_text()
    drift.write_text(text.replace("DEFAULT_BINS = 10\n", "DEFAULT_BINS = 12  # ours\n", 1))
    (repo / "NOTES.md").write_text("Our own notes.\n")
    commit_all(repo, "local edits")


def check_updated(repo: Path) -> str:
    """What every successful update must leave: v2 applied, local edits kept."""
    problems = []
    readme = (repo / "README.md").read_text()
    if not readme.startswith("# Our churn model (edited locally)"):
        problems.append("README lost the local title")
    if "Upgraded to template v2" not in readme:
        problems.append("README misses the v2 line")
    if not (repo / "UPGRADING.md").is_file():
        problems.append("UPGRADING.md not added")
    if "_commit: v2" not in (repo / ".copier-answers.yml").read_text():
        problems.append("answers not at v2")
    if "<<<<<<<" in readme:
        problems.append("conflict markers in README")
    return "ok" if not problems else "; ".join(problems)


def edited_repo(template: Path, destination: Path, answers: dict[str, str]) -> Path:
    """A repository rendered from template v1, committed, edited locally, committed."""
    from mlgen.generate import generate

    generate(destination, template, answers, defaults=True, vcs_ref="v1")
    init_repo(destination)
    apply_local_edits(destination)
    return destination
