"""Property test of ``mlgen update``: random local and upstream edit scripts.

hypothesis draws a local edit script (change, insert and delete lines of generated files,
delete a file, add a file) and an upstream one on the template itself (the same line
operations on template lines that render verbatim, delete a template file, add one). Both
are written as positions in the last generated file, so the expected result is known:

* no local edit is lost: every file ends as the local version plus the upstream change,
  or, in a conflict, still holds every line the user wrote;
* every non-conflicting upstream change is applied (the file equals both scripts applied);
* every overlap is reported: a file conflicts exactly when a local and an upstream edit
  change the same lines or touch (the rule in docs/updating.md), and then the update
  reports it and needs attention (exit status 1).
"""

from __future__ import annotations

import ast
import itertools
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st

from mlgen.finish import format_python
from mlgen.fleet import UpdateOptions, update_fleet
from mlgen.generate import generate
from tests.versioned import git, init_repo

pytestmark = pytest.mark.slow

PACKAGE = "demo_model"
LOCAL_NEW_FILE = "LOCAL_NOTES.md"
UPSTREAM_NEW_FILE = "UPSTREAM_GUIDE.md"
JINJA_MARKERS = ("{{", "}}", "{%", "%}", "{#", "#}")
OPERATIONS = ("change", "insert", "delete")


@dataclass
class World:
    """A template clone at v1 and a repository generated from it (shared by examples)."""

    root: Path
    template: Path
    repo: Path
    generated: dict[str, list[str]]  # text files of the generation, as lines with ends
    template_files: dict[str, Path]  # generated path -> its template source
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def __repr__(self) -> str:
        return f"World({self.root})"


def _commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


_INCLUDES = re.compile(r"{%-?\s*(?:include|import|from)\s+['\"]([^'\"]+)['\"]")


def _layout(world: World, path: str, text: str) -> str:
    """``text`` as compared: a Python file as generation lays it out (``mlgen.finish``:
    imports sorted, then ``ruff format``, with the generated ``pyproject.toml``) without its
    blank lines: an edit next to an import may leave a blank line on either side of a
    comment, both stable under the formatter and neither losing a change."""
    if not path.endswith(".py"):
        return text
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "pyproject.toml").write_text("".join(world.generated["pyproject.toml"]))
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        format_python(folder)
        return "".join(line for line in _lines(target.read_text()) if line.strip())


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, versioned_template: Path) -> World:
    root = tmp_path_factory.mktemp("property")
    template = root / "template"
    git(root, "clone", "-q", str(versioned_template), str(template))
    git(template, "checkout", "-q", "v1")
    repo = root / "base"
    generate(repo, template, {}, defaults=True, vcs_ref="v1")
    init_repo(repo)
    generated = {}
    for path in sorted(repo.rglob("*")):
        relative = path.relative_to(repo).as_posix()
        if not path.is_file() or relative.startswith((".git/", ".mlgen/", ".copier-answers")):
            continue
        try:
            generated[relative] = _lines(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            continue
    sources = sorted((template / "template").rglob("*.jinja"))
    included = {
        name for source in sources for name in _INCLUDES.findall(source.read_text(encoding="utf-8"))
    }
    template_files = {}
    for source in sources:
        target = source.relative_to(template / "template").as_posix().removesuffix(".jinja")
        target = target.replace("{{ package_name }}", PACKAGE)
        # A template that includes another renders from more than its own source: an
        # upstream edit of the included file changes it too, which this model of one
        # source per file cannot predict. The engine still updates it; it is not drawn. An
        # included template is not drawn either: deleting it breaks the template itself.
        included_name = source.relative_to(template).as_posix()
        text = source.read_text(encoding="utf-8")
        if target in generated and not _INCLUDES.search(text) and included_name not in included:
            template_files[target] = source
    return World(root, template, repo, generated, template_files)


def _unique_lines(lines: list[str]) -> set[str]:
    return {line for line in lines if lines.count(line) == 1 and line.endswith("\n")}


def _formatter_settings(lines: list[str]) -> set[int]:
    """Indices of ``[tool.ruff*]`` lines in a pyproject: an edit there re-lays out every
    Python file of the render, which this model of line edits cannot predict."""
    inside, indices = False, set()
    for index, line in enumerate(lines):
        if line.startswith("["):
            inside = line.startswith("[tool.ruff")
        if inside:
            indices.add(index)
    return indices


def _import_block(lines: list[str]) -> set[int]:
    """Indices of a Python file's import lines and the lines just before them: the
    import sorter lays that block out (a comment inserted after an import moves below
    the next blank line), which this model of line edits cannot predict."""
    imports = {i for i, line in enumerate(lines) if line.startswith(("import ", "from "))}
    return imports | {i - 1 for i in imports}


def _laid_out(path: str, lines: list[str]) -> set[int]:
    """Indices of lines whose layout generation decides, not the template text."""
    if path == "pyproject.toml":
        return _formatter_settings(lines)
    return _import_block(lines) if path.endswith(".py") else set()


def _local_positions(world: World, path: str) -> list[int]:
    lines = world.generated[path]
    unique = _unique_lines(lines)
    settings = _laid_out(path, lines)
    return [
        index
        for index, line in enumerate(lines)
        if line in unique and line.strip() and index not in settings
    ]


def _upstream_positions(world: World, path: str) -> list[int]:
    """Lines of the generated file that come verbatim from one template line, where an edit
    of that template line changes exactly that generated line."""
    generated = world.generated[path]
    source = _lines(world.template_files[path].read_text(encoding="utf-8"))
    in_generated, in_source = _unique_lines(generated), _unique_lines(source)
    positions = []
    for number, line in enumerate(source):
        following = source[number + 1].lstrip() if number + 1 < len(source) else ""
        preceding = source[number - 1].rstrip() if number else ""
        if (
            line in in_generated
            and line in in_source
            and line.strip()
            and not any(marker in line for marker in JINJA_MARKERS)
            and not following.startswith(("{%-", "{{-", "{#-"))
            and not preceding.endswith(("-%}", "-}}", "-#}"))  # it strips what follows
        ):
            positions.append(generated.index(line))
    return sorted(set(positions) - _laid_out(path, generated))


Script = dict[str, list[tuple[str, int, str]]]  # path -> (operation, base line, new text)


def _draw_script(
    data: st.DataObject, world: World, side: str, candidates: dict[str, list[int]]
) -> Script:
    script: Script = {}
    paths = data.draw(
        st.lists(st.sampled_from(sorted(candidates)), max_size=3, unique=True), label=side
    )
    for path in paths:
        chosen = data.draw(
            st.lists(st.sampled_from(candidates[path]), min_size=1, max_size=2, unique=True),
            label=f"{side} lines of {path}",
        )
        spaced = [i for i in sorted(chosen) if all(abs(i - o) > 2 for o in chosen if o != i)]
        chosen = spaced or [min(chosen)]
        script[path] = []
        lines = world.generated[path]
        for index in chosen:
            operation = data.draw(st.sampled_from(OPERATIONS), label=f"{side} {path}:{index}")
            # indented like its neighbour, so that a formatter leaves the line where it is
            neighbour = (
                lines[index + 1]
                if operation == "insert" and index + 1 < len(lines)
                else lines[index]
            )
            indent = neighbour[: len(neighbour) - len(neighbour.lstrip())].rstrip("\n")
            text = f"{indent}# {side} edit {next(world.counter)}\n"
            script[path].append((operation, index, text))
    return script


def _one_edit(
    data: st.DataObject, world: World, side: str, path: str, index: int
) -> list[tuple[str, int, str]]:
    """One drawn operation at line ``index`` of ``path``."""
    lines = world.generated[path]
    operation = data.draw(st.sampled_from(OPERATIONS), label=f"{side} {path}:{index}")
    neighbour = (
        lines[index + 1] if operation == "insert" and index + 1 < len(lines) else lines[index]
    )
    indent = neighbour[: len(neighbour) - len(neighbour.lstrip())].rstrip("\n")
    return [(operation, index, f"{indent}# {side} edit {next(world.counter)}\n")]


def _apply(lines: list[str], *scripts: list[tuple[str, int, str]]) -> list[str]:
    """Apply non-touching operations (base line positions) to ``lines``."""
    by_index: dict[int, list[tuple[str, str]]] = {}
    for script in scripts:
        for operation, index, text in script:
            by_index.setdefault(index, []).append((operation, text))
    result = []
    for index, line in enumerate(lines):
        operations = dict(by_index.get(index, []))
        if "change" in operations:
            result.append(operations["change"])
        elif "delete" not in operations:
            result.append(line)
        if "insert" in operations:
            result.append(operations["insert"])
    return result


def _deleted_only(
    local: list[tuple[str, int, str]], upstream: list[tuple[str, int, str]], line: str
) -> bool:
    """Whether ``line`` belongs to a deletion (whose text is never written)."""
    return any(op == "delete" and text == line for op, _, text in local + upstream)


def _region(operation: str, index: int) -> tuple[int, int]:
    return (index + 1, index + 1) if operation == "insert" else (index, index + 1)


def _touch(local: list[tuple[str, int, str]], upstream: list[tuple[str, int, str]]) -> bool:
    for (a_op, a_index, _), (b_op, b_index, _) in itertools.product(local, upstream):
        if a_op == b_op == "delete" and a_index == b_index:
            continue  # the same change on both sides: no conflict
        (a_start, a_end), (b_start, b_end) = _region(a_op, a_index), _region(b_op, b_index)
        if a_start <= b_end and b_start <= a_end:
            return True
    return False


def _parses(lines: list[str]) -> bool:
    try:
        ast.parse("".join(lines))
    except SyntaxError:
        return False
    return True


def _keeps_python_valid(world: World, local: Script, upstream: Script) -> bool:
    """Whether every edited Python file still parses on each side and, where the sides
    do not touch, merged: an edit that empties a block (say, the only statement under
    ``try:``) leaves a file ruff cannot lay out, outside what this model predicts."""
    for path in set(local) | set(upstream):
        if not path.endswith(".py"):
            continue
        base, mine, theirs = world.generated[path], local.get(path, []), upstream.get(path, [])
        sides = [_apply(base, mine), _apply(base, theirs)]
        if not _touch(mine, theirs):
            sides.append(_apply(base, mine, theirs))
        if not all(_parses(lines) for lines in sides):
            return False
    return True


def _edit_template(world: World, path: str, script: list[tuple[str, int, str]]) -> None:
    source_path = world.template_files[path]
    source = _lines(source_path.read_text(encoding="utf-8"))
    generated = world.generated[path]
    translated = [(op, source.index(generated[index]), text) for op, index, text in script]
    source_path.write_text("".join(_apply(source, translated)), encoding="utf-8")


@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # a shrink step costs a render: report as drawn
)
@given(data=st.data())
def test_random_local_and_upstream_edits(world: World, data: st.DataObject) -> None:
    example = next(world.counter)
    local_candidates = {p: _local_positions(world, p) for p in world.template_files}
    upstream_candidates = {p: _upstream_positions(world, p) for p in world.template_files}
    local = _draw_script(data, world, "local", {p: v for p, v in local_candidates.items() if v})
    eligible = {p: v for p, v in upstream_candidates.items() if v}
    upstream = _draw_script(data, world, "upstream", eligible)
    # Overlaps are what the test is about: most examples also edit one file on both sides,
    # upstream within two lines of the local edit (touching, overlapping, or just apart).
    both = sorted(path for path in eligible if local_candidates.get(path))
    shared = data.draw(st.none() | st.sampled_from(both), label="file edited on both sides")
    if shared is not None:
        mine = data.draw(st.sampled_from(local_candidates[shared]), label="local line")
        close = [i for i in eligible[shared] if abs(i - mine) <= 2] or eligible[shared]
        theirs = data.draw(st.sampled_from(close), label="upstream line")
        local[shared] = _one_edit(data, world, "local", shared, mine)
        upstream[shared] = _one_edit(data, world, "upstream", shared, theirs)
    assume(_keeps_python_valid(world, local, upstream))
    untouched = sorted(set(world.template_files) - set(local) - set(upstream))
    local_delete = data.draw(st.none() | st.sampled_from(untouched), label="local delete")
    upstream_delete = data.draw(
        st.none() | st.sampled_from([p for p in untouched if p != local_delete]),
        label="upstream delete",
    )
    local_add = data.draw(st.booleans(), label="local add")
    upstream_add = data.draw(st.booleans(), label="upstream add")

    # upstream: a new template version, tagged v1.<example>
    git(world.template, "checkout", "-q", "-f", "v1")
    for path, script in upstream.items():
        _edit_template(world, path, script)
    if upstream_delete:
        world.template_files[upstream_delete].unlink()
    if upstream_add:
        (world.template / "template" / f"{UPSTREAM_NEW_FILE}.jinja").write_text(
            "# Guide for {{ model_name }}\n"
        )
    tag = f"v1.{example + 1}"
    _commit(world.template, tag)
    git(world.template, "tag", tag)
    try:
        # local: the user's committed edits
        repo = world.root / f"example-{example}"
        shutil.copytree(world.repo, repo, symlinks=True)
        for path, script in local.items():
            (repo / path).write_text("".join(_apply(world.generated[path], script)))
        if local_delete:
            (repo / local_delete).unlink()
        if local_add:
            (repo / LOCAL_NEW_FILE).write_text("my notes\n")
        _commit(repo, "local edits")

        [outcome] = update_fleet([repo], UpdateOptions(vcs_ref=tag))
        assert outcome.result in ("updated", "conflicts"), outcome.detail

        expected_conflicts = sorted(
            path for path in set(local) & set(upstream) if _touch(local[path], upstream[path])
        )
        event(f"conflicting files: {len(expected_conflicts)}")
        event(f"files edited on both sides: {len(set(local) & set(upstream))}")
        # A Python conflict may still merge cleanly in ruff's layout (mlgen.python_format):
        # then nothing is reported, and both sides' lines must be in the merged file.
        resolved = sorted(set(expected_conflicts) - set(outcome.conflicted))
        assert all(path.endswith(".py") for path in resolved), resolved
        assert set(outcome.conflicted) <= set(expected_conflicts)
        assert outcome.needs_attention == bool(outcome.conflicted)
        for path in resolved:
            text = (repo / path).read_text()
            for _, _, line in local[path] + upstream[path]:
                assert line.strip() in text or _deleted_only(local[path], upstream[path], line)
        for path in world.template_files:
            target = repo / path
            base = world.generated[path]
            if path == local_delete:
                assert not target.exists(), path
            elif path == upstream_delete:
                assert target.exists() == (path in local), path
            elif path in resolved:
                pass  # checked above
            elif path in expected_conflicts:
                text = target.read_text()
                assert "<<<<<<< local" in text, path
                for operation, _, line in local[path]:
                    if operation != "delete":
                        assert line in text, (path, line)
            else:
                wanted = _apply(base, local.get(path, []), upstream.get(path, []))
                actual, expected = target.read_text(), "".join(wanted)
                if actual != expected:
                    assert _layout(world, path, actual) == _layout(world, path, expected), path
        if local_add:
            assert (repo / LOCAL_NEW_FILE).read_text() == "my notes\n"
        assert (repo / UPSTREAM_NEW_FILE).exists() == upstream_add
    finally:
        git(world.template, "checkout", "-q", "-f", "v1")
