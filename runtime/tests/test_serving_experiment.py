"""A/B routing in the service: sticky by user id, each variant on its own model."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_support import SCHEMA, model_file, write_model

from mlgen_runtime.ab.assignment import assign
from mlgen_runtime.serving import (
    CONTROL,
    TREATMENT,
    Experiment,
    create_app,
    experiment_from_env,
    file_version,
)

EXPERIMENT = "new-model"
USERS: list[str | int] = [f"user-{i}" for i in range(60)] + list(range(20))
ROW = SCHEMA.example_row()


@pytest.fixture()
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return write_model(tmp_path / "control.json"), write_model(
        tmp_path / "treatment.json", [0.01, 0.02, 0.03, 0.04]
    )


def served(client: TestClient, users: list[str | int]) -> dict[str | int, dict[str, Any]]:
    answers = {}
    for user in users:
        response = client.post("/predict", json={**ROW, "user_id": user})
        assert response.status_code == 200, response.text
        answers[user] = response.json()
    return answers


def test_routing_is_assign_and_each_variant_has_its_model(paths: tuple[Path, Path]) -> None:
    control, treatment = paths
    experiment = Experiment(EXPERIMENT, treatment, 0.5)
    app = create_app(schema=SCHEMA, model=model_file(control), experiment=experiment)
    with TestClient(app) as client:
        answers = served(client, USERS)
        by_header = client.post("/predict", json=ROW, headers={"X-User-Id": "user-1"})
        body_wins = client.post(
            "/predict", json={**ROW, "user_id": "user-1"}, headers={"X-User-Id": "user-2"}
        )
        anonymous = client.post("/predict", json=ROW)
        ready = client.get("/ready").json()
        metrics = client.get("/metrics").text
    assert {u: a["variant"] for u, a in answers.items()} == {
        u: assign(u, EXPERIMENT, experiment.split) for u in USERS
    }
    versions = {CONTROL: file_version(control), TREATMENT: file_version(treatment)}
    assert all(a["model_version"] == versions[a["variant"]] for a in answers.values())
    assert len({a["predictions"][0]["probability"] for a in answers.values()}) == 2
    assert by_header.json()["variant"] == experiment.variant_for("user-1")
    assert body_wins.json()["variant"] == experiment.variant_for("user-1")
    assert anonymous.json()["variant"] == CONTROL
    assert ready == {
        "status": "ready",
        "model_version": versions[CONTROL],
        "experiment": EXPERIMENT,
        "variants": versions,
    }
    counts = Counter(a["variant"] for a in answers.values())
    for variant in (CONTROL, TREATMENT):
        match = re.search(
            r'model_prediction_probability_count\{variant="' + variant + r'"\} (\S+)', metrics
        )
        assert match and float(match.group(1)) >= counts[variant]


def test_the_share_decides(paths: tuple[Path, Path]) -> None:
    control, treatment = paths
    for share, variants in ((0.0, {CONTROL}), (1.0, {TREATMENT})):
        experiment = Experiment(EXPERIMENT, treatment, share)
        app = create_app(schema=SCHEMA, model=model_file(control), experiment=experiment)
        with TestClient(app) as client:
            assert {a["variant"] for a in served(client, USERS[:20]).values()} == variants
    tenth = Experiment(EXPERIMENT, treatment, 0.1)
    shares = Counter(tenth.variant_for(f"u{i}") for i in range(20_000))
    assert shares[TREATMENT] / 20_000 == pytest.approx(0.1, abs=0.01)


def test_a_missing_treatment_is_not_ready(
    paths: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "none.json"
    experiment = Experiment(EXPERIMENT, missing, 0.5)
    control_user = next(u for u in USERS if experiment.variant_for(u) == CONTROL)
    treatment_user = next(u for u in USERS if experiment.variant_for(u) == TREATMENT)
    caplog.set_level(logging.INFO)
    app = create_app(schema=SCHEMA, model=model_file(paths[0]), experiment=experiment)
    with TestClient(app) as client:
        ready = client.get("/ready")
        control = client.post("/predict", json={**ROW, "user_id": control_user})
        treatment = client.post("/predict", json={**ROW, "user_id": treatment_user})
        metrics = client.get("/metrics").text
    assert ready.status_code == 503 and str(missing) in ready.json()["reason"]
    assert control.status_code == 200  # what can be served is; the pod gets no traffic
    assert treatment.status_code == 503
    assert "model_loaded 0.0" in metrics
    assert 'reason="not_ready",variant="treatment"' in metrics
    logged = [r.getMessage() for r in caplog.records if "NOT ready" in r.getMessage()]
    assert logged == [f"model treatment model NOT ready: model file not found: {missing}"]


def test_experiment_from_env(tmp_path: Path) -> None:
    assert experiment_from_env({}) is None
    experiment = experiment_from_env(
        {
            "AB_EXPERIMENT": "exp",
            "AB_TREATMENT_MODEL_PATH": str(tmp_path / "t.onnx"),
            "AB_TREATMENT_SHARE": "0.1",
            "AB_TREATMENT_MODEL_VERSION": "v2",
        }
    )
    assert experiment is not None
    assert experiment.split == {CONTROL: 0.9, TREATMENT: 0.1}
    assert experiment.treatment_version == "v2"
    default = experiment_from_env({"AB_EXPERIMENT": "e", "AB_TREATMENT_MODEL_PATH": "t"})
    assert default is not None and default.treatment_share == 0.5
    problems = [
        ({"AB_TREATMENT_MODEL_PATH": "t.onnx"}, "AB_EXPERIMENT is not"),
        ({"AB_EXPERIMENT": "exp"}, "needs AB_TREATMENT_MODEL_PATH"),
        (
            {"AB_EXPERIMENT": "e", "AB_TREATMENT_MODEL_PATH": "t", "AB_TREATMENT_SHARE": "a"},
            "number",
        ),
        (
            {"AB_EXPERIMENT": "e", "AB_TREATMENT_MODEL_PATH": "t", "AB_TREATMENT_SHARE": "1.5"},
            "0 and 1",
        ),
        (
            {"AB_EXPERIMENT": "e", "AB_TREATMENT_MODEL_PATH": "t", "AB_TREATMENT_SHARE": "0.00001"},
            "basis point",
        ),
        ({"AB_EXPERIMENT": " ", "AB_TREATMENT_MODEL_PATH": "t"}, "AB_EXPERIMENT is not"),
    ]
    for environ, message in problems:
        with pytest.raises(ValueError, match=message):
            experiment_from_env(environ)


@pytest.mark.parametrize(
    ("user_id", "headers", "status"),
    [
        (2**53 - 1, {}, 200),
        (-(2**53) + 1, {}, 200),
        (7.0, {}, 200),
        (True, {}, 422),
        ("", {}, 422),
        ("x" * 257, {}, 422),
        (1.5, {}, 422),
        (2**53, {}, 422),  # beyond what every JSON reader keeps exact: send it as a string
        ("\ud800", {}, 422),  # a lone surrogate cannot be hashed as UTF-8
        (None, {"X-User-Id": "x" * 257}, 422),
        (None, {"X-User-Id": ""}, 422),
    ],
)
def test_user_ids(
    paths: tuple[Path, Path], user_id: object, headers: dict[str, str], status: int
) -> None:
    experiment = Experiment(EXPERIMENT, paths[1], 0.5)
    body = ROW if user_id is None else {**ROW, "user_id": user_id}
    app = create_app(schema=SCHEMA, model=model_file(paths[0]), experiment=experiment)
    with TestClient(app) as client:
        # json.dumps escapes the lone surrogate ("\\ud800"), as a client's JSON would.
        sent = {"Content-Type": "application/json", **headers}
        response = client.post("/predict", content=json.dumps(body), headers=sent)
    assert response.status_code == status, response.text
    if status == 422:
        location = response.json()["detail"][0]["loc"]
        assert location[:2] in (["body", "user_id"], ["header", "X-User-Id"])
