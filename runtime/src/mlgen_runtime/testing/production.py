"""The production profile end to end, as tests a repository runs on its own package.

MLflow and Feast's registry on PostgreSQL, online features in Redis, against real
servers (the ``postgres`` and ``redis`` fixtures of :mod:`mlgen_runtime.testing.fixtures`,
or the repository's own fixtures of those names). A repository's
``tests/test_production.py`` subclasses :class:`ProductionSuite`::

    import pytest
    from mlgen_runtime.testing.production import ProductionSuite

    import churn
    from churn.serving.app import create_app  # a backend with the runtime's app

    pytestmark = [pytest.mark.integration, pytest.mark.slow]


    class TestProduction(ProductionSuite):
        package = churn
        create_app = staticmethod(create_app)

The suite imports the package's ``train``, ``registry``, ``feature_store``, ``new_data``,
``modeling`` and ``features`` modules (the layout every generated repository has) and:

* trains and registers twice on the same data (the first becomes ``champion``, the tie
  ``challenger``); ``registry fetch-latest`` downloads the challenger;
* applies and materializes Feast into Redis, reads the online features back, predicts
  them with ``models:/<name>@champion`` and (with :attr:`ProductionSuite.create_app`)
  through ``POST /predict`` of the service;
* counts new source rows since the champion with the new-data trigger;
* breaks each store in turn (down, wrong kind, wrong credentials): training fails in
  one line naming the setting and registers nothing.

Needs the runtime's ``production``, ``registry``, ``feast`` and ``test`` extras.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pytest

from mlgen_runtime import servers
from mlgen_runtime.process import free_port

__all__ = ["BROKEN_STORES", "ProductionSuite"]

BROKEN_STORES = [
    ("MLFLOW_TRACKING_URI", "down", "no PostgreSQL answers at 127.0.0.1:"),
    ("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db", "must name PostgreSQL"),
    ("FEAST_REGISTRY_URL", "bad-password", "refused the credentials of user 'mlgen'"),
    ("FEAST_REDIS_CONNECTION_STRING", "bad-password", "refused the password"),
]
"""``(setting, broken value, expected message)``: each store broken in turn."""


def broken_value(
    setting: str, broken: str, postgres: servers.Postgres, redis: servers.Redis
) -> str:
    """The value that breaks ``setting`` as ``broken`` says: ``"down"`` (a free port where
    no PostgreSQL answers), ``"bad-password"`` (the session's server, a wrong password) or
    ``broken`` itself (a value of the wrong kind)."""
    if broken == "down":
        return f"postgresql+psycopg://mlgen:x@127.0.0.1:{free_port()}/mlflow"
    if broken != "bad-password":
        return broken
    if setting.startswith("FEAST_REDIS"):
        return f"{redis.host}:{redis.port},password=wrong"
    return servers.Postgres(postgres.host, postgres.port, postgres.user, "wrong").url("feast")


class ProductionSuite:
    """The production profile's tests; subclass it as ``Test...`` and set :attr:`package`."""

    package: ClassVar[ModuleType]
    """The repository's package (``import churn``)."""
    create_app: ClassVar[Callable[..., Any] | None] = None
    """``create_app(model_path)`` of the runtime's serving app, when the backend has it."""
    rows: ClassVar[int] = 2_000
    """Source rows written and trained on."""
    seed: ClassVar[int] = 13

    def module(self, name: str) -> Any:
        """The package's module ``name`` (``"train"``, ``"registry"``, ...)."""
        return importlib.import_module(f"{self.package.__name__}.{name}")

    @property
    def model_name(self) -> str:
        """The registered model's name (the package's ``MODEL_NAME``)."""
        return str(self.package.MODEL_NAME)

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns (``features.FEATURE_NAMES``)."""
        return list(self.module("features").FEATURE_NAMES)

    def train(self, out_dir: Path, *options: str) -> int:
        """``python -m <package>.train --out out_dir --rows rows ...``; the exit status."""
        return int(
            self.module("train").main(["--out", str(out_dir), "--rows", str(self.rows), *options])
        )

    def aliases(self) -> dict[str, str]:
        """The registered model's aliases and their versions."""
        from mlgen_runtime import registry

        client = registry.client(self.module("registry").tracking_uri())
        model = client.get_registered_model(self.model_name)
        return {alias: str(version) for alias, version in model.aliases.items()}

    @pytest.fixture(scope="class")
    def production(
        self,
        postgres: servers.Postgres,
        redis: servers.Redis,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[dict[str, str]]:
        """The production profile's variables on the session's servers (fresh databases),
        with the class's source data written first (production never rewrites it)."""
        self.module("feature_store").write_source_data(self.rows, self.seed)
        environ = {
            "MLGEN_PROFILE": "production",
            "MLFLOW_TRACKING_URI": postgres.url(postgres.create_database("mlflow")),
            "MLGEN_ARTIFACT_LOCATION": tmp_path_factory.mktemp("mlartifacts").as_uri(),
            "FEAST_REGISTRY_URL": postgres.url(postgres.create_database("feast")),
            "FEAST_REDIS_CONNECTION_STRING": redis.connection_string,
        }
        with pytest.MonkeyPatch.context() as patch:
            for key, value in environ.items():
                patch.setenv(key, value)
            yield environ

    @pytest.fixture(scope="class")
    def registered(
        self, production: dict[str, str], tmp_path_factory: pytest.TempPathFactory
    ) -> list[Path]:
        """Two trainings on the same data: the first becomes champion, the tie challenger."""
        folders = [tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")]
        for folder in folders:
            assert self.train(folder, "--seed", str(self.seed)) == 0
        return folders

    def test_train_and_register_in_mlflow_on_postgres(
        self, registered: list[Path], tmp_path: Path
    ) -> None:
        registry = self.module("registry")
        assert registry.tracking_uri().startswith("postgresql+psycopg://")
        assert self.aliases() == {"champion": "1", "challenger": "2"}
        record = json.loads((registered[0] / "metrics.json").read_text())
        assert record["registry"]["alias"] == "champion" and record["training_cutoff"]
        # what the retraining workflow builds from after the in-cluster Job trained
        assert registry.main(["fetch-latest", "--out", str(tmp_path)]) == 0
        fetched = json.loads((tmp_path / "metrics.json").read_text())
        assert (
            fetched["registry"]["version"] == "2" and fetched["registry"]["alias"] == "challenger"
        )
        artifact = fetched["artifact"]
        assert (tmp_path / artifact).read_bytes() == (registered[1] / artifact).read_bytes()
        assert (tmp_path / "reference_profile.json").is_file()

    def test_materialize_into_redis_and_predict_from_online_features(
        self, registered: list[Path]
    ) -> None:
        import pandas as pd

        from mlgen_runtime.export.preprocessing import raw_rows

        feature_store, names = self.module("feature_store"), self.feature_names
        schema = self.module("features").SCHEMA
        assert feature_store.main(["apply"]) == 0
        assert feature_store.main(["materialize"]) == 0
        store = feature_store.store()
        assert type(store._get_provider().online_store).__name__ == "RedisOnlineStore"
        latest = _latest_rows(store, feature_store.FEATURE_VIEW, feature_store.ENTITY_KEY)
        keys = latest.index[:3].tolist()  # what Redis serves: each entity's newest row
        online = pd.DataFrame(feature_store.online_features(keys))[names]
        expected = latest.loc[keys, names].reset_index(drop=True)
        rows = schema.columns_to_matrix(online)  # the model's codes, NaN for nulls
        np.testing.assert_allclose(rows, schema.columns_to_matrix(expected), rtol=1e-6)

        champion = self.module("registry").load_champion()  # models:/<name>@champion
        record = json.loads((registered[0] / "metrics.json").read_text())
        artifact = registered[0] / record["artifact"]
        exported = self.module("modeling").load_exported(artifact)(rows)
        served = champion.predict(pd.DataFrame(rows, columns=names))
        np.testing.assert_allclose(np.asarray(served), exported, atol=1e-6)
        if type(self).create_app is None:
            return
        from fastapi.testclient import TestClient

        instances = raw_rows(schema.features, rows)  # what a client sends: strings, None
        with TestClient(type(self).create_app(artifact)) as client:  # type: ignore[misc]
            response = client.post("/predict", json={"instances": instances})
        assert response.status_code == 200, response.text
        probabilities = [answer["probability"] for answer in response.json()["predictions"]]
        np.testing.assert_allclose(probabilities, exported, atol=1e-4)

    def test_the_new_data_trigger_counts_rows_since_the_champion(
        self, registered: list[Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        import pandas as pd
        from feast import FileSource

        from mlgen_runtime import feature_store as feast_helpers

        feature_store, new_data = self.module("feature_store"), self.module("new_data")
        assert new_data.main(["--min-rows", "1"]) == 0  # the champion saw every row
        assert '"new_rows": 0' in capsys.readouterr().out
        store = feature_store.store()
        view = feature_store.FEATURE_VIEW
        path = Path(
            FileSource.get_uri_for_file_path(
                store.repo_path, store.get_feature_view(view).batch_source.path
            )
        )
        column = feast_helpers.ingestion_column(store, view)
        original = path.read_bytes()
        source = feast_helpers.source_frame(store, view)
        newer = source.head(5).assign(**{column: source[column].max() + pd.Timedelta(hours=1)})
        pd.concat([source, newer], ignore_index=True).to_parquet(path, index=False)
        try:
            assert new_data.main(["--min-rows", "5"]) == 1  # retraining is due
            assert '"new_rows": 5' in capsys.readouterr().out
        finally:
            path.write_bytes(original)  # as it was, for the tests after this one

    @pytest.mark.parametrize(("setting", "broken", "expected"), BROKEN_STORES)
    def test_a_broken_store_fails_in_one_line_and_registers_nothing(
        self,
        registered: list[Path],
        postgres: servers.Postgres,
        redis: servers.Redis,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        setting: str,
        broken: str,
        expected: str,
    ) -> None:
        if broken == "bad-password" and not (redis if "REDIS" in setting else postgres).password:
            pytest.skip("this server accepts any password (CI's service containers)")
        good = self.aliases()
        monkeypatch.setenv(setting, broken_value(setting, broken, postgres, redis))
        assert self.train(tmp_path) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"error: {setting}") and expected in error and "\n" not in error
        assert not (tmp_path / "metrics.json").exists()
        monkeypatch.undo()
        assert self.aliases() == good  # nothing was registered


def _latest_rows(store: Any, view: str, key: str) -> Any:
    """Each entity's newest source row (by event time, then ingestion time), indexed by
    its key: the values materialization loads into the online store."""
    from mlgen_runtime import feature_store as feast_helpers

    source = store.get_feature_view(view).batch_source
    order = [c for c in (source.timestamp_field, source.created_timestamp_column) if c]
    frame = feast_helpers.source_frame(store, view)
    return frame.sort_values(order).groupby(key).tail(1).set_index(key)
