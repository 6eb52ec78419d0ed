"""Read a training table: Parquet or CSV, from a local path or any URL pyarrow can open.

``read_table`` is the one way a repository (and ``mlgen new --data``) reads the user's
data. It opens the source the way Feast's ``FileSource`` does, with ``pyarrow.fs``
(``s3://``, ``gs://``, ``hdfs://``, ``file://`` and local paths), falling back to fsspec
for other schemes (``http(s)://``, ``abfs://``, ...) when fsspec and its driver are
installed. Every failure is one :class:`TableError` line naming the source and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

TableFormat = Literal["parquet", "csv"]
FORMATS: tuple[TableFormat, ...] = ("parquet", "csv")

_SUFFIXES: dict[str, TableFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
}
_COMPRESSION = (".gz", ".bz2", ".zst", ".lz4")


class TableError(ValueError):
    """A table that cannot be read; the message is one line naming the source and the fix."""


def table_format(source: str | os.PathLike[str], format: str | None = None) -> TableFormat:
    """The format of ``source``: ``format`` when given, else from its file suffix.

    Raises:
        TableError: an unknown format, or a suffix that names none.
    """
    if format is not None:
        if format not in FORMATS:
            raise TableError(f"format {format!r}: must be one of {', '.join(FORMATS)}")
        return format
    name = str(source).split("?", 1)[0].rstrip("/").lower()
    for compression in _COMPRESSION:
        if name.endswith(compression):
            name = name[: -len(compression)]
    for suffix, found in _SUFFIXES.items():
        if name.endswith(suffix):
            return found
    if _is_url(str(source)) or not Path(source).is_dir():
        raise TableError(
            f"{source}: cannot tell the format from the file name; name it .parquet or .csv,"
            " or give the format (parquet or csv)"
        )
    return "parquet"  # a local folder: a Parquet dataset, as Feast reads one


def _is_url(source: str) -> bool:
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.isidentifier() and len(scheme) > 1


def _filesystem(source: str) -> tuple[Any, str]:
    """A pyarrow filesystem and the path inside it (Feast's FileSource does the same)."""
    import pyarrow.fs as pafs

    if not _is_url(source):
        return pafs.LocalFileSystem(), str(Path(source).expanduser().absolute())
    try:
        filesystem, path = pafs.FileSystem.from_uri(source)
        return filesystem, str(path)
    except Exception as arrow_error:  # an unsupported scheme: try fsspec
        try:
            import fsspec
        except ImportError:
            raise TableError(
                f"{source}: pyarrow cannot open this URL ({arrow_error}); install fsspec"
                " with the driver for its scheme"
            ) from arrow_error
        try:
            fs, path = fsspec.core.url_to_fs(source)
        except Exception as error:
            raise TableError(f"{source}: cannot open: {_one_line(error)}") from error
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def read_table(source: str | os.PathLike[str], format: str | None = None) -> pa.Table:
    """Read a whole Parquet or CSV table.

    Args:
        source: a local path (a file, or a folder of Parquet files) or a URL
            (``s3://bucket/events.parquet``, ``gs://...``, ``https://...``).
        format: ``"parquet"`` or ``"csv"``; ``None`` infers it from the suffix.

    Returns:
        The table, with at least one row and one column. CSV columns get pyarrow's type
        inference; ``""``, ``NA``, ``NaN``, ``null`` and the like are nulls.

    Raises:
        TableError: a missing or unreadable source, a file that is not the format, or a
            table with no rows or no columns.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    found = table_format(source, format)
    filesystem, path = _filesystem(str(source))
    try:
        info = filesystem.get_file_info(path)
    except Exception as error:
        raise TableError(f"{source}: cannot open: {_one_line(error)}") from error
    import pyarrow.fs as pafs

    if info.type == pafs.FileType.NotFound:
        relative = not _is_url(str(source)) and not Path(source).expanduser().is_absolute()
        where = f" (relative to {Path.cwd()})" if relative else ""
        raise TableError(f"{source}: no such file; check the path{where}")
    if info.type == pafs.FileType.File and info.size == 0:
        raise TableError(f"{source}: the file is empty; give a {found} file with a header row")
    try:
        if found == "parquet":
            table = pq.read_table(path, filesystem=filesystem)
        else:
            with filesystem.open_input_stream(path, compression="detect") as stream:
                table = pacsv.read_csv(
                    stream, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
                )
    except (pa.ArrowInvalid, OSError) as error:
        raise TableError(
            f"{source}: not a readable {found} file ({_one_line(error)}); check the file or"
            f" give the right format"
        ) from error
    if table.num_columns == 0:
        raise TableError(f"{source}: the table has no columns")
    if table.num_rows == 0:
        raise TableError(f"{source}: the table has no rows; give a table with data")
    return table
