"""Checks of the serving container: the Dockerfile, and its agreement with Kubernetes.

* ``hadolint`` and ``checkov-dockerfile`` lint the Dockerfile the backend contributed.
* ``container-probes`` reads every Deployment the overlays build and the Dockerfile, and
  fails when they disagree: a probe, Service, NetworkPolicy or scrape annotation that
  names a port the container does not declare; a container port the image does not
  EXPOSE; a HEALTHCHECK that is not the liveness probe's URL (docs/plugins.md, "The
  HEALTHCHECK rule": Docker acts on an unhealthy container as Kubernetes acts on a
  failed liveness probe, by replacing it, so it must not probe readiness); an image
  user that is not the pod's numeric ``runAsUser``. The serving container is the first
  container of each pod.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlgen import Check, CheckResult
from mlgen.checks import find_tool, first_lines, run_tool

from . import _checkov
from .kubernetes import INPUTS as K8S_INPUTS
from .kubernetes import Manifest, OverlayError, build_overlays, describe

DOCKERFILE = "Dockerfile"
_CMD = re.compile(r"\bCMD\b", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s'\"\\,)]+")


# ------------------------------------------------------------------ Dockerfile
@dataclass
class ImageFacts:
    """What the final stage of a Dockerfile declares."""

    exposed: set[tuple[int, str]] = field(default_factory=set)  # (port, protocol)
    user: str | None = None
    healthcheck: str | None = None  # the HEALTHCHECK arguments, None when absent


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):  # comments (and parser directives), also mid-instruction
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        if logical.strip():
            keyword, _, arguments = logical.strip().partition(" ")
            yield keyword.upper(), arguments.strip()
        logical = ""
    if logical.strip():
        keyword, _, arguments = logical.strip().partition(" ")
        yield keyword.upper(), arguments.strip()


def image_facts(text: str) -> ImageFacts:
    """EXPOSE, USER and HEALTHCHECK of the Dockerfile's final stage."""
    facts = ImageFacts()
    for keyword, arguments in _instructions(text):
        if keyword == "FROM":
            facts = ImageFacts()  # a new stage: only the last one is the image
        elif keyword == "EXPOSE":
            for item in arguments.split():
                port, _, protocol = item.partition("/")
                if port.isdigit():
                    facts.exposed.add((int(port), (protocol or "tcp").upper()))
        elif keyword == "USER":
            facts.user = arguments
        elif keyword == "HEALTHCHECK":
            facts.healthcheck = arguments
    return facts


def _healthcheck_urls(arguments: str) -> list[tuple[int, str]]:
    """``(port, path)`` of every http(s) URL in a HEALTHCHECK command."""
    match = _CMD.search(arguments)
    command = arguments[match.end() :].strip() if match else arguments
    try:
        words = json.loads(command) if command.startswith("[") else shlex.split(command)
    except (json.JSONDecodeError, ValueError):
        words = [command]
    urls: list[tuple[int, str]] = []
    for word in words:
        for match in _URL.finditer(str(word)):
            parts = urlsplit(match.group(0))
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                continue
            urls.append((port, parts.path or "/"))
    return urls


# ------------------------------------------------------------------ Kubernetes side
def _container_ports(container: Mapping[str, Any]) -> dict[str, int]:
    """Named ports of a container (unnamed ones under their number)."""
    ports: dict[str, int] = {}
    for port in container.get("ports") or []:
        number = int(port.get("containerPort", 0))
        ports[str(port.get("name") or number)] = number
    return ports


def _resolve(port: Any, ports: Mapping[str, int]) -> int | None:
    """The number a probe/targetPort refers to, or None when the container lacks it."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port) if int(port) in ports.values() else None
    return ports.get(str(port))


def _probe_target(probe: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The port and (HTTP) path a probe checks."""
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if handler in probe:
            return probe[handler].get("port"), probe[handler].get("path")
    return None, None


def _deployment_problems(deployment: Manifest, facts: ImageFacts | None) -> Iterator[str]:
    where = describe(deployment)
    pod = (deployment.get("spec") or {}).get("template") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    for container in containers:
        ports = _container_ports(container)
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind not in container:
                continue
            port, _ = _probe_target(container[kind])
            if _resolve(port, ports) is None:
                yield (
                    f"{where}: {kind} of container {container.get('name')} uses port "
                    f"{port!r}, not one of its ports {sorted(ports)}"
                )
    if not containers:
        yield f"{where}: no containers"
        return
    server = containers[0]
    ports = _container_ports(server)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    scrape_port = annotations.get("prometheus.io/port")
    if scrape_port is not None and _resolve(str(scrape_port), ports) is None:
        yield f"{where}: prometheus.io/port {scrape_port} is not a port of the container"
    if facts is None:
        return
    exposed = {number for number, _ in facts.exposed}
    for name, number in sorted(ports.items()):
        if number not in exposed:
            yield f"{where}: container port {name} ({number}) is not EXPOSEd by the {DOCKERFILE}"
    for number in sorted(exposed - set(ports.values())):
        yield f"{where}: the {DOCKERFILE} EXPOSEs {number}, which the container does not declare"
    liveness = None
    if "livenessProbe" in server:
        port, path = _probe_target(server["livenessProbe"])
        liveness = (_resolve(port, ports), path or "/")
    if facts.healthcheck is None or facts.healthcheck.upper().startswith("NONE"):
        yield f"the {DOCKERFILE} has no HEALTHCHECK (it should call the liveness probe's URL)"
    elif liveness is not None:
        urls = _healthcheck_urls(facts.healthcheck)
        if liveness not in urls:
            yield (
                f"{where}: the {DOCKERFILE} HEALTHCHECK calls {urls or 'no http URL'}, "
                f"not the liveness probe's (port, path) {liveness}"
            )
    security = {**(spec.get("securityContext") or {}), **(server.get("securityContext") or {})}
    run_as = security.get("runAsUser")
    image_user = (facts.user or "").split(":")[0]
    if run_as is not None and image_user != str(run_as):
        yield (
            f"{where}: the {DOCKERFILE} USER is {facts.user or '(root)'}, "
            f"not the pod's numeric runAsUser {run_as}"
        )


def _service_problems(manifest: Manifest, ports: Mapping[str, int]) -> Iterator[str]:
    where = describe(manifest)
    if manifest.get("kind") == "Service":
        for port in manifest.get("spec", {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if _resolve(target, ports) is None:
                yield f"{where}: targetPort {target!r} is not a container port {sorted(ports)}"
    elif manifest.get("kind") == "NetworkPolicy":
        for rule in manifest.get("spec", {}).get("ingress") or []:
            for port in rule.get("ports") or []:
                if "port" in port and _resolve(port["port"], ports) is None:
                    yield f"{where}: ingress port {port['port']!r} is not a container port"


def _container_probes(repo: Path) -> CheckResult:
    dockerfile = repo / DOCKERFILE
    facts = image_facts(dockerfile.read_text(encoding="utf-8")) if dockerfile.is_file() else None
    try:
        built = build_overlays(repo)
    except OverlayError as error:
        return CheckResult(False, str(error))
    found: dict[str, list[str]] = {}  # problem -> overlays it occurs in
    deployments = 0
    for overlay, objects in built.items():
        problems: list[str] = []
        all_ports: dict[str, int] = {}
        for manifest in objects:
            if manifest.get("kind") == "Deployment":
                deployments += 1
                problems.extend(_deployment_problems(manifest, facts))
                pod = (manifest.get("spec") or {}).get("template") or {}
                for container in (pod.get("spec") or {}).get("containers") or []:
                    all_ports.update(_container_ports(container))
        for manifest in objects:
            problems.extend(_service_problems(manifest, all_ports))
        for problem in dict.fromkeys(problems):
            found.setdefault(problem, []).append(overlay)
    problems = [f"{problem} [{', '.join(where)}]" for problem, where in found.items()]
    if facts is None:
        problems.insert(0, f"no {DOCKERFILE} in the repository root")
    if not deployments:
        problems.append("the overlays build no Deployment")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return CheckResult(False, " | ".join(problems[:3]) + more)
    assert facts is not None
    exposed = ", ".join(str(number) for number, _ in sorted(facts.exposed))
    return CheckResult(
        True,
        f"{deployments} Deployments in {len(built)} overlays: probes, Service and NetworkPolicy "
        f"use declared ports; EXPOSE {exposed}, HEALTHCHECK and USER {facts.user} agree",
    )


# ------------------------------------------------------------------ linters
def _hadolint(repo: Path) -> CheckResult:
    if not (repo / DOCKERFILE).is_file():
        return CheckResult(False, f"no {DOCKERFILE} in the repository root")
    hadolint = find_tool("hadolint")
    result = run_tool([hadolint, "--no-color", DOCKERFILE], cwd=repo, timeout=60)
    if result.returncode != 0:
        output = first_lines(result.stdout or result.stderr) or f"exit status {result.returncode}"
        return CheckResult(False, output)
    return CheckResult(True, f"{DOCKERFILE}: no findings")


def _checkov_dockerfile(repo: Path) -> CheckResult:
    if not (repo / DOCKERFILE).is_file():
        return CheckResult(False, f"no {DOCKERFILE} in the repository root")
    scan = _checkov.scan(repo)
    reports = scan.reports("dockerfile", lambda path: path == DOCKERFILE)
    return scan.failure() or _checkov.summarize(reports, "dockerfile", scan.version)


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The container checks."""
    return [
        Check(
            "hadolint",
            _hadolint,
            inputs=(DOCKERFILE, ".hadolint.yaml", ".hadolint.yml"),
            description="hadolint finds nothing in the Dockerfile.",
        ),
        Check(
            "checkov-dockerfile",
            _checkov_dockerfile,
            inputs=(DOCKERFILE,),
            description="checkov's Dockerfile policies pass (non-root USER, HEALTHCHECK, ...).",
        ),
        Check(
            "container-probes",
            _container_probes,
            inputs=(DOCKERFILE, *K8S_INPUTS),
            description="Probes, Service, NetworkPolicy, EXPOSE, HEALTHCHECK and USER of the "
            "Dockerfile and the built Deployments agree.",
        ),
    ]
