"""The generation record: the pristine generated tree, kept in the repository.

``mlgen update`` merges upstream changes against what was generated last time. Re-rendering
the old template version cannot give that back byte for byte once anything it depends on
has moved: an installed plugin's files or backend data (ports, dependencies, probes), the
runtime pin, copier or Jinja. So every generation stores its own output, compressed, in
``.mlgen/generated.json.gz``; the next update takes its three-way base from there.

copier writes it through a task of the template (``python -m mlgen.finish .``, which formats
the Python files first, :mod:`mlgen.finish`), so plain
``copier copy --trust`` and ``mlgen new`` leave the same record. The JSON is written with
sorted keys and gzip without a timestamp, so the same generation gives the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

RECORD_FILE = ".mlgen/generated.json.gz"
RECORD_FORMAT = 1

Tree = dict[str, bytes]


def snapshot(root: Path) -> Tree:
    """Every file below ``root`` except ``.git`` and the record itself, by POSIX path."""
    tree: Tree = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and ".git" not in relative.parts:
            key = relative.as_posix()
            if key != RECORD_FILE:
                tree[key] = path.read_bytes()
    return tree


def encode_record(tree: Tree) -> bytes:
    """The record of ``tree``: deterministic gzip-compressed JSON."""
    files: dict[str, dict[str, str]] = {}
    for path, content in sorted(tree.items()):
        try:
            files[path] = {"text": content.decode("utf-8")}
        except UnicodeDecodeError:
            files[path] = {"base64": base64.b64encode(content).decode("ascii")}
    body = json.dumps({"format": RECORD_FORMAT, "files": files}, sort_keys=True, indent=0)
    return gzip.compress(body.encode("utf-8"), compresslevel=9, mtime=0)


def decode_record(raw: bytes) -> Tree | None:
    """The tree a record holds, or ``None`` for something that is not a readable record."""
    try:
        loaded: Any = json.loads(gzip.decompress(raw))
    except (OSError, EOFError, ValueError):
        return None
    if not isinstance(loaded, dict) or loaded.get("format") != RECORD_FORMAT:
        return None
    tree: Tree = {}
    for path, entry in (loaded.get("files") or {}).items():
        if "text" in entry:
            tree[path] = entry["text"].encode("utf-8")
        else:
            tree[path] = base64.b64decode(entry["base64"])
    return tree


def read_record(repo: Path) -> Tree | None:
    """The last generation of ``repo`` as recorded in it, or ``None`` when it has none."""
    path = repo / RECORD_FILE
    return decode_record(path.read_bytes()) if path.is_file() else None


def write_record(root: Path) -> Path:
    """Record the tree below ``root`` (a fresh generation) in ``root/.mlgen``, atomically."""
    target = root / RECORD_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(encode_record(snapshot(root)))
    os.replace(partial, target)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m mlgen.record [DIR]``: the copier task run after every generation."""
    arguments = sys.argv[1:] if argv is None else argv
    write_record(Path(arguments[0] if arguments else "."))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
