"""mlgen_runtime.smoke against a real uvicorn server of the runtime's app (a toy model)."""

from __future__ import annotations

import os
import sys
import textwrap
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from serving_support import SCHEMA, expected, write_model

import mlgen_runtime
from mlgen_runtime import smoke
from mlgen_runtime.process import free_port
from mlgen_runtime.training import TrainingError

APP_MODULE = """
import os
from pathlib import Path

from serving_support import SCHEMA, model_file
from mlgen_runtime.serving import create_app

app = create_app(schema=SCHEMA, model=model_file(Path(os.environ["MODEL_PATH"])))
"""


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    """A source folder with ``toy_app.py`` (the runtime's app on a toy model)."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "toy_app.py").write_text(textwrap.dedent(APP_MODULE))
    return root


def serve(app_root: Path, model: Path, timeout: float = 60) -> AbstractContextManager[str]:
    # toy_app, serving_support and mlgen_runtime itself (which may run from its source tree)
    path = [app_root, Path(__file__).parent, Path(mlgen_runtime.__file__).parents[1]]
    env = {"MODEL_PATH": str(model), "PYTHONPATH": os.pathsep.join(map(str, path))}
    return smoke.uvicorn_server("toy_app:app", env=env, timeout=timeout)


def test_served_probability_agrees_with_the_model(
    app_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = SCHEMA.example_row()
    with serve(app_root, write_model(tmp_path / "model.json")) as base_url:
        answer = smoke.predict(f"{base_url}/predict", row)
        status, problem = smoke.post_json(f"{base_url}/predict", {"tenure_months": "x"})
    served = smoke.served_probability(answer)
    assert smoke.compare(served, float(expected([row])[0]), 1e-6) < 1e-6
    assert status == 422 and problem["detail"]
    output = capsys.readouterr().out
    assert "request  POST /predict {" in output and "response 200 {" in output
    assert output.splitlines()[-1].startswith("ok       served ")
    with pytest.raises(smoke.SmokeError, match="differs from the in-process model's"):
        smoke.compare(served, served + 1e-3, 1e-4)


def test_a_server_that_is_not_ready_fails_at_once_with_its_output(
    app_root: Path, tmp_path: Path
) -> None:
    with (
        pytest.raises(smoke.SmokeError, match=r"not ready \(/ready answered 503\)") as failure,
        serve(app_root, tmp_path / "missing.json", timeout=120),
    ):
        pass
    assert "NOT ready" in str(failure.value)  # the server's own log line


def test_a_server_that_exits_is_a_smoke_error() -> None:
    port = free_port()
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    with (
        pytest.raises(smoke.SmokeError, match="exited with status 3"),
        smoke.running_service(command, f"http://127.0.0.1:{port}"),
    ):
        pass


@pytest.mark.parametrize(
    "answer",
    [{"predictions": []}, {"predictions": [{"probability": 0.5}], "model_version": ""}, "text"],
)
def test_an_unexpected_answer_is_a_smoke_error(answer: object) -> None:
    with pytest.raises(smoke.SmokeError, match="unexpected response"):
        smoke.served_probability(answer)


def test_main_parses_the_options_and_reports_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []

    def run(out: Path, rows: int, timeout: float) -> None:
        calls.append((out, rows, timeout))
        if rows == 300:
            raise TrainingError("quality gate failed")

    options = {"prog": "smoke", "out": tmp_path, "rows": 1_000, "min_rows": 200}
    assert smoke.main(run, [], **options) == 0
    assert calls == [(tmp_path, 1_000, smoke.READY_TIMEOUT_SECONDS)]
    assert smoke.main(run, ["--rows", "300", "--timeout", "5"], **options) == 1
    assert "smoke test FAILED: quality gate failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        smoke.main(run, ["--rows", "10"], **options)
    assert usage.value.code == 2


def test_main_passes_a_backends_own_options(tmp_path: Path) -> None:
    calls = []

    def run(out: Path, rows: int, timeout: float, server: str) -> None:
        calls.append(server)

    options = {"prog": "smoke", "out": tmp_path, "rows": 1_000, "min_rows": 200}
    for argv, mode in (
        ([], "auto"),
        (["--no-server"], "never"),
        (["--require-server"], "require"),
    ):
        assert smoke.main(run, argv, options=smoke.server_modes, **options) == 0
        assert calls.pop() == mode
    with pytest.raises(SystemExit) as usage:  # the two modes exclude each other
        smoke.main(run, ["--no-server", "--require-server"], options=smoke.server_modes, **options)
    assert usage.value.code == 2
