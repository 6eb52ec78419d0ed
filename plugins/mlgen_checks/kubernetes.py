"""Checks of the Kubernetes manifests, on what would really be applied.

Every overlay under ``deploy/k8s/overlays`` is built with ``kubectl kustomize``; the built
objects are validated against the strict schemas of a current Kubernetes release
(kubernetes-validate) and scanned by checkov. Building first matters: kustomize patches,
renames and pins images, and an unknown or removed ``apiVersion`` is only an error with
strict schemas (the kubernetes-validate CLI merely warns).

:func:`build_overlays` is shared with the container checks, and done once per run
(every check that reads the overlays gets the same build). checkov runs once for every
framework (:mod:`mlgen_checks._checkov`); :func:`run_checkov` remains for plugins.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlgen import Check, CheckResult
from mlgen.checks import find_tool, first_lines, run_tool

from . import _checkov, _memo

OVERLAYS_DIR = Path("deploy/k8s/overlays")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
INPUTS = ("deploy/",)
"""What building the overlays reads (kustomize may pull files from anywhere in deploy/)."""
KUBECTL_HINT = (
    "apt-get install kubectl (Kubernetes apt repository: https://kubernetes.io/docs/tasks/tools/)"
)

Manifest = dict[str, Any]


class OverlayError(Exception):
    """The overlays cannot be built (none found, kubectl failed, output not YAML)."""


def overlay_dirs(repo: Path) -> list[Path]:
    """Every kustomize overlay: the folders directly under ``deploy/k8s/overlays``."""
    root = repo / OVERLAYS_DIR
    if not root.is_dir():
        return []
    return sorted(
        child
        for child in root.iterdir()
        if child.is_dir() and any((child / name).is_file() for name in KUSTOMIZATION_FILES)
    )


def build_overlays(repo: Path) -> dict[str, list[Manifest]]:
    """Build every overlay with ``kubectl kustomize``: overlay name -> built objects.

    Raises:
        OverlayError: no overlay exists, one fails to build, or its output is not YAML.
        ToolMissing: kubectl is not installed.
    """
    repo = repo.resolve()
    key = ("overlays", str(repo), _memo.files_digest(repo, INPUTS))
    built: dict[str, list[Manifest]] = _memo.once(key, lambda: _build_overlays(repo))
    return {name: list(objects) for name, objects in built.items()}


def _build_overlays(repo: Path) -> dict[str, list[Manifest]]:
    overlays = overlay_dirs(repo)
    if not overlays:
        raise OverlayError(
            f"no kustomize overlay in {OVERLAYS_DIR}/ (a folder with kustomization.yaml)"
        )
    kubectl = find_tool("kubectl", KUBECTL_HINT)
    built: dict[str, list[Manifest]] = {}
    errors: dict[str, str] = {}
    for overlay in overlays:
        result = run_tool([kubectl, "kustomize", str(overlay)], cwd=repo, timeout=120)
        if result.returncode != 0:
            errors[overlay.name] = _kustomize_error(result.stderr or result.stdout, repo)
            continue
        try:
            documents = list(yaml.safe_load_all(result.stdout))
        except yaml.YAMLError as error:
            errors[overlay.name] = f"kustomize output is not YAML: {error}"
            continue
        built[overlay.name] = [document for document in documents if isinstance(document, dict)]
    if errors:
        names = ", ".join(errors)
        first = next(iter(errors.values()))
        verb = "do not build" if len(errors) > 1 else "does not build"
        raise OverlayError(f"overlay{'s' if len(errors) > 1 else ''} {names} {verb}: {first}")
    return built


_KLOG_PREFIX = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ \S+\] "command failed" err=')


def _kustomize_error(output: str, repo: Path, limit: int = 240) -> str:
    """kubectl's error, without the log prefix and absolute paths; the root cause (its end)
    kept when it is long."""
    text = _KLOG_PREFIX.sub("", " ".join(output.split())).strip('"')
    text = text.replace(f"{repo.resolve()}/", "").replace(f"{repo}/", "")
    return text if len(text) <= limit else "..." + text[-limit:]


def describe(manifest: Mapping[str, Any]) -> str:
    """``Kind/name`` of a Kubernetes object."""
    metadata = manifest.get("metadata") or {}
    return f"{manifest.get('kind', '?')}/{metadata.get('name', '?')}"


def run_checkov(repo: Path, framework: str, target: Sequence[str]) -> CheckResult:
    """Run checkov on ``target`` (``-f FILE`` or ``-d DIR``) alone; passed only with zero
    failures (see :func:`mlgen_checks._checkov.summarize`). The built-in checks share
    one scan instead; this is for a plugin's own target."""
    checkov = find_tool("checkov")
    command = [checkov, *target, "--framework", framework, "--skip-download", "--compact"]
    result = run_tool(
        [*command, "--output", "json"], cwd=repo, env={**os.environ, **_checkov.ENVIRONMENT}
    )
    try:
        reports = _checkov.parse_documents(result.stdout)
    except json.JSONDecodeError:
        output = first_lines(result.stderr or result.stdout) or f"exit status {result.returncode}"
        return CheckResult(False, f"checkov gave no JSON report: {output}")
    return _checkov.summarize(reports, framework, _checkov.Scan(tuple(reports)).version)


# ------------------------------------------------------------------ checks
def _kustomize(repo: Path) -> CheckResult:
    try:
        built = build_overlays(repo)
    except OverlayError as error:
        return CheckResult(False, str(error))
    counts = ", ".join(f"{name} ({len(objects)} objects)" for name, objects in built.items())
    return CheckResult(True, f"{len(built)} overlays build: {counts}")


def _kubernetes_validate(repo: Path) -> CheckResult:
    from kubernetes_validate import utils

    try:
        built = build_overlays(repo)
    except OverlayError as error:
        return CheckResult(False, str(error))
    version = utils.latest_version()
    problems: dict[str, list[str]] = {}  # problem -> overlays it occurs in
    count = 0
    for overlay, objects in built.items():
        for manifest in objects:
            count += 1
            try:
                utils.validate(manifest, version, strict=True)
            except utils.ValidationError as error:
                path = ".".join(str(part) for part in error.path) or "(top level)"
                problem = f"{describe(manifest)}: {path}: {error.message}"
            except utils.SchemaNotFoundError:
                problem = (
                    f"{describe(manifest)}: {manifest.get('apiVersion')} {manifest.get('kind')} "
                    f"does not exist in Kubernetes {version} (unknown or removed API version)"
                )
            except utils.InvalidSchemaError as error:
                problem = f"{describe(manifest)}: invalid schema: {error}"
            else:
                continue
            problems.setdefault(problem, []).append(overlay)
    if problems:
        shown = [f"{problem} [{', '.join(where)}]" for problem, where in problems.items()]
        more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
        return CheckResult(False, f"{len(shown)} invalid: " + " | ".join(shown[:3]) + more)
    return CheckResult(
        True,
        f"{count} objects in {len(built)} overlays valid against Kubernetes {version} (strict)",
    )


def _checkov_kubernetes(repo: Path) -> CheckResult:
    try:
        build_overlays(repo)
    except OverlayError as error:
        return CheckResult(False, str(error))
    scan = _checkov.scan(repo)
    reports = scan.reports("kubernetes", lambda path: path.startswith(_checkov.BUILT_DIR + "/"))
    return scan.failure() or _checkov.summarize(reports, "kubernetes", scan.version)


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The Kubernetes checks."""
    return [
        Check(
            "kustomize",
            _kustomize,
            inputs=INPUTS,
            description="Every overlay in deploy/k8s/overlays builds with kubectl kustomize.",
        ),
        Check(
            "kubernetes-validate",
            _kubernetes_validate,
            requires=("kubernetes_validate",),
            inputs=INPUTS,
            description="The built overlays validate against a current Kubernetes release "
            "(strict schemas).",
        ),
        Check(
            "checkov-kubernetes",
            _checkov_kubernetes,
            inputs=INPUTS,
            description="checkov's Kubernetes policies pass on the built overlays.",
        ),
    ]
