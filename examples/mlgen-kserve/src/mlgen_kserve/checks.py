"""``mlgen check`` of repositories that use the kserve backend.

Three checks of ``deploy/kserve/inferenceservice.yaml``:

* ``kserve-inferenceservice``: the manifest is one ``serving.kserve.io/v1beta1``
  ``InferenceService`` that KServe's own Python types accept. The ``kserve`` SDK ships
  OpenAPI-generated models (``kserve.V1beta1InferenceService`` and the classes its
  ``openapi_types`` name) that refer to the Kubernetes client's models for the pod
  parts (``V1ObjectMeta``, ``V1Container``, ...). The manifest is walked through those
  types: an unknown field, a value of the wrong type or a missing required field is a
  problem with its path (``spec.predictor.containers[0].ports[0].containerPort``). The
  SDK's own ``ApiClient.deserialize`` cannot do this: it ignores unknown fields, casts
  wrong types (``int("8080")``) and cannot even resolve ``V1ObjectMeta``.
* ``kserve-inferenceservice-backend``: the predictor container agrees with the
  ``Backend``: its ports are the backend's, the probes hit the backend's readiness and
  liveness paths on the right ports, the resources and the metrics scrape port are the
  backend's, and it runs as the Dockerfile's numeric user under the "restricted" Pod
  Security Standard.
* ``kserve-inferenceservice-answers``: name, namespace and ``canaryTrafficPercent``
  are the copier answers ``model_name``, ``k8s_namespace`` and
  ``canary_weight_percent``.

``kserve`` (several seconds to import) is imported only when a check runs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlgen

INFERENCESERVICE = "deploy/kserve/inferenceservice.yaml"
API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
CONTAINER_NAME = "kserve-container"
RUN_AS_USER = 10001
MAX_PROBLEMS = 8
"""At most this many problems are listed in one check's detail."""

# Knative (KServe's Serverless mode) names the one serving port of a container by its
# protocol: http1 for HTTP/1.1, h2c for HTTP/2 (gRPC).
KNATIVE_PORT_NAMES = {"http": "http1", "grpc": "h2c"}

# Type names in KServe's models that neither kserve nor the Kubernetes client define
# under that name (KServe's generator named them after their Go packages).
_ALIASES = {
    "K8sIoApiAppsV1DeploymentStrategy": "V1DeploymentStrategy",
    "K8sIoApiAutoscalingV2HorizontalPodAutoscalerBehavior": "V2HorizontalPodAutoscalerBehavior",
}
_QUANTITY = "ResourceQuantity"


class ManifestError(Exception):
    """The manifest cannot be read as one YAML mapping."""


def load_manifest(repo: Path) -> dict[str, Any]:
    """The InferenceService manifest of ``repo`` as a mapping.

    Raises:
        ManifestError: missing, not YAML, not exactly one document, or not a mapping.
    """
    import yaml

    path = repo / INFERENCESERVICE
    if not path.is_file():
        raise ManifestError(f"{INFERENCESERVICE} is missing")
    try:
        documents = [
            d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None
        ]
    except yaml.YAMLError as error:
        raise ManifestError(
            f"{INFERENCESERVICE}: not valid YAML: {' '.join(str(error).split())}"
        ) from None
    if len(documents) != 1:
        raise ManifestError(
            f"{INFERENCESERVICE}: expected one YAML document, found {len(documents)}"
        )
    (document,) = documents
    if not isinstance(document, dict):
        raise ManifestError(
            f"{INFERENCESERVICE}: expected a mapping, found {type(document).__name__}"
        )
    return document


# ------------------------------------------------------------------ KServe's types
class _Walker:
    """Checks a manifest against KServe's OpenAPI-generated models and builds them."""

    def __init__(self) -> None:
        import kserve
        import kubernetes.client

        self.kserve = kserve
        self.kubernetes = kubernetes.client
        self.problems: list[str] = []
        self.opaque: set[str] = set()

    def resolve(self, name: str) -> Any:
        name = _ALIASES.get(name, name)
        for module in (self.kserve, self.kubernetes):
            found = getattr(module, name, None)
            if isinstance(found, type):
                return found
        return None

    def check(self, value: Any, type_name: str, path: str) -> Any:
        """``value`` as ``type_name`` (a type string of the generated models)."""
        list_of = re.fullmatch(r"(?:list|List)\[(.+)\]", type_name)
        if list_of:
            if not isinstance(value, list):
                return self._wrong(path, "a list", value)
            return [
                self.check(item, list_of.group(1), f"{path}[{index}]")
                for index, item in enumerate(value)
            ]
        dict_of = re.fullmatch(r"dict\(str, (.+)\)", type_name) or re.fullmatch(
            r"Dict\[str, (.+)\]", type_name
        )
        if dict_of:
            if not isinstance(value, dict):
                return self._wrong(path, "a mapping", value)
            return {
                key: self.check(item, dict_of.group(1), f"{path}.{key}")
                for key, item in value.items()
            }
        primitive = self._primitive(value, type_name, path)
        if primitive is not NotImplemented:
            return primitive
        klass = self.resolve(type_name)
        if klass is None:
            self.opaque.add(type_name)  # a status-only or alpha type: accepted as it is
            return value
        if hasattr(klass, "model_validate"):  # the Kubernetes client's pydantic models
            return self._pydantic(klass, value, path)
        return self._generated(klass, value, path)

    def _primitive(self, value: Any, type_name: str, path: str) -> Any:
        if type_name == "str":
            return value if isinstance(value, str) else self._wrong(path, "a string", value)
        if type_name == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return self._wrong(path, "an integer", value)
        if type_name == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
            return self._wrong(path, "a number", value)
        if type_name == "bool":
            return value if isinstance(value, bool) else self._wrong(path, "true or false", value)
        if type_name in ("object", "datetime", "date", "V1Time"):
            return value
        if type_name == _QUANTITY:  # a Kubernetes quantity: "500m", "1Gi", 2
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return value
            return self._wrong(path, "a quantity", value)
        return NotImplemented

    def _generated(self, klass: Any, value: Any, path: str) -> Any:
        """A kserve model: ``openapi_types`` and ``attribute_map``, setters validate."""
        if not isinstance(value, dict):
            return self._wrong(path, f"a mapping ({klass.__name__})", value)
        by_json = {json: attr for attr, json in klass.attribute_map.items()}
        kwargs = {}
        for key, item in value.items():
            attr = by_json.get(key)
            if attr is None:
                self._unknown(path, key, klass.__name__, list(by_json))
                continue
            kwargs[attr] = self.check(item, klass.openapi_types[attr], _join(path, key))
        try:
            return klass(**kwargs)
        except (ValueError, TypeError) as error:  # required fields, enumerations
            self.problems.append(f"{path or klass.__name__}: {error}")
            return None

    def _pydantic(self, klass: Any, value: Any, path: str) -> Any:
        from pydantic import ValidationError

        if klass.__name__ == "V1ResourceRequirements":
            value = _quantities_as_strings(value)
        else:
            value = _with_string_quantities(value)
        try:
            return klass.model_validate(value)
        except ValidationError as error:
            for item in error.errors():
                where = path
                for part in item["loc"]:
                    where = f"{where}[{part}]" if isinstance(part, int) else _join(where, part)
                if item["type"] == "extra_forbidden":
                    self.problems.append(f"{where}: unknown field ({klass.__name__})")
                else:
                    self.problems.append(f"{where}: {item['msg']}")
            return None

    def _wrong(self, path: str, expected: str, value: Any) -> None:
        self.problems.append(f"{path}: expected {expected}, got {type(value).__name__} {value!r}")

    def _unknown(self, path: str, key: str, klass: str, known: list[str]) -> None:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.problems.append(f"{_join(path, key)}: unknown field of {klass}{hint}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _with_string_quantities(value: Any) -> Any:
    """``value`` with every ``resources`` mapping passed through :func:`_quantities_as_strings`."""
    if isinstance(value, list):
        return [_with_string_quantities(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        key: _quantities_as_strings(item) if key == "resources" else _with_string_quantities(item)
        for key, item in value.items()
    }


def _quantities_as_strings(value: Any) -> Any:
    """``cpu: 1`` is a valid quantity; the Kubernetes client types quantities as strings."""
    if not isinstance(value, dict):
        return value
    result = dict(value)
    for field in ("limits", "requests"):
        if isinstance(result.get(field), dict):
            result[field] = {
                key: str(item)
                if isinstance(item, int | float) and not isinstance(item, bool)
                else item
                for key, item in result[field].items()
            }
    return result


def schema_problems(document: Mapping[str, Any]) -> tuple[list[str], Any]:
    """Problems of ``document`` as a KServe ``V1beta1InferenceService``, and the object."""
    walker = _Walker()
    problems = walker.problems
    if document.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: expected {API_VERSION}, got {document.get('apiVersion')!r}")
    if document.get("kind") != KIND:
        problems.append(f"kind: expected {KIND}, got {document.get('kind')!r}")
    if "status" in document:
        problems.append("status: set by the KServe controller, not by a manifest")
    built = walker.check(dict(document), "V1beta1InferenceService", "")
    predictor = (
        (document.get("spec") or {}).get("predictor")
        if isinstance(document.get("spec"), dict)
        else None
    )
    if (
        isinstance(predictor, dict)
        and not predictor.get("containers")
        and not predictor.get("model")
    ):
        problems.append("spec.predictor: neither a model nor containers")
    return problems, built


# ------------------------------------------------------------------ the checks
def _result(problems: list[str], ok_detail: str) -> mlgen.CheckResult:
    if not problems:
        return mlgen.CheckResult(True, ok_detail)
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
    return mlgen.CheckResult(False, f"{INFERENCESERVICE}: {shown}{more}")


def check_schema(repo: Path) -> mlgen.CheckResult:
    """``kserve-inferenceservice``: the manifest fits KServe's own types."""
    try:
        document = load_manifest(repo)
    except ManifestError as error:
        return mlgen.CheckResult(False, str(error))
    problems, built = schema_problems(document)
    return _result(
        problems,
        f"{INFERENCESERVICE}: valid {KIND} "
        f"({type(built).__name__}, kserve {version('kserve')} types)",
    )


def _container(document: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    predictor = _dig(document, "spec", "predictor")
    containers = predictor.get("containers") if isinstance(predictor, dict) else None
    if (
        not isinstance(containers, list)
        or len(containers) != 1
        or not isinstance(containers[0], dict)
    ):
        return None, ["spec.predictor.containers: expected exactly one container"]
    return containers[0], []


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def dockerfile_user(repo: Path) -> str | None:
    """The last ``USER`` of the repository's Dockerfile (``10001:10001``), if any."""
    path = repo / "Dockerfile"
    if not path.is_file():
        return None
    users = re.findall(r"^\s*USER\s+(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    return users[-1] if users else None


def backend_problems(
    document: Mapping[str, Any], backend: mlgen.Backend, repo: Path | None = None
) -> list[str]:
    """Where the predictor container disagrees with the Backend (and the Dockerfile)."""
    container, problems = _container(document)
    if container is None:
        return problems
    spec = backend.container
    where = "spec.predictor.containers[0]"
    numbers = {port.name: port.container_port for port in spec.ports}
    names = {number: name for name, number in numbers.items()}
    if container.get("name") != CONTAINER_NAME:
        problems.append(
            f"{where}.name: KServe's custom predictor container is "
            f"{CONTAINER_NAME!r}, got {container.get('name')!r}"
        )
    declared: set[int] = set()
    for index, port in enumerate(container.get("ports") or []):
        number = port.get("containerPort") if isinstance(port, dict) else None
        if not isinstance(number, int) or number not in names:
            problems.append(
                f"{where}.ports[{index}].containerPort: {number!r} is not a port "
                f"of the backend ({_ports(numbers)})"
            )
            continue
        declared.add(number)
        expected_name = KNATIVE_PORT_NAMES.get(names[number])
        if expected_name and port.get("name") not in (None, expected_name):
            problems.append(
                f"{where}.ports[{index}].name: Knative names the backend's "
                f"{names[number]!r} port {expected_name!r}, got {port.get('name')!r}"
            )
    serving = numbers.get(spec.readiness.port)
    if serving not in declared:
        problems.append(
            f"{where}.ports: the backend's serving port {spec.readiness.port} "
            f"({serving}) is not declared"
        )
    for field, probe in (("readinessProbe", spec.readiness), ("livenessProbe", spec.liveness)):
        problems += _probe_problems(
            container.get(field), f"{where}.{field}", probe, numbers[probe.port]
        )
    problems += _resource_problems(container.get("resources"), f"{where}.resources", spec.resources)
    if spec.metrics_port is not None:
        annotations = _dig(document, "spec", "predictor", "annotations") or {}
        scrape_port = str(numbers[spec.metrics_port])
        if str(annotations.get("prometheus.io/port")) != scrape_port:
            problems.append(
                f"spec.predictor.annotations.prometheus.io/port: the backend's "
                f"metrics port is {scrape_port}, got "
                f"{annotations.get('prometheus.io/port')!r}"
            )
        if annotations.get("prometheus.io/path", spec.metrics_path) != spec.metrics_path:
            problems.append(
                f"spec.predictor.annotations.prometheus.io/path: the backend's "
                f"metrics path is {spec.metrics_path}, got "
                f"{annotations.get('prometheus.io/path')!r}"
            )
    problems += _security_problems(
        container.get("securityContext"), f"{where}.securityContext", repo
    )
    return problems


def _ports(numbers: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {number}" for name, number in numbers.items())


def _probe_problems(probe: Any, where: str, expected: mlgen.Probe, number: int) -> list[str]:
    get = _dig(probe, "httpGet")
    if not isinstance(get, dict):
        return [f"{where}: missing (the backend probes {expected.path} on {expected.port})"]
    problems = []
    if get.get("path") != expected.path:
        problems.append(
            f"{where}.httpGet.path: the backend's is {expected.path}, got {get.get('path')!r}"
        )
    if get.get("port") not in (number, expected.port):
        problems.append(
            f"{where}.httpGet.port: the backend's {expected.port} port is "
            f"{number}, got {get.get('port')!r}"
        )
    return problems


def _resource_problems(resources: Any, where: str, expected: mlgen.Resources) -> list[str]:
    wanted = {
        ("requests", "cpu"): expected.cpu_request,
        ("requests", "memory"): expected.memory_request,
        ("limits", "cpu"): expected.cpu_limit,
        ("limits", "memory"): expected.memory_limit,
    }
    problems = []
    for (group, name), value in wanted.items():
        found = _dig(resources, group, name)
        if str(found) != str(value):
            problems.append(f"{where}.{group}.{name}: the backend's is {value}, got {found!r}")
    return problems


def _security_problems(context: Any, where: str, repo: Path | None) -> list[str]:
    context = context if isinstance(context, dict) else {}
    user = dockerfile_user(repo) if repo is not None else None
    uid = int(user.split(":")[0]) if user and user.split(":")[0].isdigit() else RUN_AS_USER
    wanted: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
    }
    problems = [
        f"{where}.{key}: restricted profile needs {value!r}, got {context.get(key)!r}"
        for key, value in wanted.items()
        if context.get(key) != value
    ]
    if "ALL" not in (_dig(context, "capabilities", "drop") or []):
        problems.append(f"{where}.capabilities.drop: restricted profile needs ALL")
    if _dig(context, "seccompProfile", "type") not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{where}.seccompProfile.type: restricted profile needs RuntimeDefault")
    if context.get("privileged"):
        problems.append(f"{where}.privileged: must not be true")
    return problems


def check_backend(repo: Path, backend: mlgen.Backend) -> mlgen.CheckResult:
    """``kserve-inferenceservice-backend``: ports, probes, resources, user agree."""
    try:
        document = load_manifest(repo)
    except ManifestError as error:
        return mlgen.CheckResult(False, str(error))
    spec = backend.container
    return _result(
        backend_problems(document, backend, repo),
        f"{INFERENCESERVICE}: port {spec.ports[0].container_port}, probes "
        f"{spec.readiness.path} and {spec.liveness.path}, resources and user "
        f"{dockerfile_user(repo) or RUN_AS_USER} agree with the {backend.name} backend",
    )


def answer_problems(document: Mapping[str, Any], answers: Mapping[str, Any]) -> list[str]:
    """Where the manifest disagrees with the repository's copier answers."""
    problems = []
    for path, answer in (
        (("metadata", "name"), "model_name"),
        (("metadata", "namespace"), "k8s_namespace"),
    ):
        found = _dig(document, *path)
        if answers.get(answer) is not None and found != answers.get(answer):
            problems.append(
                f"{'.'.join(path)}: the {answer} answer is {answers.get(answer)!r}, got {found!r}"
            )
    canary = _dig(document, "spec", "predictor", "canaryTrafficPercent")
    weight = answers.get("canary_weight_percent")
    if weight is not None and (isinstance(canary, bool) or canary != int(weight)):
        problems.append(
            f"spec.predictor.canaryTrafficPercent: the canary_weight_percent "
            f"answer is {int(weight)}, got {canary!r}"
        )
    return problems


def check_answers(repo: Path, answers: Mapping[str, Any]) -> mlgen.CheckResult:
    """``kserve-inferenceservice-answers``: name, namespace and canary share."""
    try:
        document = load_manifest(repo)
    except ManifestError as error:
        return mlgen.CheckResult(False, str(error))
    return _result(
        answer_problems(document, answers),
        f"{INFERENCESERVICE}: {answers.get('k8s_namespace')}/{answers.get('model_name')}, "
        f"canaryTrafficPercent {answers.get('canary_weight_percent')} as answered",
    )


def for_backend(
    backend: mlgen.Backend, answers: Mapping[str, Any]
) -> list[tuple[str, Callable[[Path], mlgen.CheckResult]]]:
    """The checks, by name, of a repository that uses ``backend``."""
    return [
        ("kserve-inferenceservice", check_schema),
        ("kserve-inferenceservice-backend", lambda repo: check_backend(repo, backend)),
        ("kserve-inferenceservice-answers", lambda repo: check_answers(repo, answers)),
    ]
