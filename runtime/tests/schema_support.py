"""One ``features.yaml`` and its table, shared by the dataset and feature-store tests: five
events of three customers, with text levels, an unknown level, nulls and integer codes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlgen_runtime.schema import FeatureSchema, parse_schema

EVENTS_SCHEMA = """\
dataset:
  source: data/events.parquet
  format: parquet
  label: churned
  positive_class: "yes"
  entity: customer_id
  timestamp: event_timestamp
  entity_name: customer
  feature_view: customer_features
features:
  - name: tenure
    type: number
    minimum: 0
    maximum: 120
    nullable: true
    impute: median
  - name: island
    type: category
    levels: [Biscoe, Dream, other]
    unknown: other
    nullable: true
    impute: most_frequent
  - name: plan
    type: category
    levels: [0, 1, 2]
"""


def events(**columns: object) -> pd.DataFrame:
    """The table ``EVENTS_SCHEMA`` describes (``columns`` replace some of its columns)."""
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3, 3],
            "event_timestamp": pd.to_datetime(
                ["2026-01-01", "2026-01-05", "2026-01-02", "2026-01-01", "2026-01-04"], utc=True
            ),
            "tenure": [3.0, 4.0, None, 50.0, 51.0],
            "island": ["Biscoe", "Dream", None, "Mars", "Biscoe"],
            "plan": [0, 1, 2, 1, 0],
            "churned": ["no", "yes", "no", "yes", "no"],
        }
    )
    return frame.assign(**columns)


def write_repo(
    root: Path, table: pd.DataFrame | None = None, schema: str = EVENTS_SCHEMA
) -> FeatureSchema:
    """A repository root with ``table`` at the schema's ``dataset.source`` (Parquet or
    CSV, by its format) and the schema written as ``features.yaml``; the parsed schema."""
    parsed = parse_schema(schema)
    (root / "features.yaml").write_text(schema, encoding="utf-8")
    assert parsed.dataset is not None
    if table is not None and parsed.dataset.source:
        path = root / parsed.dataset.source
        path.parent.mkdir(parents=True, exist_ok=True)
        if parsed.dataset.format == "parquet":
            table.to_parquet(path, index=False)
        else:
            table.to_csv(path, index=False)
    return parsed
