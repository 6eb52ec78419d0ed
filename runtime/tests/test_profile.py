"""mlgen_runtime.profile without servers: the profile's name, its settings from the
environment or a mounted Secret's files, and a setting that is missing or has the wrong
form (the connection failures are tested against real servers in integration/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgen_runtime import profile

URL = "postgresql+psycopg://u:p@db:5432/mlflow"
PRODUCTION = {
    "MLGEN_PROFILE": "production",
    "MLFLOW_TRACKING_URI": URL,
    "MLGEN_ARTIFACT_LOCATION": "s3://bucket/mlflow",
    "FEAST_REGISTRY_URL": URL,
    "FEAST_REDIS_CONNECTION_STRING": "cache:6379,password=x",
}


def test_settings_come_from_the_environment() -> None:
    found = profile.settings(PRODUCTION)
    assert found == profile.Settings(URL, "s3://bucket/mlflow", URL, "cache:6379,password=x")
    server = {
        **PRODUCTION,
        "MLFLOW_TRACKING_URI": "https://mlflow.example",
        "MLGEN_ARTIFACT_LOCATION": "",
    }
    assert profile.settings(server).artifact_location is None  # the server decides


def test_a_mounted_secret_fills_what_the_environment_lacks(tmp_path: Path) -> None:
    (tmp_path / "FEAST_REGISTRY_URL").write_text(URL + "\n", encoding="utf-8")
    (tmp_path / "MLFLOW_TRACKING_URI").write_text("ignored", encoding="utf-8")
    (tmp_path / "UNRELATED").write_text("never read", encoding="utf-8")
    environ = {"MLGEN_SECRETS_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": "https://set"}
    assert profile.secret_files(environ) == ["FEAST_REGISTRY_URL"]
    assert environ["FEAST_REGISTRY_URL"] == URL and environ["MLFLOW_TRACKING_URI"] == "https://set"
    assert "UNRELATED" not in environ


def test_the_profile_picks_the_feast_configuration(tmp_path: Path) -> None:
    assert profile.feature_store_yaml(tmp_path, {}) == tmp_path / "feature_store.yaml"
    chosen = profile.feature_store_yaml(tmp_path, {"MLGEN_PROFILE": "production"})
    assert chosen == tmp_path / "feature_store.production.yaml"


@pytest.mark.parametrize(
    ("change", "start"),
    [
        ({"MLGEN_PROFILE": "staging"}, "MLGEN_PROFILE='staging' is not a profile"),
        ({"MLFLOW_TRACKING_URI": ""}, "MLFLOW_TRACKING_URI is not set"),
        ({"MLFLOW_TRACKING_URI": "/var/mlruns"}, "MLFLOW_TRACKING_URI must name PostgreSQL"),
        ({"FEAST_REGISTRY_URL": " "}, "FEAST_REGISTRY_URL is not set"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(change: dict[str, str], start: str) -> None:
    with pytest.raises(profile.ProfileError) as raised:
        profile.check(dict(PRODUCTION, **change))  # fails before connecting to anything
    assert str(raised.value).startswith(start) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cache:6379", {"host": "cache", "port": 6379}),
        (
            "cache:6380,password=pw,ssl=true,db=2",
            {"host": "cache", "port": 6380, "password": "pw", "ssl": True, "db": 2},
        ),
    ],
)
def test_feast_redis_connection_strings(text: str, expected: dict[str, object]) -> None:
    assert profile.parse_redis(text) == expected
