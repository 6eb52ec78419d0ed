"""mlgen_runtime.backends.torchserve_client against a real HTTP server on loopback that
answers as TorchServe and the schema handler do (the real TorchServe runs in TorchServe
repositories' suites, where Java and ``ts`` are installed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_support import JsonHandler, loopback_server

from mlgen_runtime import process
from mlgen_runtime.backends.torchserve_client import (
    Client,
    ClientError,
    Prediction,
    Response,
    read_key,
)

TOKEN = "s3cret"


@pytest.fixture
def server() -> Iterator[str]:
    """``/ping`` and ``/predictions/churn`` with a bearer token; 400 with ``problems`` for
    a row without ``tenure``."""

    class TorchServe(JsonHandler):
        def do_GET(self) -> None:
            self.answer(200, {"status": "Healthy"})

        def do_POST(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.answer(401, {"code": 401, "message": "Token Authorization failed"})
            body: Any = self.body()
            rows = body.get("instances", [body])
            if any("tenure" not in row for row in rows):
                problems = [{"feature": "tenure", "problem": "missing"}]
                return self.answer(400, {"code": 400, "message": "invalid", "problems": problems})
            predictions = [{"probability": row["tenure"] / 100, "label": 0} for row in rows]
            return self.answer(200, {"predictions": predictions, "model_version": "sha256-1"})

    with loopback_server(TorchServe) as url:
        yield url


def test_predictions_one_row_and_a_batch(server: str) -> None:
    client = Client(server, "churn", token=TOKEN)
    assert client.ping()
    assert client.predict({"tenure": 7}) == Response([Prediction(0.07, 0)], "sha256-1")
    batch = client.predict([{"tenure": 10}, {"tenure": 20}])
    assert [p.probability for p in batch.predictions] == [0.1, 0.2]


def test_refusals_are_client_errors_with_the_answer(server: str) -> None:
    with pytest.raises(ClientError) as invalid:
        Client(server, "churn", token=TOKEN).predict({"tenure_months": 7})
    assert invalid.value.status == 400 and invalid.value.body["problems"][0]["feature"] == "tenure"
    with pytest.raises(ClientError, match="401 Token Authorization failed"):
        Client(server, "churn").predict({"tenure": 7})
    unreachable = Client(f"http://{process.HOST}:{process.free_port()}", "churn", timeout=2)
    assert not unreachable.ping()
    with pytest.raises(ClientError) as down:
        unreachable.predict({"tenure": 7})
    assert down.value.status == 0


def test_read_key(tmp_path: Path) -> None:
    keys = tmp_path / "key_file.json"
    keys.write_text(json.dumps({"inference": {"key": "a"}, "management": {"key": "b"}}))
    assert read_key(keys) == "a" and read_key(keys, "management") == "b"
