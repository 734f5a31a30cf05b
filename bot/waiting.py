"""Waiting on an event with a timeout, in a task that may be cancelled.

Not `asyncio.wait_for`: on Python 3.11 it returns the inner result when a cancel arrives in the
few loop turns after the inner wait finished (the cancel is lost; CPython gh-86296, fixed in
3.12). Our background loops (`while True: ... wait ...`) are stopped by cancelling them, and one
whose cancel was lost never stops: a shutdown then waits forever. `asyncio.timeout` keeps the
cancel.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """True once `event` is set, False after `seconds`; a cancel always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
