"""The service's Prometheus metrics, with prometheus-client's own metric types.

Names and labels are a contract with a repository's ``deploy/monitoring`` (alerting
rules, dashboard) and its canary gate: ``model_requests_total{endpoint,status,variant}``,
``model_request_duration_seconds{endpoint,variant}``,
``model_errors_total{endpoint,reason,variant}``, ``model_prediction_probability{variant}``
and ``model_loaded``. The rules sum over ``variant``; none of the others may be renamed.

``variant`` is the A/B variant that answered (``control`` without an experiment) and
``none`` for requests no model answered (probes, invalid input).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

DEFAULT_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Latency histogram bounds in seconds; the latency objective is added to them."""
PROBABILITY_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))

# Leave out the ``*_created`` series: they double the series count and no rule uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


def error_reason(status: int) -> str | None:
    """The ``reason`` label of a failed request, ``None`` for a success."""
    if status == 503:
        return "not_ready"
    if status >= 500:
        return "internal"
    if status in (400, 413, 415, 422):
        return "invalid_input"
    if status >= 400:
        return "client_error"
    return None


def latency_buckets(latency_slo_seconds: float | None = None) -> tuple[float, ...]:
    """:data:`DEFAULT_LATENCY_BUCKETS`, plus the latency objective as a bound of its own
    (so ``histogram_quantile`` and an SLO burn-rate rule read it without interpolation)."""
    bounds = set(DEFAULT_LATENCY_BUCKETS)
    if latency_slo_seconds is not None:
        if not latency_slo_seconds > 0:
            raise ValueError(f"the latency objective must be positive, got {latency_slo_seconds}")
        bounds.add(float(latency_slo_seconds))
    return tuple(sorted(bounds))


class ServingMetrics:
    """The service's metrics, in a registry of their own (one per app).

    Args:
        variants: the variants that serve (``control``, and ``treatment`` in an
            experiment); their probability histograms exist from the start.
        latency_slo_seconds: the p95 latency objective, made a histogram bound.
    """

    def __init__(self, variants: Sequence[str], latency_slo_seconds: float | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "model_requests",
            "HTTP requests by endpoint, status code and variant.",
            ["endpoint", "status", "variant"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "model_request_duration_seconds",
            "HTTP request latency in seconds.",
            ["endpoint", "variant"],
            buckets=latency_buckets(latency_slo_seconds),
            registry=self.registry,
        )
        self.errors = Counter(
            "model_errors",
            "Failed HTTP requests by endpoint, reason and variant.",
            ["endpoint", "reason", "variant"],
            registry=self.registry,
        )
        self.probability = Histogram(
            "model_prediction_probability",
            "Predicted positive-class probabilities.",
            ["variant"],
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )
        self.loaded = Gauge(
            "model_loaded",
            "1 when every configured model is loaded and serving, else 0.",
            registry=self.registry,
        )
        self._probability = {variant: self.probability.labels(variant) for variant in variants}
        # The children of each (endpoint, status, variant) seen, looked up once rather than
        # on every request. Endpoints and variants are fixed sets, so this stays small.
        self._children: dict[tuple[str, int, str], tuple[Counter, Histogram, Counter | None]] = {}

    def observe_request(self, endpoint: str, status: int, variant: str, seconds: float) -> None:
        """Count one finished request."""
        key = (endpoint, status, variant)
        children = self._children.get(key)
        if children is None:
            reason = error_reason(status)
            children = (
                self.requests.labels(endpoint, str(status), variant),
                self.latency.labels(endpoint, variant),
                None if reason is None else self.errors.labels(endpoint, reason, variant),
            )
            self._children[key] = children
        requests, latency, errors = children
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()

    def observe_probabilities(self, variant: str, probabilities: Iterable[float]) -> None:
        """Count the probabilities ``variant`` served."""
        histogram = self._probability.get(variant)
        if histogram is None:
            histogram = self._probability[variant] = self.probability.labels(variant)
        for probability in probabilities:
            histogram.observe(probability)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
