"""Checks of the Kubernetes manifests, on what would really be applied.

Every overlay under ``deploy/k8s/overlays`` (and the batch jobs' kustomization
``deploy/k8s/jobs``, built as the overlay ``jobs``) is built with ``kubectl kustomize``; the built
objects are validated against the strict schemas of a current Kubernetes release
(kubernetes-validate) and scanned by checkov. Building first matters: kustomize patches,
renames and pins images, and an unknown or removed ``apiVersion`` is only an error with
strict schemas (the kubernetes-validate CLI merely warns).

:func:`build_overlays` is shared with the container checks, and done once per run
(every check that reads the overlays gets the same build). checkov runs once for every
framework (:mod:`mlgen_checks._checkov`); :func:`run_checkov` remains for plugins.

Custom resources (Argo Rollouts' Rollout and AnalysisTemplate, the Prometheus Operator's
ServiceMonitor and PrometheusRule) have no schema in kubernetes-validate: the
``custom-resources`` check validates them against their CRDs' OpenAPI schemas, shipped by
the npm packages ``@kubernetes-models/argo-rollouts`` and
``@kubernetes-models/prometheus-operator``, run offline with the machine's Node. The
packages are installed from the npm registry once, into mlgen's cache (``--ignore-scripts``:
nothing but the packages' own JavaScript is fetched).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlgen import Check, CheckResult
from mlgen.checks import find_tool, first_lines, run_tool
from mlgen.environments import cache_root

from . import _checkov, _memo

OVERLAYS_DIR = Path("deploy/k8s/overlays")
JOBS_DIR = Path("deploy/k8s/jobs")
"""The batch jobs (materialization, training, the new-data trigger): built and checked
like an overlay."""
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
INPUTS = ("deploy/",)
"""What building the overlays reads (kustomize may pull files from anywhere in deploy/)."""
KUBECTL_HINT = (
    "apt-get install kubectl (Kubernetes apt repository: https://kubernetes.io/docs/tasks/tools/)"
)

NODE_HINT = "apt-get install nodejs npm"
COMPONENTS_DIR = Path("deploy/k8s/components")

Manifest = dict[str, Any]

NPM_PACKAGES = (
    "@kubernetes-models/argo-rollouts@2.0.0",
    "@kubernetes-models/prometheus-operator@6.0.0",
)
"""The npm packages whose models validate the custom resources, pinned."""
_ROLLOUTS = "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1"
_OPERATOR = "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"
CUSTOM_RESOURCES: dict[tuple[str, str], str] = {
    **{
        ("argoproj.io/v1alpha1", kind): _ROLLOUTS
        for kind in ("Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate", "Experiment")
    },
    **{
        ("monitoring.coreos.com/v1", kind): _OPERATOR
        for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule", "Probe")
    },
}
"""(apiVersion, kind) -> the npm module exporting its model, one class per kind."""

_VALIDATE_JS = """\
// Reads [{apiVersion, kind, ...}, ...] (JSON) on stdin, validates each object with the
// @kubernetes-models class of its kind, prints [[index, message], ...] of the invalid ones.
import { readFileSync } from "node:fs";
const modules = JSON.parse(process.argv[2]);
const objects = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const [index, object] of objects.entries()) {
  const module = await import(modules[`${object.apiVersion} ${object.kind}`]);
  try {
    new module[object.kind](object).validate();
  } catch (error) {
    problems.push([index, String(error.message).replace(/^data\\//, "")]);
  }
}
process.stdout.write(JSON.stringify(problems));
"""


class OverlayError(Exception):
    """The overlays cannot be built (none found, kubectl failed, output not YAML)."""


def overlay_dirs(repo: Path) -> list[Path]:
    """Every kustomize overlay: the folders directly under ``deploy/k8s/overlays``, then
    ``deploy/k8s/jobs`` when it has a kustomization."""
    root = repo / OVERLAYS_DIR
    children = sorted(root.iterdir()) if root.is_dir() else []
    return [
        child
        for child in [*children, repo / JOBS_DIR]
        if child.is_dir() and any((child / name).is_file() for name in KUSTOMIZATION_FILES)
    ]


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


# ------------------------------------------------------------------ custom resources
def is_custom_resource(manifest: Mapping[str, Any]) -> bool:
    """Whether ``manifest`` is one of :data:`CUSTOM_RESOURCES` (validated by Node)."""
    return (manifest.get("apiVersion"), manifest.get("kind")) in CUSTOM_RESOURCES


def models_dir() -> Path:
    """Where the pinned :data:`NPM_PACKAGES` are installed (once; a concurrent second
    install loses the rename race harmlessly).

    Raises:
        ToolMissing: npm is not installed.
        OverlayError: npm failed (no registry, for instance).
    """
    key = hashlib.sha256("\n".join((*NPM_PACKAGES, _VALIDATE_JS)).encode()).hexdigest()[:16]
    target = cache_root() / "node-models" / key
    if (target / "validate.mjs").is_file():
        return target
    npm = find_tool("npm", NODE_HINT)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        (scratch / "package.json").write_text('{"private": true}\n', encoding="utf-8")
        command = [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ]
        result = run_tool([*command, *NPM_PACKAGES], cwd=scratch, timeout=600)
        if result.returncode != 0:
            raise OverlayError(
                f"npm install {' '.join(NPM_PACKAGES)} failed: "
                + first_lines(result.stderr or result.stdout)
            )
        (scratch / "validate.mjs").write_text(_VALIDATE_JS, encoding="utf-8")
        try:
            scratch.rename(target)
        except OSError:  # another process installed it first
            if not (target / "validate.mjs").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def custom_resource_problems(objects: Sequence[Manifest]) -> list[str]:
    """``Kind/name: path message`` for each of ``objects`` (custom resources of
    :data:`CUSTOM_RESOURCES`) invalid against its CRD schema; [] when all are valid.

    Raises:
        ToolMissing: node or npm is not installed.
        OverlayError: the models cannot be installed or the validator failed.
    """
    if not objects:
        return []
    node = find_tool("node", NODE_HINT)
    models = models_dir()
    modules = {f"{api} {kind}": module for (api, kind), module in CUSTOM_RESOURCES.items()}
    result = subprocess.run(
        [node, str(models / "validate.mjs"), json.dumps(modules)],
        cwd=models,
        capture_output=True,
        text=True,
        timeout=120,
        input=json.dumps(list(objects)),
        check=False,
    )
    try:
        problems = json.loads(result.stdout) if result.returncode == 0 else None
    except json.JSONDecodeError:
        problems = None
    if problems is None:
        raise OverlayError(
            f"the Node validator failed: {first_lines(result.stderr or result.stdout)}"
        )
    return [f"{describe(objects[index])}: {message}" for index, message in problems]


def component_objects(repo: Path) -> list[Manifest]:
    """The objects of every kustomize component in ``deploy/k8s/components`` (an overlay
    may leave a component out; it is validated all the same)."""
    found: list[Manifest] = []
    for path in sorted((repo / COMPONENTS_DIR).glob("**/*.y*ml")):
        if path.name in KUSTOMIZATION_FILES:
            continue
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as error:
            raise OverlayError(f"{path.relative_to(repo)}: not YAML: {error}") from error
        found.extend(document for document in documents if isinstance(document, dict))
    return found


def _custom_resources(repo: Path) -> CheckResult:
    try:
        built = build_overlays(repo)
        objects: dict[str, Manifest] = {}  # one of each, by content
        for manifest in [m for ms in built.values() for m in ms] + component_objects(repo):
            if is_custom_resource(manifest):
                objects.setdefault(json.dumps(manifest, sort_keys=True), manifest)
        problems = custom_resource_problems(list(objects.values()))
    except OverlayError as error:
        return CheckResult(False, str(error))
    if problems:
        unique = list(dict.fromkeys(problems))
        more = f" (+{len(unique) - 3} more)" if len(unique) > 3 else ""
        return CheckResult(False, f"{len(unique)} invalid: " + " | ".join(unique[:3]) + more)
    kinds = sorted({describe(m) for m in objects.values()})
    if not kinds:
        return CheckResult(True, "no custom resources")
    return CheckResult(
        True, f"{len(kinds)} custom resources valid against their CRD schemas: {', '.join(kinds)}"
    )


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
    count = custom = 0
    for overlay, objects in built.items():
        for manifest in objects:
            if is_custom_resource(manifest):  # the custom-resources check's
                custom += 1
                continue
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
    left = f"; {custom} custom resources left to custom-resources" if custom else ""
    return CheckResult(
        True,
        f"{count} objects in {len(built)} overlays valid against Kubernetes {version} "
        f"(strict){left}",
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
            "custom-resources",
            _custom_resources,
            inputs=INPUTS,
            description="Rollouts, AnalysisTemplates, ServiceMonitors and PrometheusRules "
            "validate against their CRD schemas (@kubernetes-models, offline with Node).",
        ),
        Check(
            "checkov-kubernetes",
            _checkov_kubernetes,
            inputs=INPUTS,
            description="checkov's Kubernetes policies pass on the built overlays.",
        ),
    ]
