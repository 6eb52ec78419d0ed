"""The runtime's area pages: all linked from docs/runtime.md; the examples of those written
as complete programs (``RUNNABLE``) execute, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PAGES = sorted((REPO_ROOT / "docs" / "runtime").glob("*.md"))
RUNNABLE = [REPO_ROOT / "docs" / "runtime" / name for name in ("ab.md", "drift.md", "training.md")]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_every_page_is_linked_from_the_overview() -> None:
    overview = (REPO_ROOT / "docs" / "runtime.md").read_text()
    for page in PAGES:
        assert f"(runtime/{page.name})" in overview, page.name


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: page.stem)
def test_the_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _BLOCK.findall(page.read_text())
    assert blocks, f"{page.name} has no Python example"
    monkeypatch.chdir(tmp_path)  # examples may write files (a saved profile)
    for block in blocks:
        exec(compile(block, str(page), "exec"), {"__name__": "__doc_example__"})
