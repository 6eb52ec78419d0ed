"""A real Prometheus server on loopback, for tests (standard library only).

Tests of alert rules, canary analyses and the canary gate are only as good as the
Prometheus that answers them. :func:`running_prometheus` starts the ``prometheus`` binary
(Debian's package ``prometheus``) with a configuration you give, in a folder of its own,
waits until it is ready and always stops it::

    config = '''
    global: {scrape_interval: 1s, evaluation_interval: 1s}
    rule_files: [rules.yaml]
    scrape_configs:
      - job_name: service
        static_configs: [{targets: ["127.0.0.1:8080"], labels: {app: churn}}]
    '''
    with running_prometheus(tmp_path, config) as url:
        values = query_vector(url, 'sum(rate(model_requests_total[5m]))')

Files the configuration names (rule files) are relative to ``root``. A TSDB written
beforehand (``promtool tsdb create-blocks-from openmetrics``) can be served by pointing
``storage`` at it.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlgen_runtime.process import HOST, free_port, read_text, running

PROMETHEUS_HINT = "apt-get install prometheus"


@contextmanager
def running_prometheus(
    root: Path, config: str, *, storage: str = "data", timeout: float = 60.0
) -> Iterator[str]:
    """Run Prometheus with ``config`` (YAML text) in ``root``; yield its base URL.

    Raises:
        FileNotFoundError: the ``prometheus`` binary is not installed.
        mlgen_runtime.process.ServerError: it exited or was not ready in ``timeout`` s.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError(f"prometheus is not installed ({PROMETHEUS_HINT})")
    root.mkdir(parents=True, exist_ok=True)
    (root / "prometheus.yml").write_text(config, encoding="utf-8")
    port = free_port()
    command = [
        binary,
        "--config.file=prometheus.yml",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address={HOST}:{port}",
    ]
    url = f"http://{HOST}:{port}"
    with running(command, f"{url}/-/ready", timeout=timeout, cwd=root):
        yield url


def api(url: str, path: str, **parameters: str) -> Any:
    """The ``data`` of a successful answer of Prometheus's HTTP API at ``path``.

    Raises:
        RuntimeError: Prometheus answered with an error.
    """
    query = f"?{urllib.parse.urlencode(parameters)}" if parameters else ""
    try:
        body = json.loads(read_text(f"{url.rstrip('/')}{path}{query}"))
    except urllib.error.HTTPError as error:  # a refused query: 400 with a JSON error
        body = json.loads(error.read().decode("utf-8") or "{}")
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {path} {parameters}: {body.get('error')}")
    return body["data"]


def query_vector(url: str, promql: str) -> list[float]:
    """The sample values of an instant query, as Argo Rollouts' Prometheus provider
    hands them to a ``successCondition`` as ``result`` (a scalar becomes one value)."""
    data = api(url, "/api/v1/query", query=promql)
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    return [float(sample["value"][1]) for sample in data["result"]]
