"""mlgen_runtime.prometheus against the real ``prometheus`` binary (Debian's package)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlgen_runtime.prometheus import api, query_vector, running_prometheus

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="needs prometheus (scripts/system-tools)"
)


def test_runs_answers_and_refuses(tmp_path: Path) -> None:
    rules = "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n"
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    config = "global: {evaluation_interval: 1s}\nrule_files: [rules.yaml]\n"
    with running_prometheus(tmp_path, config) as url:
        assert query_vector(url, "vector(2) * 3") == [6.0]
        assert query_vector(url, "scalar(vector(4))") == [4.0]
        assert query_vector(url, "absent_series_here") == []
        with pytest.raises(RuntimeError, match="parse error"):
            api(url, "/api/v1/query", query="sum(")
        assert [group["name"] for group in api(url, "/api/v1/rules")["groups"]] == ["g"]
    assert (tmp_path / "data").is_dir()  # its TSDB lives in the folder given
