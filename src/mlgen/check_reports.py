"""``mlgen check`` reports: text, JSON, JUnit XML (CI test tabs) and SARIF 2.1.0 (code scanning).

Every format lists every registered check. JUnit marks a failed check as a
``<failure>`` and a skipped one as ``<skipped>``; SARIF has one rule per check and one
``error`` result per failed check, located at the first file the check reads (so GitHub
code scanning can show it), with every check's outcome in the run's properties.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlgen
from mlgen.check_runner import CheckOutcome

FORMATS = ("text", "json", "junit", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/mlgen/mlgen"
_FALLBACK_LOCATION = ".copier-answers.yml"


def text_line(outcome: CheckOutcome, color: bool = False) -> str:
    """``pass  name  detail`` (``FAIL``, ``skip``); ``(cached)`` for a reused pass."""
    labels = {"pass": ("pass", "green"), "fail": ("FAIL", "red"), "skipped": ("skip", "yellow")}
    label, colour = labels[outcome.status]
    if color:
        import click

        label = click.style(label, fg=colour)
    cached = " (cached)" if outcome.cached else ""
    detail = outcome.result.detail if outcome.result else ""
    return f"{label}  {outcome.check.name}{cached}" + (f"  {detail}" if detail else "")


def summary_line(outcomes: Sequence[CheckOutcome]) -> str:
    """``N passed, M failed`` (and skipped/cached counts when there are any)."""
    counts = {status: sum(o.status == status for o in outcomes) for status in ("pass", "fail")}
    line = f"{counts['pass']} passed, {counts['fail']} failed"
    skipped = sum(o.status == "skipped" for o in outcomes)
    cached = sum(o.cached for o in outcomes)
    extras = [f"{skipped} skipped"] * bool(skipped) + [f"{cached} cached"] * bool(cached)
    return line + (f" ({', '.join(extras)})" if extras else "")


def to_text(outcomes: Sequence[CheckOutcome]) -> str:
    """One line per check that ran, then the summary."""
    lines = [text_line(o) for o in outcomes if o.status != "skipped"]
    return "\n".join([*lines, summary_line(outcomes)]) + "\n"


def to_json(outcomes: Sequence[CheckOutcome], repo: Path) -> str:
    """``{"repository", "checks": [{name, status, detail, seconds, cached, ...}], "summary"}``."""
    checks = [
        {
            "name": o.check.name,
            "status": o.status,
            "detail": o.detail,
            "seconds": round(o.seconds, 3),
            "cached": o.cached,
            "description": o.check.description,
            "inputs": list(o.check.inputs),
        }
        for o in outcomes
    ]
    summary = {s: sum(o.status == s for o in outcomes) for s in ("pass", "fail", "skipped")}
    report = {"repository": str(repo), "mlgen": mlgen.__version__, "checks": checks}
    return json.dumps({**report, "summary": summary}, indent=2) + "\n"


def to_junit(outcomes: Sequence[CheckOutcome], repo: Path) -> str:
    """A JUnit XML document: one ``<testsuite>``, one ``<testcase>`` per check."""
    suite = ElementTree.Element(
        "testsuite",
        name="mlgen check",
        tests=str(len(outcomes)),
        failures=str(sum(o.status == "fail" for o in outcomes)),
        errors="0",
        skipped=str(sum(o.status == "skipped" for o in outcomes)),
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    properties = ElementTree.SubElement(suite, "properties")
    ElementTree.SubElement(properties, "property", name="repository", value=str(repo))
    for outcome in outcomes:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname="mlgen.check",
            name=outcome.check.name,
            time=f"{outcome.seconds:.3f}",
        )
        if outcome.status == "fail":
            failure = ElementTree.SubElement(case, "failure", message=outcome.detail)
            failure.text = outcome.detail
        elif outcome.status == "skipped":
            ElementTree.SubElement(case, "skipped", message=outcome.detail)
        else:
            output = ElementTree.SubElement(case, "system-out")
            output.text = outcome.detail + (" (cached)" if outcome.cached else "")
    root = ElementTree.Element("testsuites")
    root.append(suite)
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _location(outcome: CheckOutcome, repo: Path) -> str:
    """The first existing file the check reads, as a repository-relative URI."""
    for pattern in outcome.check.inputs:
        candidate = repo / pattern.rstrip("/")
        if candidate.is_file():
            return Path(pattern).as_posix()
        if candidate.is_dir():
            found = sorted(path for path in candidate.rglob("*") if path.is_file())
            if found:
                return found[0].relative_to(repo).as_posix()
    return _FALLBACK_LOCATION


def to_sarif(outcomes: Sequence[CheckOutcome], repo: Path) -> str:
    """A SARIF 2.1.0 log with one run of the ``mlgen`` tool."""
    rules: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        description = outcome.check.description or f"mlgen check {outcome.check.name}"
        rules.append(
            {
                "id": outcome.check.name,
                "name": outcome.check.name,
                "shortDescription": {"text": description},
                "defaultConfiguration": {"level": "error"},
            }
        )
        if outcome.status != "fail":
            continue
        results.append(
            {
                "ruleId": outcome.check.name,
                "ruleIndex": index,
                "level": "error",
                "message": {"text": outcome.detail or f"{outcome.check.name} failed"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {
                                "uri": _location(outcome, repo),
                                "uriBaseId": "SRCROOT",
                            }
                        }
                    }
                ],
            }
        )
    run = {
        "tool": {
            "driver": {
                "name": "mlgen",
                "version": mlgen.__version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {"SRCROOT": {"uri": repo.resolve().as_uri() + "/"}},
        # The tool ran to the end; findings are results, not an unsuccessful execution.
        "invocations": [{"executionSuccessful": True}],
        "results": results,
        "properties": {
            "checks": [
                {"name": o.check.name, "status": o.status, "detail": o.detail} for o in outcomes
            ]
        },
    }
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2) + "\n"


def render(report_format: str, outcomes: Sequence[CheckOutcome], repo: Path) -> str:
    """The report in ``report_format`` (one of :data:`FORMATS`)."""
    if report_format == "text":
        return to_text(outcomes)
    if report_format == "json":
        return to_json(outcomes, repo)
    if report_format == "junit":
        return to_junit(outcomes, repo)
    if report_format == "sarif":
        return to_sarif(outcomes, repo)
    raise ValueError(f"unknown report format {report_format!r}; use one of {', '.join(FORMATS)}")
