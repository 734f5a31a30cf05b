"""A benchmark stopped with SIGTERM (`timeout`, `pkill`, a CI job's end) still stops what it started."""

import signal


def stop_children_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does: `asyncio.run` then cancels the main task
    and its `finally` blocks terminate the servers the bench started. By default SIGTERM ends
    Python at once, and a bare server or a `serve` was left running, holding its port and CPU on
    the machine the next benchmark measures."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
