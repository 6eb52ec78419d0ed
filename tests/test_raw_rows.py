"""Slow tier: a fastapi repository on the palmerpenguins table serves raw rows.

The repository is generated from copier answers as ``mlgen new --data`` passes them
(``data_source``, ``label_column``, ``positive_class``, ``entity_column``,
``timestamp_column``, ``feature_schema`` with a string category and nullable features),
trained by its own code on the CSV (``train.fit_and_export``) and served by its own
service under uvicorn (``serving.smoke.running_server``). Checked against that real
service: ``/predict`` with ``"island": "Torgersen"`` and ``null`` answers the in-process
model's probability (|diff| < 1e-5); an unknown ``sex`` gets a 422 naming the levels;
``tritonclient.http`` sends the string categories as ``BYTES`` (JSON and binary) and gets
the same probabilities; drift flags a shifted copy of the table and not the table itself.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import palmerpenguins
import pytest

from mlgen.environments import python_in, repo_process_environment, shared_environment
from tests.rendering import render

TOLERANCE = 1e-5
READY_TIMEOUT_S = 900.0  # building the environment is done before; training and uvicorn
PACKAGE = "penguins"
LEVELS = ["Biscoe", "Dream", "Torgersen", "other"]
SCHEMA: dict[str, Any] = {
    "features": [
        {
            "name": "island",
            "type": "category",
            "levels": LEVELS,
            "unknown": "other",
            "nullable": True,
            "impute": "most_frequent",
            "description": "Island where the penguin was observed.",
        },
        *(
            {
                "name": name,
                "type": "number",
                "minimum": low,
                "maximum": high,
                "nullable": True,
                "impute": "median",
                "description": f"{name} as measured.",
            }
            for name, low, high in (
                ("bill_length_mm", 25, 65),
                ("bill_depth_mm", 10, 25),
                ("flipper_length_mm", 150, 250),
                ("body_mass_g", 2000, 7000),
            )
        ),
        {
            "name": "sex",
            "type": "category",
            "levels": ["female", "male"],
            "unknown": "reject",
            "nullable": True,
            "impute": "most_frequent",
            "description": "Sex of the penguin.",
        },
    ],
    "example": {
        "island": "Torgersen",
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181,
        "body_mass_g": 3750,
        "sex": "male",
    },
}
ROWS: list[dict[str, Any]] = [
    {  # a string and nulls (the raw row of the acceptance)
        "island": "Torgersen",
        "bill_length_mm": None,
        "bill_depth_mm": 18.0,
        "flipper_length_mm": 190.0,
        "body_mass_g": None,
        "sex": None,
    },
    {  # an island the schema does not know: the "other" level
        "island": "Atlantis",
        "bill_length_mm": 47.5,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 215.0,
        "body_mass_g": 5000.0,
        "sex": "female",
    },
    {
        "island": None,
        "bill_length_mm": 38.0,
        "bill_depth_mm": None,
        "flipper_length_mm": None,
        "body_mass_g": 3400.0,
        "sex": "male",
    },
]

# Runs in the repository's environment: train on the CSV, predict in-process, check drift,
# serve until stdin closes.
DRIVER = """
import json, sys
from pathlib import Path
import numpy as np
import pandas as pd
from {package} import data, drift, features, modeling, train
from {package}.serving.smoke import running_server
out, rows = Path(sys.argv[1]), json.loads(sys.argv[2])
model, record = train.fit_and_export(out, 200, source="synthetic")
artifact = out / record["artifact"]
table = data.load_table()[list(features.FEATURE_NAMES)]
shifted = table.copy()
shifted["island"] = shifted["island"].replace({{"Biscoe": "Dream"}})
profile = drift.load_profile(out / drift.REFERENCE_PROFILE_FILENAME)
facts = {{
    "record": {{key: record[key] for key in ("roc_auc", "n_train", "max_abs_export_diff")}},
    "in_process": modeling.predict_proba(model, features.to_matrix(rows)).tolist(),
    "by_columns": modeling.predict_proba(model, pd.DataFrame(rows)).tolist(),
    "exported": modeling.load_exported(artifact)(rows).tolist(),
    "drift": drift.detect_drift(table, profile).drift,
    "drift_shifted": list(drift.detect_drift(shifted, profile).drifted_features),
}}
with running_server(artifact) as url:
    (out / "server.json").write_text(json.dumps({{**facts, "url": url}}))
    sys.stdin.read()
"""


def render_penguins(
    template_root: Path, root: Path, backend: str, schema: dict[str, Any] | None = None
) -> Path:
    """A ``backend`` repository at ``root/repo`` on palmerpenguins' CSV (``root``), from the
    answers ``mlgen new --data`` passes (``schema``, by default :data:`SCHEMA`)."""
    csv = root / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(csv, index=False)
    return render(
        template_root,
        root / "repo",
        serving_backend=backend,
        model_name=PACKAGE,
        data_source=str(csv),
        label_column="species",
        positive_class="Adelie",
        entity_column="",
        timestamp_column="",
        feature_schema=schema or SCHEMA,
    )


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, template_root: Path
) -> Iterator[dict[str, Any]]:
    """The generated penguins service on loopback, with the driver's facts."""
    root = tmp_path_factory.mktemp("raw-rows")
    repo = render_penguins(template_root, root, "fastapi")
    environment = shared_environment(repo)
    out = root / "out"
    log = root / "driver.log"
    with log.open("wb") as output:
        driver = subprocess.Popen(
            [
                str(python_in(environment)),
                "-c",
                DRIVER.format(package=PACKAGE),
                str(out),
                json.dumps(ROWS),
            ],
            cwd=repo,
            env=repo_process_environment(repo, environment, {"MLFLOW_DISABLE_TELEMETRY": "true"}),
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not (out / "server.json").is_file():
                if driver.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"no server:\n{log.read_text(errors='replace')[-4000:]}")
                time.sleep(0.5)
            yield json.loads((out / "server.json").read_text())
        finally:
            assert driver.stdin is not None
            driver.stdin.close()  # the driver leaves its server's block: uvicorn stops
            try:
                driver.wait(timeout=120)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait(timeout=30)


def post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_training_on_the_table_exports_what_it_fitted(served: dict[str, Any]) -> None:
    assert served["record"]["n_train"] == 258  # 75 % of the 344 penguins
    assert served["record"]["max_abs_export_diff"] < TOLERANCE
    in_process = np.asarray(served["in_process"])
    np.testing.assert_allclose(served["by_columns"], in_process, atol=1e-7)
    assert float(np.max(np.abs(np.asarray(served["exported"]) - in_process))) < TOLERANCE


@pytest.mark.slow
def test_predict_serves_raw_rows(served: dict[str, Any]) -> None:
    status, single = post(f"{served['url']}/predict", ROWS[0])
    assert status == 200, single
    assert abs(single["predictions"][0]["probability"] - served["in_process"][0]) < TOLERANCE
    status, batch = post(f"{served['url']}/predict", {"instances": ROWS})
    assert status == 200, batch
    probabilities = [answer["probability"] for answer in batch["predictions"]]
    assert float(np.max(np.abs(np.asarray(probabilities) - served["in_process"]))) < TOLERANCE


@pytest.mark.slow
def test_an_unknown_level_of_a_reject_category_is_a_422(served: dict[str, Any]) -> None:
    status, body = post(f"{served['url']}/predict", {**ROWS[1], "sex": "unknown"})
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "sex"]
    assert body["detail"][0]["msg"] == "sex must be one of ['female', 'male']"


@pytest.mark.slow
@pytest.mark.parametrize("binary_data", [False, True], ids=["json", "binary"])
def test_tritonclient_sends_string_categories_as_bytes(
    served: dict[str, Any], binary_data: bool
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(served["url"].removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready(PACKAGE)
    metadata = client.get_model_metadata(PACKAGE)
    inputs = []
    for spec in metadata["inputs"]:
        values = [row[spec["name"]] for row in ROWS]
        if spec["datatype"] == "BYTES":  # "" is a null
            array = np.array(["" if v is None else v for v in values], dtype=np.object_)
        else:  # NaN is a null
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        tensor = triton.InferInput(spec["name"], [len(ROWS)], spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary_data)
        inputs.append(tensor)
    assert [spec["datatype"] for spec in metadata["inputs"]] == ["BYTES", *["FP32"] * 4, "BYTES"]
    result = client.infer(PACKAGE, inputs)
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None
    assert float(np.max(np.abs(probabilities[:, 1] - served["in_process"]))) < TOLERANCE


@pytest.mark.slow
def test_drift_flags_a_shifted_copy_and_not_the_table(served: dict[str, Any]) -> None:
    assert served["drift"] is False
    assert "island" in served["drift_shifted"]
