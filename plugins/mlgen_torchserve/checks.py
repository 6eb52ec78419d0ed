"""Checks of a TorchServe repository: its configuration, handler and model archive.

* ``torchserve-config`` parses ``serving/config.properties`` (production) and
  ``serving/config.local.properties`` as Java properties, the format TorchServe reads,
  and fails on: a key TorchServe 0.12 does not know (a typo is silently ignored by
  TorchServe), a missing required key, an address that is not ``http(s)://host:port``,
  ports that are not the container's (``http``/``management``/``metrics`` of the
  backend's ContainerSpec, which deploy/k8s is rendered from), token authorization off
  in the production config, a local config that listens beyond loopback without
  token authorization, metrics not in Prometheus mode, or a metrics file that does not
  declare the handler's metrics.
* ``torchserve-archive`` runs in the repository's environment: the handler module
  imports and defines exactly one class (TorchServe's loader refuses more), and
  torch-model-archiver builds a ``.mar`` of a freshly exported model that holds the
  handler, the TorchScript file and the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mlgen import Check, CheckResult, ContainerSpec
from mlgen.checks import first_lines
from mlgen.environments import repo_environment, run_in_repo

PRODUCTION_CONFIG = Path("serving/config.properties")
LOCAL_CONFIG = Path("serving/config.local.properties")
API_PORTS = {
    "inference_address": "http",
    "management_address": "management",
    "metrics_address": "metrics",
}
REQUIRED = (*API_PORTS, "model_store", "metrics_mode", "metrics_config")
HANDLER_METRICS = ("model_handler_duration_seconds", "model_prediction_probability")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Every key TorchServe 0.12.0 reads from config.properties: the frontend's ConfigManager
# and the `torchserve` launcher (vmargs, plugins_path).
KNOWN_KEYS = frozenset(
    [
        "allowed_urls",
        "async_logging",
        "blacklist_env_vars",
        "certificate_file",
        "cors_allowed_headers",
        "cors_allowed_methods",
        "cors_allowed_origin",
        "cpp_log_config",
        "cpu_launcher_args",
        "cpu_launcher_enable",
        "debug",
        "decode_input_request",
        "default_response_timeout",
        "default_service_handler",
        "default_startup_timeout",
        "default_workers_per_model",
        "disable_system_metrics",
        "disable_token_authorization",
        "enable_envvars_config",
        "enable_grpc_ssl",
        "enable_metrics_api",
        "enable_model_api",
        "grpc_inference_address",
        "grpc_inference_port",
        "grpc_management_address",
        "grpc_management_port",
        "grpc_inference_max_connection_age_ms",
        "grpc_management_max_connection_age_ms",
        "grpc_inference_max_connection_age_grace_ms",
        "grpc_management_max_connection_age_grace_ms",
        "inference_address",
        "initial_distribution_port",
        "initial_worker_port",
        "install_py_dep_per_model",
        "io_ratio",
        "ipex_enable",
        "ipex_gpu_enable",
        "job_queue_size",
        "keystore",
        "keystore_pass",
        "keystore_type",
        "limit_max_image_pixels",
        "load_models",
        "management_address",
        "max_request_size",
        "max_response_size",
        "metric_time_interval",
        "metrics_address",
        "metrics_config",
        "metrics_mode",
        "model_metrics_auto_detect",
        "model_server_home",
        "model_snapshot",
        "model_store",
        "models",
        "netty_client_threads",
        "number_of_gpu",
        "number_of_netty_threads",
        "plugins_path",
        "prefer_direct_buffer",
        "private_key_file",
        "service_envelope",
        "system_metrics_cmd",
        "token_expiration_min",
        "ts_header_key_sequence_end",
        "ts_header_key_sequence_id",
        "ts_header_key_sequence_start",
        "ts_open_inference_protocol",
        "unregister_model_timeout",
        "use_env_allowed_urls",
        "use_native_io",
        "vmargs",
        "workflow_store",
    ]
)
_BOOLEAN_KEYS = (
    "disable_token_authorization",
    "enable_model_api",
    "enable_metrics_api",
    "install_py_dep_per_model",
    "async_logging",
    "disable_system_metrics",
)
_INTEGER_KEYS = (
    "default_workers_per_model",
    "default_response_timeout",
    "default_startup_timeout",
    "job_queue_size",
    "max_request_size",
    "max_response_size",
    "number_of_gpu",
    "token_expiration_min",
)


class PropertiesError(ValueError):
    """A line of a properties file that TorchServe would not read as intended."""


# ------------------------------------------------------------------ Java properties
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[index + 2 : index + 6]):
                out.append(chr(int(text[index + 2 : index + 6], 16)))
                index += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, logical line): comments and blanks dropped, continuations joined."""
    lines: list[tuple[int, str]] = []
    pending: str | None = None
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip(" \t\f")
        if pending is None:
            if not stripped or stripped[0] in "#!":
                continue
            start, current = number, stripped
        else:
            current = pending + stripped
        trailing = len(current) - len(current.rstrip("\\"))
        if trailing % 2 == 1:
            pending = current[:-1]
            continue
        pending = None
        lines.append((start, current))
    if pending is not None:
        lines.append((start, pending))
    return lines


def parse_properties(text: str) -> dict[str, str]:
    """Parse a ``.properties`` file like ``java.util.Properties.load``.

    Raises:
        PropertiesError: a key is defined twice (Java keeps the last one silently) or
            a line has no key.
    """
    properties: dict[str, str] = {}
    for number, line in _logical_lines(text):
        index, escaped = 0, False
        while index < len(line):
            char = line[index]
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char in "=: \t\f":
                break
            index += 1
        key = _unescape(line[:index])
        rest = line[index:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        if not key:
            raise PropertiesError(f"line {number}: no key in {line!r}")
        if key in properties:
            raise PropertiesError(f"line {number}: {key} is set twice")
        properties[key] = _unescape(rest)
    return properties


# ------------------------------------------------------------------ config checks
def _address_port(key: str, value: str) -> tuple[str, int]:
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise ValueError(f"{key}={value} is not http(s)://host:port")
    return parts.hostname, port


def config_problems(
    properties: Mapping[str, str], container: ContainerSpec, production: bool
) -> list[str]:
    """Everything wrong with one parsed config (empty when it is valid)."""
    problems: list[str] = []
    unknown = sorted(set(properties) - KNOWN_KEYS)
    if unknown:
        problems.append(f"keys TorchServe 0.12 does not read: {', '.join(unknown)}")
    required = (*REQUIRED, "load_models") if production else REQUIRED
    missing = [key for key in required if not properties.get(key)]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    for key in _BOOLEAN_KEYS:
        if key in properties and properties[key].lower() not in ("true", "false"):
            problems.append(f"{key}={properties[key]} is not true or false")
    for key in _INTEGER_KEYS:
        if key in properties and not re.fullmatch(r"-?\d+", properties[key]):
            problems.append(f"{key}={properties[key]} is not an integer")
    token_auth = properties.get("disable_token_authorization", "false").lower() != "true"
    hosts: set[str] = set()
    for key, port_name in API_PORTS.items():
        if not properties.get(key):
            continue
        try:
            host, port = _address_port(key, properties[key])
        except ValueError as error:
            problems.append(str(error))
            continue
        hosts.add(host)
        if production:
            expected = container.port(port_name).container_port
            if port != expected:
                problems.append(
                    f"{key} port {port} is not the container's {port_name} port {expected}"
                )
    if production and not token_auth:
        problems.append("token authorization is off (disable_token_authorization=true)")
    if not production and not token_auth and hosts - LOOPBACK:
        problems.append(
            f"listens on {', '.join(sorted(hosts - LOOPBACK))} without token authorization"
        )
    if properties.get("metrics_mode", "").lower() != "prometheus":
        problems.append(f"metrics_mode={properties.get('metrics_mode', '')} (want prometheus)")
    return problems


def metrics_config_problems(path: Path) -> list[str]:
    """What is wrong with TorchServe's metrics file for this handler."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        return [f"{path.name}: {first_lines(str(error), 2)}"]
    if not isinstance(loaded, dict) or not isinstance(loaded.get("model_metrics"), dict):
        return [f"{path.name}: no model_metrics section"]
    problems: list[str] = []
    declared: dict[str, dict[str, Any]] = {}
    for section in ("ts_metrics", "model_metrics"):
        for kind, metrics in (loaded.get(section) or {}).items():
            if kind not in ("counter", "gauge", "histogram"):
                problems.append(f"{path.name}: {section} has an unknown metric type {kind!r}")
                continue
            for metric in metrics or []:
                if not isinstance(metric, dict) or not {"name", "unit", "dimensions"} <= set(
                    metric
                ):
                    problems.append(f"{path.name}: {section}.{kind}: {metric!r} lacks a key")
                    continue
                declared[metric["name"]] = {"kind": kind, "section": section, **metric}
    for name in HANDLER_METRICS:
        metric = declared.get(name)
        if metric is None or metric["section"] != "model_metrics":
            problems.append(f"{path.name}: model_metrics does not declare {name}")
        elif metric["kind"] != "histogram" or metric["dimensions"] != ["ModelName"]:
            problems.append(f"{path.name}: {name} must be a histogram with [ModelName]")
    return problems


def _config_check(container: ContainerSpec) -> Any:
    def run(repo: Path) -> CheckResult:
        problems: list[str] = []
        summary: list[str] = []
        for relative, production in ((PRODUCTION_CONFIG, True), (LOCAL_CONFIG, False)):
            path = repo / relative
            try:
                properties = parse_properties(path.read_text(encoding="utf-8"))
            except (OSError, PropertiesError) as error:
                problems.append(f"{relative}: {error}")
                continue
            problems += [
                f"{relative}: {p}" for p in config_problems(properties, container, production)
            ]
            metrics_file = repo / relative.parent / Path(properties.get("metrics_config", "")).name
            if properties.get("metrics_config"):
                problems += metrics_config_problems(metrics_file)
            summary.append(f"{relative.name} ({len(properties)} keys)")
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            return CheckResult(False, " | ".join(dict.fromkeys(problems[:3])) + more)
        ports = ", ".join(
            f"{name} {container.port(name).container_port}" for name in API_PORTS.values()
        )
        return CheckResult(
            True, f"{' and '.join(summary)} valid; ports {ports}; production token auth on"
        )

    return run


# ------------------------------------------------------------------ archive check
ARCHIVE_PROBE = """
import inspect, json, sys, tempfile, zipfile
from pathlib import Path
import {package}.serving.handler as handler
classes = [c for _, c in inspect.getmembers(handler, inspect.isclass)
           if c.__module__ == handler.__name__]
if len(classes) != 1:
    sys.exit(f"handler.py defines {{len(classes)}} classes {{[c.__name__ for c in classes]}}: "
             "TorchServe's loader needs exactly one")
from ts.torch_handler.base_handler import BaseHandler
if not issubclass(classes[0], BaseHandler):
    sys.exit(f"{{classes[0].__name__}} is not a ts BaseHandler")
from {package} import modeling
from {package}.data import dataset
from {package}.serving import archive
X, y = dataset(400, 0)
with tempfile.TemporaryDirectory() as out:
    model = modeling.export(modeling.fit(X, y, 0), Path(out))
    mar = archive.build_archive(model, Path(out) / "model-store")
    with zipfile.ZipFile(mar) as zipped:
        names = set(zipped.namelist())
        manifest = json.loads(zipped.read("MAR-INF/MANIFEST.json"))
missing = {{model.name, "handler.py", "MAR-INF/MANIFEST.json"}} - names
if missing:
    sys.exit(f"{{mar.name}} lacks {{sorted(missing)}}")
entry = manifest["model"]
if entry.get("handler") != "handler.py" or entry.get("serializedFile") != model.name:
    sys.exit(f"{{mar.name}} manifest names {{entry}}")
print(f"{{classes[0].__name__}} imports; {{mar.name}} holds {{', '.join(sorted(names))}}")
"""


def _archive_check(package: str) -> Any:
    def run(repo: Path) -> CheckResult:
        environment = repo_environment(repo)
        result = run_in_repo(
            repo,
            environment,
            ["python", "-c", ARCHIVE_PROBE.format(package=package)],
            timeout=600,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            return CheckResult(False, first_lines("\n".join(output.splitlines()[-3:]), 3))
        lines = result.stdout.strip().splitlines()
        return CheckResult(True, lines[-1] if lines else "archive built")

    return run


def checks(repo: Path, answers: Mapping[str, Any], container: ContainerSpec) -> list[Check]:
    """The TorchServe checks of ``repo``."""
    package = str(answers["package_name"])
    return [
        Check("torchserve-config", _config_check(container), requires=("yaml",)),
        Check("torchserve-archive", _archive_check(package)),
    ]
