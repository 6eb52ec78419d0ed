"""The three acceptance tables of issue 12, built offline: scikit-learn's breast cancer,
palmerpenguins (strings and nulls) and an events table with an entity and a timestamp."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv


def breast_cancer() -> Any:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return pa.Table.from_pandas(frame, preserve_index=False)


def penguins_csv(folder: Path) -> Path:
    """palmerpenguins' own CSV, as shipped: three species, strings, ``NA`` for missing."""
    import palmerpenguins

    shipped = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
    path = folder / "penguins.csv"
    shutil.copyfile(shipped, path)
    return path


PENGUINS_LABEL = ["--label", "species", "--positive-class", "Adelie"]
"""The options that make "species is Adelie" the label (this class against the rest)."""


def breast_cancer_csv(folder: Path) -> Path:
    """The breast-cancer table as a CSV file: 30 numeric columns named with spaces."""
    path = folder / "breast_cancer.csv"
    pacsv.write_csv(breast_cancer(), path)
    return path


def events(rows: int = 2000, seed: int = 7) -> Any:
    """Customers' events: an id, an event time, two numbers, a plan with nulls and a
    label that depends on them (a model can beat the default gate on it)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    spend = rng.uniform(10, 100, rows).round(2)
    calls = rng.integers(0, 7, rows)
    plan = rng.choice(["basic", "pro", "team"], rows)
    score = 0.8 * calls - 0.05 * spend + (plan == "basic") * 1.5 + rng.normal(0, 1, rows)
    return pa.table(
        {
            "customer_id": rng.integers(0, 500, rows),
            "event_timestamp": pa.array(
                [start + dt.timedelta(minutes=17 * i) for i in range(rows)],
                pa.timestamp("us", "UTC"),
            ),
            "Monthly Spend ($)": spend,
            "support_calls": calls,
            "plan": pa.array([None if i % 23 == 0 else p for i, p in enumerate(plan)]),
            "churned": (score > np.median(score)).astype("int64"),
        }
    )
