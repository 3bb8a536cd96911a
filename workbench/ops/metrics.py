"""Prometheus metrics: every Workbench metric is defined once here, and ``exposition()`` renders
them for a `/metrics` endpoint.

Counters and histograms are updated in memory on the code paths that cause them (cheap: no
database call). Gauges about the queue are read from the database only when scraped, by a
collector registered with ``register_database_collector``. A process that forks workers (the
Celery worker) sets ``PROMETHEUS_MULTIPROC_DIR`` before forking, and ``exposition()`` then
merges the values every process wrote there.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

__all__ = ["MULTIPROC_ENV", "exposition"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format and its content type, ready to serve.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the values come from every process that wrote to
    that folder (a forking worker and its children); otherwise from this process alone.
    """
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
