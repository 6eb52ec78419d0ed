"""``mlgen check`` for the Triton backend: the model configuration, checked by Triton's schema.

``triton-config`` runs the generated repository's own validator
(``python -m <package>.serving.model_repository check``) in the repository's environment
(``mlgen.environments.repo_environment``): it parses
``model_repository/<model_name>/config.pbtxt`` with ``google.protobuf.text_format`` into
Triton's ``inference.ModelConfig`` (``tritonclient.grpc.model_config_pb2``), so a
misspelled field or a wrong enum value fails with its line and column; checks what
Triton itself would refuse or what this repository relies on (the model name, the
``onnxruntime`` backend, batching, dynamic batching, instance groups); then trains a
small model, exports it to ONNX, and compares every input and output (name, data type,
dims and reshape, the batch dimension) with the graph read by the ``onnx`` package.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlgen import Check, CheckResult
from mlgen.checks import first_lines
from mlgen.environments import repo_environment, run_in_repo

CONFIG_FILENAME = "config.pbtxt"
TIMEOUT_SECONDS = 600


def config_path(repo: Path, model_name: str) -> Path:
    """Where a generated repository keeps its Triton model configuration."""
    return repo / "model_repository" / model_name / CONFIG_FILENAME


def _triton_config(package: str, model_name: str) -> Any:
    def run(repo: Path) -> CheckResult:
        config = config_path(repo, model_name)
        if not config.is_file():
            return CheckResult(False, f"{config.relative_to(repo)} is missing")
        environment = repo_environment(repo)
        result = run_in_repo(
            repo,
            environment,
            ["python", "-m", f"{package}.serving.model_repository", "check", str(config)],
            timeout=TIMEOUT_SECONDS,
        )
        output = (result.stdout or "").strip()
        if result.returncode != 0:
            # The validator prints one problem a line; a crash leaves a traceback on stderr.
            errors = (result.stderr or "").strip().splitlines()[-2:]
            text = output or "\n".join(errors) or f"exit status {result.returncode}"
            return CheckResult(False, first_lines(text, 4))
        return CheckResult(True, output.splitlines()[-1] if output else "config.pbtxt valid")

    return run


def triton_checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The Triton backend's checks of a generated repository."""
    package = str(answers["package_name"])
    model_name = str(answers["model_name"])
    return [Check("triton-config", _triton_config(package, model_name))]
