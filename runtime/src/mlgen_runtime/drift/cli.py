"""The drift command: ``python -m mlgen_runtime.drift --current FILE --profile PATH``.

A generated repository's ``python -m <package>.drift`` is this command with the model's
thresholds and its artifacts folder's profile as defaults (see :func:`main`). Exit
status: 0 no drift, 1 drift, 2 bad input; the JSON report goes to standard output.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mlgen_runtime.drift._columns import DriftInputError
from mlgen_runtime.drift.detect import (
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_PVALUE_THRESHOLD,
    detect_drift,
)
from mlgen_runtime.drift.profile import CategoricalReference, load_profile
from mlgen_runtime.drift.window import read_window


def _parser(
    prog: str, psi_threshold: float, ks_pvalue_threshold: float, profile: Path | None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check a window of model inputs for drift against the training data. "
        "Exit status: 0 no drift, 1 drift, 2 bad input.",
    )
    parser.add_argument(
        "--current",
        type=Path,
        required=True,
        help="the window: a CSV file with a header row, or Parquet",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=profile,
        required=profile is None,
        help="the reference profile written at training"
        + (f" (default: {profile})" if profile is not None else ""),
    )
    parser.add_argument(
        "--psi-threshold",
        type=float,
        default=psi_threshold,
        help="drift when a feature's PSI is above this (default: %(default)s)",
    )
    parser.add_argument(
        "--ks-threshold",
        type=float,
        default=ks_pvalue_threshold,
        help="drift when a KS or chi-square p-value is below this (default: %(default)s)",
    )
    return parser


def main(
    argv: list[str] | None = None,
    *,
    prog: str = "python -m mlgen_runtime.drift",
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    ks_pvalue_threshold: float = DEFAULT_PVALUE_THRESHOLD,
    profile: Path | None = None,
) -> int:
    """Run the drift command; returns the exit status (0 no drift, 1 drift, 2 error).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        prog: the command's name in its help and error messages.
        psi_threshold: the ``--psi-threshold`` default.
        ks_pvalue_threshold: the ``--ks-threshold`` default.
        profile: the ``--profile`` default; without one ``--profile`` is required.
    """
    parser = _parser(prog, psi_threshold, ks_pvalue_threshold, profile)
    args = parser.parse_args(argv)
    if not (math.isfinite(args.psi_threshold) and args.psi_threshold >= 0):
        parser.error("--psi-threshold must be a non-negative number")
    if not 0.0 <= args.ks_threshold <= 1.0:
        parser.error("--ks-threshold must be between 0 and 1")
    try:
        reference = load_profile(args.profile)
        labels = {
            ref.name: ref.labels
            for ref in reference.features
            if isinstance(ref, CategoricalReference) and ref.labels is not None
        }
        window = read_window(args.current, reference.feature_names, labels)
        report = detect_drift(
            window,
            reference,
            psi_threshold=args.psi_threshold,
            ks_pvalue_threshold=args.ks_threshold,
        )
    except DriftInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2))
    return 1 if report.drift else 0
