"""A/B experiments in a service: a control and a treatment model, sticky routing.

A request carrying a user id is routed with :func:`mlgen_runtime.ab.assignment.assign`,
the function the experiment's readout uses: the same user gets the same variant in every
process, on every replica and after restarts. A request without a user id goes to the
control. The split is ``{"control": 1 - share, "treatment": share}``, in that order (the
control owns the low buckets), so raising the share only moves control users over.

Only the standard-library assignment is imported: a serving image never loads the A/B
statistics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlgen_runtime.ab.assignment import assign, validate_split

CONTROL = "control"
TREATMENT = "treatment"
NO_VARIANT = "none"
"""The ``variant`` metric label of requests no model answered (invalid input, probes)."""
DEFAULT_TREATMENT_SHARE = 0.5
"""The treatment's share of users when ``AB_TREATMENT_SHARE`` is not set."""
ENV_VARIABLES = (
    "AB_EXPERIMENT",
    "AB_TREATMENT_MODEL_PATH",
    "AB_TREATMENT_SHARE",
    "AB_TREATMENT_MODEL_VERSION",
)
"""The variables :func:`experiment_from_env` reads."""


@dataclass(frozen=True)
class Experiment:
    """A running experiment: its name, the treatment model and its share of users.

    Attributes:
        name: salts the assignment; a new name reshuffles every user.
        treatment_model_path: the treatment's exported model (the control is the
            service's own model).
        treatment_share: the treatment's share of users, in ``[0, 1]``, in whole basis
            points.
        treatment_version: the version reported for the treatment (default: derived
            from its file, as for the control).

    Raises:
        ValueError: an empty name, or a share outside ``[0, 1]`` or finer than a basis
            point.
    """

    name: str
    treatment_model_path: Path
    treatment_share: float = DEFAULT_TREATMENT_SHARE
    treatment_version: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("the experiment name must not be empty")
        share = self.treatment_share
        if not (math.isfinite(share) and 0.0 <= share <= 1.0):
            raise ValueError(f"the treatment share must be between 0 and 1, got {share!r}")
        validate_split(self.split)

    @property
    def split(self) -> dict[str, float]:
        """The split :func:`~mlgen_runtime.ab.assignment.assign` uses: control first."""
        return {CONTROL: 1.0 - self.treatment_share, TREATMENT: self.treatment_share}

    def variant_for(self, user_id: str | int | None) -> str:
        """The variant serving ``user_id``: the control when there is no user id."""
        if user_id is None:
            return CONTROL
        return assign(user_id, self.name, self.split)


def experiment_from_env(environ: Mapping[str, str] | None = None) -> Experiment | None:
    """The experiment the ``AB_*`` variables describe, or ``None`` when there is none.

    ``AB_EXPERIMENT`` (the name), ``AB_TREATMENT_MODEL_PATH`` (required with a name),
    ``AB_TREATMENT_SHARE`` (default 0.5) and ``AB_TREATMENT_MODEL_VERSION``.

    Raises:
        ValueError: the variables are inconsistent (a treatment without an experiment
            name, an experiment without a treatment model) or a value is invalid.
    """
    environ = os.environ if environ is None else environ
    values = {name: environ.get(name, "").strip() for name in ENV_VARIABLES}
    name = values["AB_EXPERIMENT"]
    if not name:
        stray = [variable for variable in ENV_VARIABLES[1:] if values[variable]]
        if stray:
            raise ValueError(f"{', '.join(stray)} set but AB_EXPERIMENT is not")
        return None
    path = values["AB_TREATMENT_MODEL_PATH"]
    if not path:
        raise ValueError(f"AB_EXPERIMENT={name} needs AB_TREATMENT_MODEL_PATH")
    share = DEFAULT_TREATMENT_SHARE
    if values["AB_TREATMENT_SHARE"]:
        try:
            share = float(values["AB_TREATMENT_SHARE"])
        except ValueError:
            raise ValueError(
                f"AB_TREATMENT_SHARE must be a number, got {values['AB_TREATMENT_SHARE']!r}"
            ) from None
    try:
        return Experiment(
            name,
            Path(path).expanduser().resolve(),
            share,
            values["AB_TREATMENT_MODEL_VERSION"] or None,
        )
    except ValueError as error:
        raise ValueError(f"AB_TREATMENT_SHARE: {error}") from None
