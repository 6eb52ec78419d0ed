"""``mlgen check`` of repositories that use the rayserve backend.

``rayserve-config`` reads ``serve_config.yaml`` with Ray Serve's own schema
(``ray.serve.schema.ServeDeploySchema``, in the repository's environment, where
``ray[serve]`` is installed) and checks it against the repository: the HTTP proxy
listens on the container port on every address (the pod IP), the one application's
route is ``/`` and its ``import_path`` is this package's deployment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlgen
from mlgen.environments import repo_environment, run_in_repo

CONFIG = "serve_config.yaml"

_PROBE = """
import json, sys, yaml
from ray.serve.schema import ServeDeploySchema
try:
    config = ServeDeploySchema.model_validate(yaml.safe_load(open(sys.argv[1])))
except Exception as error:
    print(json.dumps({"error": " ".join(str(error).split())[:500]}))
    raise SystemExit(0)
print(json.dumps({
    "host": config.http_options.host,
    "port": config.http_options.port,
    "applications": [[a.route_prefix, a.import_path] for a in config.applications],
}))
"""


def serve_config(repo: Path, answers: Mapping[str, Any]) -> mlgen.CheckResult:
    """The check's ``run``: ``answers`` are the repository's recorded answers."""
    from mlgen_rayserve import BACKEND

    if not (repo / CONFIG).is_file():
        return mlgen.CheckResult(False, f"{CONFIG} is missing")
    environment = repo_environment(repo)
    result = run_in_repo(repo, environment, ["python", "-c", _PROBE, CONFIG], timeout=300)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        return mlgen.CheckResult(False, f"could not read {CONFIG} with Ray: {' '.join(tail)}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    if "error" in found:
        return mlgen.CheckResult(False, f"{CONFIG}: {found['error']}")
    problems = []
    port = BACKEND.container.port("http").container_port
    if found["port"] != port:
        problems.append(f"http_options.port is {found['port']}, the container port is {port}")
    if found["host"] not in ("0.0.0.0", "::"):
        problems.append(f"http_options.host is {found['host']}: the pod IP is not reached")
    expected = f"{answers['package_name']}.serving.app:deployment"
    if found["applications"] != [["/", expected]]:
        problems.append(f"applications are {found['applications']}, expected [['/', {expected!r}]]")
    if problems:
        return mlgen.CheckResult(False, "; ".join(problems))
    return mlgen.CheckResult(True, f"{CONFIG}: {expected} on 0.0.0.0:{port}, route /")
