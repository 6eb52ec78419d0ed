"""``python -m mlgen_runtime.drift``: see :mod:`mlgen_runtime.drift.cli`."""

from mlgen_runtime.drift.cli import main

raise SystemExit(main())
