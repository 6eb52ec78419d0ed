"""The pieces of every backend's end-to-end smoke test (standard library only).

A repository's ``serving/smoke.py`` trains and exports its model, serves it, sends one
example and checks that the served probability equals the in-process model's. What is
its own is the model and the server's command; the rest is here:

* :func:`running_service`: run any HTTP server command until a ``with`` block ends,
  waiting for its readiness URL (a 503 there is final) and always stopping it;
  :func:`uvicorn_server` does it for an ASGI app (``package.serving.app:app``);
* :func:`post_json` / :func:`predict`: a JSON ``POST`` over loopback, never via a proxy;
* :func:`served_probability` and :func:`compare`: read and check the answer;
  :func:`v2_probability`: the same example through the Open Inference Protocol;
* :func:`main`: the command line (``--out``, ``--rows``, ``--timeout``, a backend's own
  options such as :func:`server_modes`) around a repository's
  ``smoke(out_dir, rows, timeout)``; exit status 0, or 1 with the reason.

Usage, in a repository's ``serving/smoke.py``::

    def smoke(out_dir: Path, rows: int, timeout: float) -> None:
        model, record = fit_and_export(out_dir, rows)
        row = example_row()
        expected = float(modeling.predict_proba(model, to_matrix([row]))[0])
        env = {"MODEL_PATH": str(out_dir / record["artifact"])}
        with uvicorn_server("my_model.serving.app:app", env=env, timeout=timeout) as url:
            answer = predict(f"{url}/predict", row)
        compare(served_probability(answer), expected, EXPORT_TOLERANCE)
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgen_runtime.process import (
    HOST,
    ServerError,
    free_port,
    http_status,
    running,
    source_environment,
)
from mlgen_runtime.training import TrainingError

if TYPE_CHECKING:
    from mlgen_runtime.schema import FeatureSchema

__all__ = [
    "SmokeError",
    "compare",
    "main",
    "post_json",
    "predict",
    "running_service",
    "served_probability",
    "uvicorn_command",
    "uvicorn_server",
    "v2_probability",
]

READY_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


class SmokeError(RuntimeError):
    """The service did not start, answer, or agree with the in-process model."""


def post_json(url: str, payload: Any, timeout: float = REQUEST_TIMEOUT_SECONDS) -> tuple[int, Any]:
    """POST ``payload`` as JSON to ``url``; return the status and the decoded body.

    An error status is returned, not raised; a body that is not JSON is returned as text.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        try:
            return int(error.code), json.loads(body)
        except json.JSONDecodeError:
            return int(error.code), body


def predict(url: str, payload: Any, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Any:
    """POST ``payload`` to ``url``, print the request and the answer, return its body.

    Raises:
        SmokeError: the answer's status is not 200.
    """
    status, body = post_json(url, payload, timeout)
    print(f"request  POST {urllib.parse.urlsplit(url).path} {json.dumps(payload)}")
    print(f"response {status} {json.dumps(body)}")
    if status != 200:
        raise SmokeError(f"{url} answered {status}")
    return body


def served_probability(response: Any) -> float:
    """The single probability of a ``{"predictions": [{"probability": p}], "model_version"}``
    answer; :class:`SmokeError` when it has another shape or no model version."""
    try:
        (prediction,) = response["predictions"]
        probability = float(prediction["probability"])
        if not response["model_version"]:
            raise ValueError("empty model_version")
    except (KeyError, TypeError, ValueError) as error:
        raise SmokeError(f"unexpected response {response!r}: {error}") from None
    return probability


def v2_probability(
    base_url: str,
    model_name: str,
    row: Mapping[str, float],
    schema: FeatureSchema,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> float:
    """The positive-class probability of ``row`` through the Open Inference Protocol
    (``POST /v2/models/<name>/infer``, :mod:`mlgen_runtime.inference_client`); prints the
    request and the answer.

    Raises:
        SmokeError: the server refused the request or did not answer.
    """
    from mlgen_runtime.inference_client import ClientError, InferenceClient

    client = InferenceClient(base_url, model_name, timeout=timeout)
    print(f"request  POST /v2/models/{model_name}/infer features={json.dumps(dict(row))}")
    try:
        result = client.infer_rows([row], schema)
    except ClientError as error:
        raise SmokeError(f"v2 infer failed: {error}") from None
    probability = float(result.probabilities[0])
    label = None if result.labels is None else int(result.labels[0])
    print(
        f"response probability={probability:.6f} label={label} model_version={result.model_version}"
    )
    return probability


def compare(served: float, expected: float, tolerance: float, what: str = "served") -> float:
    """Print the agreement of ``served`` with ``expected`` and return the |difference|.

    Raises:
        SmokeError: the difference is above ``tolerance`` (or NaN).
    """
    difference = abs(served - expected)
    if not difference <= tolerance:
        raise SmokeError(
            f"{what} probability {served:.6f} differs from the in-process model's "
            f"{expected:.6f} by {difference:.1e} (tolerance {tolerance:.0e})"
        )
    print(f"ok       {what} {served:.6f} == in-process {expected:.6f} (|diff| {difference:.1e})")
    return difference


@contextmanager
def running_service(
    command: Sequence[str],
    base_url: str,
    *,
    ready_path: str = "/ready",
    env: Mapping[str, str] | None = None,
    timeout: float = READY_TIMEOUT_SECONDS,
    cwd: str | Path | None = None,
) -> Iterator[str]:
    """Run ``command`` until the block ends; yield ``base_url`` once ``ready_path`` answers 200.

    A 503 from ``ready_path`` is final (the service loads its model before it listens):
    waiting stops at once. The server always stops, children included
    (:func:`mlgen_runtime.process.running`).

    Raises:
        SmokeError: the server exited, answered 503, or was not ready within ``timeout``;
            the message ends with the server's last output lines.
    """

    def ready() -> bool:
        status = http_status(f"{base_url}{ready_path}")
        if status == 503:
            raise ServerError(f"the server is not ready ({ready_path} answered 503)")
        return status == 200

    try:
        with running(command, ready, timeout=timeout, env=env, cwd=cwd):
            yield base_url
    except ServerError as error:
        raise SmokeError(str(error)) from None


def uvicorn_command(app: str, port: int, host: str = HOST, log_level: str = "warning") -> list[str]:
    """``python -m uvicorn APP --host HOST --port PORT --log-level LEVEL`` for this Python."""
    command = [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    return [*command, "--log-level", log_level]


@contextmanager
def uvicorn_server(
    app: str,
    *,
    env: Mapping[str, str] | None = None,
    source_root: Path | None = None,
    port: int | None = None,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> Iterator[str]:
    """Serve the ASGI ``app`` (``"package.module:attribute"``) with uvicorn; yield its base URL.

    ``env`` adds to this process's environment (``MODEL_PATH``, ``AB_*``...);
    ``source_root`` goes first on ``PYTHONPATH``, so the app imports without being
    installed. See :func:`running_service` for readiness and errors.
    """
    port = port or free_port()
    environment = source_environment(source_root, env)
    base_url = f"http://{HOST}:{port}"
    with running_service(
        uvicorn_command(app, port), base_url, env=environment, timeout=timeout
    ) as url:
        yield url


def main(
    smoke: Callable[..., object],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    out: Path,
    rows: int,
    min_rows: int,
    timeout: float = READY_TIMEOUT_SECONDS,
    description: str | None = None,
    errors: tuple[type[BaseException], ...] = (),
    options: Callable[[argparse.ArgumentParser], object] | None = None,
) -> int:
    """The smoke command: parse ``--out``, ``--rows`` and ``--timeout``, run ``smoke``.

    ``out``, ``rows`` and ``timeout`` are the defaults; fewer than ``min_rows`` rows is a
    usage error (exit 2). ``options(parser)`` may add a backend's own options (for example
    :func:`server_modes`); their values reach ``smoke`` as keyword arguments after
    ``smoke(out_dir, rows, timeout)``. Returns 0, or 1 after printing
    ``smoke test FAILED: <reason>`` when ``smoke`` raised :class:`SmokeError`,
    :class:`~mlgen_runtime.training.TrainingError`,
    :class:`~mlgen_runtime.process.ServerError` or one of ``errors``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add = parser.add_argument
    add("--out", type=Path, default=out, help="output folder (default: %(default)s)")
    add("--rows", type=int, default=rows, help="rows of training data (default: %(default)s)")
    add("--timeout", type=float, default=timeout, help="seconds to wait for the server")
    if options is not None:
        options(parser)
    args = vars(parser.parse_args(argv))
    out_dir, rows_given, wait = args.pop("out"), args.pop("rows"), args.pop("timeout")
    if rows_given < min_rows:
        parser.error(f"--rows must be at least {min_rows}")
    caught: tuple[type[BaseException], ...] = (SmokeError, TrainingError, ServerError, *errors)
    try:
        smoke(out_dir, rows_given, wait, **args)
    except caught as error:
        print(f"smoke test FAILED: {error}", file=sys.stderr)
        return 1
    return 0


def server_modes(parser: argparse.ArgumentParser, server: str = "a server") -> None:
    """Add ``--require-server`` and ``--no-server`` to a smoke command (:func:`main`'s
    ``options``), for a backend whose server may not run everywhere: ``smoke`` gets
    ``server="auto"`` (serve when one can run, else fall back), ``"require"`` (fail when
    none can run) or ``"never"`` (always fall back). ``server`` names it in the help."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--require-server",
        dest="server",
        action="store_const",
        const="require",
        help=f"fail when {server} cannot run here",
    )
    mode.add_argument(
        "--no-server",
        dest="server",
        action="store_const",
        const="never",
        help="do not start a server; check the export in process instead",
    )
    parser.set_defaults(server="auto")
