"""Champion/challenger promotion on a real MLflow tracking store and registry: SQLite (the
local profile) and PostgreSQL (the production profile's store, a real server).

The registered model is a small real one: a logistic regression whose weights are a
JSON file, loaded by a ``load_exported`` function in a package written for the test,
exactly as a generated repository's ``modeling.load_exported`` is.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgen_runtime import registry

FEATURES = ("tenure", "charges", "calls")
WEIGHTS = [-0.05, 0.03, 0.6]
MODELING = """\
import json
from pathlib import Path

import numpy as np


def load_exported(path: Path):
    weights = np.asarray(json.loads(Path(path).read_text())["weights"], dtype=np.float64)

    def predict(matrix):
        if hasattr(matrix, "columns"):  # raw columns: "calls" as words, as a model with
            words = {"none": 0.0, "one": 1.0, "two": 2.0}  # preprocessing takes them
            matrix = matrix.assign(calls=[words[word] for word in matrix["calls"]])
            matrix = matrix.to_numpy(np.float64)
        return 1.0 / (1.0 + np.exp(-(matrix.astype(np.float64) @ weights)))

    return predict
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh tracking and registry store (SQLite file, or a new PostgreSQL database with
    its artifacts in ``tmp_path/mlartifacts``); its URI."""
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        uri = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("MLGEN_ARTIFACT_LOCATION", (tmp_path / "mlartifacts").as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    """An importable package ``toy_model`` with a ``modeling.load_exported``."""
    source = tmp_path / "src"
    (source / "toy_model").mkdir(parents=True)
    (source / "toy_model" / "__init__.py").write_text("", encoding="utf-8")
    (source / "toy_model" / "modeling.py").write_text(MODELING, encoding="utf-8")
    sys.path.insert(0, str(source))
    yield source / "toy_model"
    sys.path.remove(str(source))
    for name in [name for name in sys.modules if name.startswith("toy_model")]:
        del sys.modules[name]


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"weights": WEIGHTS}), encoding="utf-8")
    return path


def _register(
    store: str, package: Path, artifact: Path, value: float, **options: object
) -> registry.Registration:
    return registry.log_and_register(
        "toy",
        artifact,
        {"roc_auc": value, "rows": 100, "source": "test"},
        {"seed": 1},
        metric="roc_auc",
        loader="toy_model.modeling:load_exported",
        features=FEATURES,
        code_paths=[package],
        pip_requirements=["numpy", "pandas"],  # MLflow would infer them in a subprocess
        tracking_uri=store,
        **options,  # type: ignore[arg-type]
    )


def _aliases(store: str) -> dict[str, str]:
    client = registry.client(store)
    model = client.get_registered_model("toy")
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_better_versions_become_champion_others_challenger(
    store: str, package: Path, artifact: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # stages would warn: aliases only
        first = _register(store, package, artifact, 0.80)
    assert (first.version, first.alias, first.previous_champion) == ("1", "champion", None)
    assert first.promoted

    worse = _register(store, package, artifact, 0.79)
    assert (worse.alias, worse.previous_champion, worse.previous_metric) == (
        "challenger",
        "1",
        0.80,
    )
    tie = _register(store, package, artifact, 0.80)  # not strictly better: no promotion
    assert tie.alias == "challenger"
    assert registry.current_champion("toy", "roc_auc", registry.client(store)) == ("1", 0.80)

    better = _register(store, package, artifact, 0.85)
    assert better.promoted and better.version == "4"
    assert _aliases(store) == {"champion": "4", "challenger": "3", "previous-champion": "1"}
    versions = registry.client(store).search_model_versions("name='toy'")
    assert {version.current_stage for version in versions} == {"None"}


def test_lower_is_better_metrics(store: str, package: Path, artifact: Path) -> None:
    assert _register(store, package, artifact, 0.40, higher_is_better=False).promoted
    assert not _register(store, package, artifact, 0.50, higher_is_better=False).promoted
    assert _register(store, package, artifact, 0.30, higher_is_better=False).promoted
    assert _aliases(store)["champion"] == "3"


def test_run_holds_params_metrics_and_the_record(
    store: str, package: Path, artifact: Path, tmp_path: Path
) -> None:
    registration = _register(store, package, artifact, 0.9)
    run = registry.client(store).get_run(registration.run_id)
    assert run.data.params["seed"] == "1"
    assert run.data.metrics == {"roc_auc": 0.9, "rows": 100.0}  # numbers only
    assert (tmp_path / "mlartifacts").is_dir()  # beside the SQLite file, or configured


def test_champion_loads_and_predicts_like_the_exported_artifact(
    store: str, package: Path, artifact: Path
) -> None:
    _register(store, package, artifact, 0.9)
    champion = registry.load_champion("toy", store)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({name: rng.uniform(0, 5, 8).astype(np.float32) for name in FEATURES})
    shuffled = frame[list(reversed(FEATURES))]  # columns are picked by name
    expected = 1.0 / (1.0 + np.exp(-(frame.to_numpy(np.float64) @ np.asarray(WEIGHTS))))
    np.testing.assert_allclose(np.asarray(champion.predict(shuffled)), expected, rtol=1e-6)


def test_a_frame_with_string_columns_reaches_the_loader_as_is(
    store: str, package: Path, artifact: Path
) -> None:
    """A model exported with preprocessing takes raw columns (string categories): the
    wrapper hands such a frame over as it is, in the registered feature order."""
    _register(store, package, artifact, 0.9)
    champion = registry.load_champion("toy", store)
    frame = pd.DataFrame(
        {"calls": ["two", "none", "one"], "tenure": [3.0, 7.0, 12.0], "charges": [50.0, 9.5, 70.0]}
    )
    numbers = np.array([[3.0, 50.0, 2.0], [7.0, 9.5, 0.0], [12.0, 70.0, 1.0]])
    expected = 1.0 / (1.0 + np.exp(-(numbers @ np.asarray(WEIGHTS))))
    np.testing.assert_allclose(np.asarray(champion.predict(frame)), expected, rtol=1e-6)


def test_no_champion_yet(store: str) -> None:
    assert registry.current_champion("nothing", "roc_auc", registry.client(store)) is None


def test_fetch_latest_downloads_the_newest_version_with_its_record(
    store: str, package: Path, artifact: Path, tmp_path: Path
) -> None:
    profile = tmp_path / "reference_profile.json"
    profile.write_text("{}", encoding="utf-8")
    _register(store, package, artifact, 0.9)
    _register(store, package, artifact, 0.8, files=[profile])  # the challenger, newest
    out = tmp_path / "fetched"
    record = registry.fetch_latest("toy", out, registry.client(store))
    assert record["registry"]["version"] == "2" and record["registry"]["alias"] == "challenger"
    assert record["roc_auc"] == 0.8
    assert json.loads((out / "metrics.json").read_text()) == record
    assert (out / "model.json").read_bytes() == artifact.read_bytes()
    assert (out / "reference_profile.json").is_file()


def test_the_fetch_latest_command_and_the_registration_step(
    store: str, package: Path, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from functools import partial

    from mlgen_runtime import training

    def log_and_register(
        path: Path, record: dict[str, object], params: dict[str, object], tags: dict[str, str]
    ) -> registry.Registration:
        assert params == {"rows": 100, "export_format": "json"}
        return _register(store, package, path, 0.9, tags=tags)

    record = training.write_record(
        artifact,
        {
            "model_name": "toy",
            "roc_auc": 0.9,
            "export_format": "json",
            "training_cutoff": "2026-01-01T00:00:00+00:00",
        },
    )
    training.register(record, artifact.parent, log_and_register, rows=100)
    assert record["registry"]["alias"] == "champion"
    assert (
        json.loads((artifact.parent / "metrics.json").read_text())["registry"] == record["registry"]
    )
    run = registry.client(store).get_run(record["registry"]["run_id"])
    assert run.data.tags[registry.TRAINING_CUTOFF_TAG] == "2026-01-01T00:00:00+00:00"
    out = tmp_path / "fetched"
    main = partial(registry.main, model_name="toy", tracking_uri=lambda: store, prog="toy")
    assert main(["fetch-latest", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"fetched v1 (champion) to {out}"
    assert (out / "model.json").read_bytes() == artifact.read_bytes()
