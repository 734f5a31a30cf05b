"""Prometheus metrics of one process, in the app's own registry (no module-level singletons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
