"""Prometheus metrics, in the app's own registry (no module-level singletons).

`qianmian serve` is often several processes: edges sharing the port (a scrape reaches any one of
them) and workers without HTTP (which process, dead-letter and send). A scrape must see the
whole bot, not whichever process the kernel picked, so the supervising edge makes them share:
`share_between_processes(directory)` before anything is counted, and the processes it starts
inherit PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode: each process writes its
values to a file there; `/metrics` on any edge adds them all up). A lone process keeps its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for it


def share_between_processes(directory: Path) -> None:
    """From now on, this process's metrics, and those of the processes it starts, live in files
    under `directory` (which must be empty of a previous run's files)."""
    os.environ[SHARED_DIR_ENV] = str(directory)
    _use_shared_values()


def _use_shared_values() -> None:
    # prometheus_client picks its value class from the environment when first imported; a process
    # that imported it before the variable was set switches here, before its first metric.
    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.MultiProcessValue()


class Metrics:
    def __init__(self) -> None:
        self.shared_dir = os.environ.get(SHARED_DIR_ENV) or None
        if self.shared_dir:
            _use_shared_values()
        self.registry = CollectorRegistry()
        self.callbacks_received = Counter(
            "qianmian_callbacks_received_total",
            "Callbacks verified and recorded (first delivery)",
            ["channel"],
            registry=self.registry,
        )
        self.callbacks_duplicate = Counter(
            "qianmian_callbacks_duplicate_total",
            "Callbacks already recorded (Tencent retries)",
            ["channel"],
            registry=self.registry,
        )
        self.callbacks_rejected = Counter(
            "qianmian_callbacks_rejected_total",
            "Callbacks refused, by reason",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "qianmian_event_processing_seconds",
            "Time to process one recorded callback (handlers + commit)",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter("qianmian_dead_letters_total", "Callbacks dead-lettered", registry=self.registry)
        self.handler_errors = Counter(
            "qianmian_handler_errors_total",
            "Errors reported by handlers and jobs",
            ["where"],
            registry=self.registry,
        )

        self.outbox_messages = Counter(
            "qianmian_outbox_messages_total",
            "Outbox rows handled (portrait cards, welcomes, answers), by outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )

        self.claim_link_taps = Counter(
            "qianmian_claim_link_taps_total",
            "Coupon claim links tapped, by answer (redirected to WeChat, or why not)",
            ["outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or, when shared, every process's summed."""
        if self.shared_dir is None:
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone, path=self.shared_dir)
        return generate_latest(everyone)
