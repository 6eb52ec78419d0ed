"""The drift benchmark's Evidently baseline (b): runs in its own environment.

Loads the reference and window the drift body saved (``--data-dir``), runs Evidently's
``DataDriftPreset`` (its default per-column tests) on them as pandas DataFrames, and
writes the timings and Evidently's per-column drift decisions as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import interleaved


def run_report(reference: pd.DataFrame, window: pd.DataFrame, columns: list[str]) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    report = Report([DataDriftPreset()])
    return report.run(
        current_data=Dataset.from_pandas(window, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )


def decisions(snapshot: Any, columns: list[str]) -> dict[str, Any]:
    """Evidently's per-column drift decision: its drift score against its threshold."""
    per_column: dict[str, Any] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        column = config.get("column")
        if config.get("type", "").endswith("ValueDrift") and column in columns:
            method, threshold = config.get("method"), config.get("threshold")
            value = metric["value"]
            # p-value tests ("K-S p_value", ...) drift below the threshold, distances above.
            pvalue = "p_value" in str(method).lower()
            drifted = value < threshold if pvalue else value >= threshold
            per_column[column] = {
                "method": method,
                "threshold": threshold,
                "value": value,
                "drifted": bool(drifted),
            }
    return per_column


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import evidently

    columns = json.loads((args.data_dir / "columns.json").read_text())
    reference = pd.DataFrame(np.load(args.data_dir / "reference.npy"), columns=columns)
    window = pd.DataFrame(np.load(args.data_dir / "window.npy"), columns=columns)
    print("Evidently warm-up on 1,000 rows", file=sys.stderr, flush=True)
    run_report(reference.head(1000), window.head(1000), columns)

    def case() -> float:
        start = time.perf_counter()
        run_report(reference, window, columns)
        return time.perf_counter() - start

    label = "(b) Evidently DataDriftPreset"
    measured = interleaved({label: case}, args.repeats)
    per_column = decisions(run_report(reference, window, columns), columns)
    args.out.write_text(
        json.dumps(
            {
                "versions": {
                    "evidently": evidently.__version__,
                    "pandas": pd.__version__,
                    "numpy": np.__version__,
                    "python": sys.version.split()[0],
                },
                "rows": len(window),
                "features": len(columns),
                "measurements": {label: measured[label].to_dict()},
                "decisions": per_column,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
