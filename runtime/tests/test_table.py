"""read_table: Parquet and CSV, local paths and URLs, one-line errors for bad sources."""

from __future__ import annotations

from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from mlgen_runtime.table import TableError, read_table, table_format  # noqa: E402


def _table() -> pa.Table:
    return pa.table({"x": [1.5, 2.5, None], "island": ["Biscoe", "Dream", None]})


def test_reads_parquet_csv_and_a_file_url(tmp_path: Path) -> None:
    pq.write_table(_table(), tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_text("x,island\n1.5,Biscoe\n2.5,Dream\nNA,\n")
    for source in (
        tmp_path / "t.parquet",
        str(tmp_path / "t.csv"),
        (tmp_path / "t.parquet").as_uri(),
    ):
        table = read_table(source)
        assert table.column_names == ["x", "island"]
        assert table.column("x").to_pylist() == [1.5, 2.5, None]
        assert table.column("island").to_pylist() == ["Biscoe", "Dream", None]


def test_a_parquet_folder_and_an_explicit_format(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    pq.write_table(_table(), tmp_path / "ds" / "part-0.parquet")
    assert read_table(tmp_path / "ds").num_rows == 3
    (tmp_path / "data.txt").write_text("a,b\n1,2\n")
    assert read_table(tmp_path / "data.txt", format="csv").column("b").to_pylist() == [2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.parquet", None, "no such file"),
        ("empty.csv", "", "the file is empty"),
        ("header.csv", "a,b\n", "no rows"),
        ("junk.parquet", "not parquet at all", "not a readable parquet file"),
        ("table.json", "{}", "cannot tell the format"),
    ],
)
def test_bad_sources_are_one_line_errors(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(TableError, match=message) as caught:
        read_table(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_format_from_the_name() -> None:
    assert table_format("s3://bucket/events.parquet") == "parquet"
    assert table_format("https://host/penguins.csv.gz?x=1") == "csv"
    with pytest.raises(TableError, match="must be one of parquet, csv"):
        table_format("x.csv", "json")


def test_a_missing_relative_path_names_the_folder_it_is_relative_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TableError) as relative:
        read_table("data/none.csv")
    assert str(relative.value) == (
        f"data/none.csv: no such file; check the path (relative to {tmp_path})"
    )
    with pytest.raises(TableError) as absolute:
        read_table(tmp_path / "none.csv")
    assert str(absolute.value) == f"{tmp_path / 'none.csv'}: no such file; check the path"
