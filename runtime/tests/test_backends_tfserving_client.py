"""mlgen_runtime.backends.tfserving_client: the REST bodies, answers and errors; against a
real HTTP server on loopback that answers as TF Serving does (the real TF Serving runs
in TF Serving repositories' suites where its binary is on PATH)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from http_support import JsonHandler, loopback_server
from raw_support import SCHEMA as RAW_SCHEMA
from serving_support import SCHEMA

from mlgen_runtime import process
from mlgen_runtime.backends.tfserving_client import (
    Prediction,
    TFServingClient,
    TFServingError,
    main,
    model_path,
    parse_predictions,
    predict_request,
)


def test_predict_request_is_tf_servings_row_format() -> None:
    rows = [SCHEMA.example_row(), {**SCHEMA.example_row(), "tenure_months": 3.0}]
    body = predict_request(rows, SCHEMA)
    assert body["signature_name"] == "serving_default"
    assert [list(instance) for instance in body["instances"]] == [list(SCHEMA.names)] * 2
    assert body["instances"][1]["tenure_months"] == 3.0
    json.dumps(body, allow_nan=False)


def test_predict_request_sends_raw_rows_with_nulls_as_tf_serving_decodes_them() -> None:
    """String levels as strings; a null as "" (a string category) or NaN (a number), since
    TF Serving decodes no JSON null; the signature imputes both."""
    rows = [
        RAW_SCHEMA.example_row(),
        {"island": "Atlantis", "sex": "female", "bill_length_mm": 41, "flipper_length_mm": 180,
         "tagged": False},
    ]  # fmt: skip
    instances = predict_request(rows, RAW_SCHEMA)["instances"]
    first, second = instances
    assert first["island"] == "Torgersen" and first["sex"] == ""
    assert math.isnan(first["bill_length_mm"]) and first["tagged"] == 1.0
    assert second == {
        "island": "Atlantis",  # unknown: other, mapped by the signature
        "sex": "female",
        "bill_length_mm": 41.0,
        "flipper_length_mm": 180.0,
        "tagged": 0.0,
    }
    assert "NaN" in json.dumps(instances)  # the literal TF Serving's REST API accepts


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sex": "unknown"}, "sex"),  # unknown: reject
        ({"flipper_length_mm": None}, "flipper_length_mm"),  # not nullable
    ],
)
def test_predict_request_refuses_raw_rows_the_schema_refuses(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        predict_request([{**RAW_SCHEMA.example_row(), **change}], RAW_SCHEMA)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**SCHEMA.example_row(), "autopay": 5.0}, "autopay must be between"),
        ({k: v for k, v in SCHEMA.example_row().items() if k != "autopay"}, "missing feature"),
        ({**SCHEMA.example_row(), "colour": 1.0}, "unknown feature"),
        ({**SCHEMA.example_row(), "tenure_months": float("nan")}, "finite"),
    ],
)
def test_predict_request_refuses_invalid_rows(row: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        predict_request([row], SCHEMA)
    with pytest.raises(ValueError, match="at least one row"):
        predict_request([], SCHEMA)


def test_model_paths() -> None:
    assert model_path("churn") == "/v1/models/churn"
    assert model_path("churn", version=3) == "/v1/models/churn/versions/3"


def test_parse_predictions() -> None:
    body = {"predictions": [{"probability": 0.9, "label": 1}, {"probability": 0.2, "label": 0}]}
    assert parse_predictions(body, 2) == [Prediction(0.9, 1), Prediction(0.2, 0)]
    for bad in (
        {"predictions": [{"probability": 0.9}]},
        {"error": "x"},
        {"predictions": [{"probability": 1.5, "label": 1}]},
    ):
        with pytest.raises(TFServingError):
            parse_predictions(bad, 1)
    with pytest.raises(TFServingError, match="1 predictions for 2"):
        parse_predictions({"predictions": [{"probability": 0.1, "label": 0}]}, 2)


def test_an_unreachable_server_is_a_client_error() -> None:
    client = TFServingClient(f"http://127.0.0.1:{process.free_port()}", "churn", SCHEMA, timeout=2)
    assert not client.is_ready()
    with pytest.raises(TFServingError, match="failed"):
        client.predict([SCHEMA.example_row()])


@pytest.fixture
def server() -> Iterator[str]:
    """An HTTP server answering ``:predict`` of ``churn`` as TF Serving does (a probability
    per instance, from its tenure) and TF Serving's ``{"error"}`` for another model."""

    class Predict(JsonHandler):
        def do_POST(self) -> None:
            if self.path != "/v1/models/churn:predict":
                return self.answer(404, {"error": "Servable not found for request"})
            rows: Any = self.body()["instances"]
            predictions = [{"probability": row["tenure_months"] / 120, "label": 0} for row in rows]
            return self.answer(200, {"predictions": predictions})

    with loopback_server(Predict) as url:
        yield url


def test_predictions_and_refusals_over_http(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = TFServingClient(server, "churn", SCHEMA)
    assert client.predict([SCHEMA.example_row()]) == [Prediction(7.0 / 120, 0)]
    with pytest.raises(TFServingError, match="HTTP 404: Servable not found") as refused:
        TFServingClient(server, "other", SCHEMA).predict([SCHEMA.example_row()])
    assert refused.value.status == 404
    assert main(["--url", server], prog="client", model_name="churn", schema=SCHEMA) == 0
    assert json.loads(capsys.readouterr().out) == [{"probability": 7.0 / 120, "label": 0}]
    assert main(["--url", server, "{}"], prog="client", model_name="churn", schema=SCHEMA) == 1
    assert capsys.readouterr().err.startswith("error: ")
