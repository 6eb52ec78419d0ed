"""Data drift: compare a window of production inputs with the training data.

Training summarises its matrix once into a :class:`ReferenceProfile`
(:func:`build_profile`, :func:`save_profile`); a check compares a window with it
(:func:`detect_drift`: KS or chi-square plus PSI per feature) without the training set.
The command line is ``python -m mlgen_runtime.drift`` (:func:`main`). Needs only numpy
and scipy (the core dependencies); scipy is imported on first use, so serving code
that loads the profile and computes a PSI does not pay for it.

Modules: :mod:`.profile` (the profile and its JSON file), :mod:`.stattests` (KS p-value,
chi-square, PSI), :mod:`.detect` (the check and its report), :mod:`.window` (reading a
window file), :mod:`.cli` (the command).
"""

from mlgen_runtime.drift._columns import DriftInputError
from mlgen_runtime.drift.cli import main
from mlgen_runtime.drift.detect import (
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_PVALUE_THRESHOLD,
    PARALLEL_MIN_VALUES,
    DriftReport,
    FeatureDrift,
    detect_drift,
)
from mlgen_runtime.drift.profile import (
    DEFAULT_BINS,
    MAX_ECDF_POINTS,
    PROFILE_FORMAT,
    PROFILE_VERSION,
    CategoricalReference,
    FeatureReference,
    NumericReference,
    ReferenceProfile,
    build_profile,
    load_profile,
    save_profile,
)
from mlgen_runtime.drift.stattests import (
    PSI_EPSILON,
    chi2_homogeneity,
    ks_pvalue,
    ks_statistic,
    psi,
)
from mlgen_runtime.drift.window import read_window

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_PSI_THRESHOLD",
    "DEFAULT_PVALUE_THRESHOLD",
    "MAX_ECDF_POINTS",
    "PARALLEL_MIN_VALUES",
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "PSI_EPSILON",
    "CategoricalReference",
    "DriftInputError",
    "DriftReport",
    "FeatureDrift",
    "FeatureReference",
    "NumericReference",
    "ReferenceProfile",
    "build_profile",
    "chi2_homogeneity",
    "detect_drift",
    "ks_pvalue",
    "ks_statistic",
    "load_profile",
    "main",
    "psi",
    "read_window",
    "save_profile",
]
