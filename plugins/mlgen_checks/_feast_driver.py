"""Run in the repository's own environment by the ``feast-apply`` check.

Usage: ``python _feast_driver.py PACKAGE FEATURE_REPO END_TIME ROWS``. Writes the sample
source with the repository's ``PACKAGE.feature_store write-source``, then runs Feast's
own ``feast apply`` and ``feast materialize-incremental END_TIME`` commands in this one
process: importing Feast takes most of each command's time, so three processes cost
three imports. Prints ``step: ...`` before each step; a failure exits 1 with its error
as the last line of standard error.
"""

from __future__ import annotations

import sys

# Python put this script's folder first on the path; its modules (secrets.py,
# kubernetes.py, ...) would shadow the standard library and packages of the same name.
sys.path = [entry for entry in sys.path if entry != __file__.rpartition("/")[0]]

import runpy  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402


def _feast_cli() -> Any:
    try:
        from feast.cli.cli import cli
    except ImportError:  # Feast releases before the cli package
        from feast.cli import cli
    return cli


def main(argv: list[str]) -> int:
    """Run the three steps; 0 when all succeed."""
    package, feature_repo, end, rows = argv
    module = f"{package}.feature_store"
    steps: list[tuple[str, Callable[[], None]]] = [
        ("write-source", lambda: _run_module(module, ["write-source", "--rows", rows])),
        ("feast apply", lambda: _feast(["-c", feature_repo, "apply"])),
        (
            "feast materialize-incremental",
            lambda: _feast(["-c", feature_repo, "materialize-incremental", end]),
        ),
    ]
    for name, run in steps:
        print(f"step: {name}", flush=True)
        try:
            run()
        except SystemExit as stop:
            if stop.code not in (0, None):
                print(f"{name}: exit status {stop.code}", file=sys.stderr)
                return 1
        except Exception as error:
            traceback.print_exc()
            print(f"{name}: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    return 0


def _run_module(module: str, arguments: list[str]) -> None:
    sys.argv = [module, *arguments]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _feast(arguments: list[str]) -> None:
    cli = _feast_cli()
    cli.main(arguments, prog_name="feast", standalone_mode=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
