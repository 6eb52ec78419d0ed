"""TEST-ONLY fault injection: extra latency and 5xx answers on ``POST /predict``.

A canary analysis or an alert is only shown to work if it catches a slow or failing
service, measured from metrics a real Prometheus scraped from the real service. This
switch makes the service slow or failing on purpose, for such tests only:

* it is off unless ``MLGEN_TEST_FAULTS`` is set in the environment when the app is built
  (:func:`~mlgen_runtime.serving.environment.app_from_env`); there is no route, header or
  request field that turns it on, so no client can reach it;
* the generated Dockerfile and Kubernetes manifests never set it; a service started with
  it logs a warning line saying so;
* ``MLGEN_TEST_FAULTS="error_rate=0.05,latency_ms=250"``: every prediction request waits
  ``latency_ms`` more (an ``asyncio`` sleep: the event loop keeps serving), and exactly
  ``error_rate`` of them (deterministically: request ``i`` fails when
  ``floor((i + 1) * rate) > floor(i * rate)``) get a 500 instead of their answer. Both
  are counted in the serving metrics like any other answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV = "MLGEN_TEST_FAULTS"
"""The environment variable that turns fault injection on (tests only)."""


@dataclass
class Faults:
    """What to inject into each prediction request (see the module docstring)."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    _requests: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"{ENV}: error_rate must be in [0, 1], got {self.error_rate}")
        if not 0.0 <= self.latency_ms <= 60_000 or math.isnan(self.latency_ms):
            raise ValueError(f"{ENV}: latency_ms must be in [0, 60000], got {self.latency_ms}")

    async def inject(self) -> bool:
        """Wait the extra latency; ``True`` when this request must fail."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        index, self._requests = self._requests, self._requests + 1
        return math.floor((index + 1) * self.error_rate) > math.floor(index * self.error_rate)


def faults_from_env(environ: Mapping[str, str]) -> Faults | None:
    """The faults ``$MLGEN_TEST_FAULTS`` asks for; ``None`` (off) when it is unset or empty.

    Raises:
        ValueError: the value is not ``key=number`` pairs of ``error_rate``/``latency_ms``.
    """
    text = environ.get(ENV, "").strip()
    if not text:
        return None
    values: dict[str, float] = {}
    for part in text.split(","):
        key, equals, number = part.partition("=")
        key = key.strip()
        if not equals or key not in ("error_rate", "latency_ms") or key in values:
            raise ValueError(f"{ENV} must look like 'error_rate=0.05,latency_ms=250', got {text!r}")
        try:
            values[key] = float(number)
        except ValueError:
            raise ValueError(f"{ENV}: {key} is not a number: {number!r}") from None
    return Faults(
        error_rate=values.get("error_rate", 0.0), latency_ms=values.get("latency_ms", 0.0)
    )
