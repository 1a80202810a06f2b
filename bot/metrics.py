"""Prometheus metrics of one bot process, on a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets from 0.1 ms: acks are expected in well under a millisecond.
ACK_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
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
    3.0,
    5.0,
)
NORTHFLANK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "nfbot_slack_requests",
            "Slack requests handled, by kind (command, action, event), name, outcome.",
            ["kind", "name", "outcome"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "nfbot_ack_seconds",
            "Seconds from a Slack request's arrival to the HTTP response (the ack).",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.northflank_calls = Counter(
            "nfbot_northflank_requests",
            "Northflank API requests, by endpoint and HTTP status (or timeout, error).",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.northflank_seconds = Histogram(
            "nfbot_northflank_request_seconds",
            "Seconds per Northflank API request attempt, by endpoint.",
            ["endpoint"],
            buckets=NORTHFLANK_BUCKETS,
            registry=self.registry,
        )
        self.rate_limit_remaining = Gauge(
            "nfbot_northflank_rate_limit_remaining",
            "Requests left in the Northflank rate-limit window, per the last response.",
            registry=self.registry,
        )
        self.aborts = Counter(
            "nfbot_abort_attempts",
            "Abort attempts by outcome (requested, denied, aborted, failed, skipped).",
            ["outcome"],
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "nfbot_redis_up",
            "1 when the last Redis command succeeded, else 0.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "nfbot_tasks_in_flight",
            "Background tasks running after their ack.",
            registry=self.registry,
        )
        self.followed = Gauge(
            "nfbot_followed_runs",
            "Aborting runs this process is following.",
            registry=self.registry,
        )

    def observe_northflank(self, endpoint: str, status: str, seconds: float) -> None:
        self.northflank_calls.labels(endpoint=endpoint, status=status).inc()
        self.northflank_seconds.labels(endpoint=endpoint).observe(seconds)

    def bind_gauges(
        self,
        *,
        redis_up: Callable[[], bool],
        in_flight: Callable[[], int],
        followed: Callable[[], int],
    ) -> None:
        self.redis_up.set_function(lambda: 1.0 if redis_up() else 0.0)
        self.in_flight.set_function(lambda: float(in_flight()))
        self.followed.set_function(lambda: float(followed()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
