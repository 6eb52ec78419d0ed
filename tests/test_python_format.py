"""Merging Python files whose only upstream change is ruff's layout keeps local edits."""

from __future__ import annotations

from mlgen.python_format import formatted_sides, ruff_formatted
from mlgen.update import decide

BASE = b"""def fit(X, y, seed):
    model = Pipeline([
        ("scale", StandardScaler()),
        ("classifier", LogisticRegression(max_iter=1000, random_state=seed)),
    ])
    return model.fit(X, y)
"""
EDITED = BASE.replace(b"max_iter=1000", b"max_iter=2000, C=0.5")
NEW = b"""def fit(X, y, seed):
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            ("classifier", LogisticRegression(max_iter=1000, random_state=seed)),
        ]
    )
    return model.fit(X, y)


def predict(model, X):
    return model.predict(X)
"""


def change(path: str, current: bytes, base: bytes = BASE, new: bytes = NEW) -> tuple[str, bytes]:
    result = decide(path, base, new, current, "inline", "upstream v2")
    assert result is not None
    return result.action, result.content or b""


def test_an_edit_inside_reformatted_code_merges_with_the_upstream_change() -> None:
    action, content = change("src/pkg/modeling.py", EDITED)
    assert action == "merged"
    assert b"LogisticRegression(max_iter=2000, C=0.5, random_state=seed)" in content
    assert b"def predict(model, X):" in content
    assert ruff_formatted(content, "modeling.py") == content


def test_a_real_overlap_is_still_a_conflict() -> None:
    new = NEW.replace(b"max_iter=1000", b"max_iter=500")
    action, content = change("src/pkg/modeling.py", EDITED, new=new)
    assert action == "conflict"
    assert b"<<<<<<< local" in content


def test_files_other_than_python_merge_as_they_are() -> None:
    assert change("notes.txt", EDITED)[0] == "conflict"


def test_a_local_version_ruff_cannot_parse_is_merged_as_it_is() -> None:
    broken = EDITED.replace(b"return model.fit(X, y)", b"return model.fit(X, y")
    assert formatted_sides("m.py", broken, BASE, NEW) == (broken, BASE)
    assert change("src/pkg/modeling.py", broken)[0] == "conflict"


def test_an_unformatted_new_version_leaves_both_sides_alone() -> None:
    assert formatted_sides("m.py", EDITED, BASE, BASE + b"\n\n\nx=1\n") == (EDITED, BASE)
