"""The two helpers every harness, test and the demo share: a free loopback port and a polling wait."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """:func:`wait_for` gave up; the message names what was awaited and the last value seen.

    An ``AssertionError``, so that a test waiting on something fails rather than errors.
    """


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now (the kernel picks it; a small race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], T], timeout: float = 60, interval: float = 0.5, *,
             alive: Callable[[], None] | None = None,
             error: Callable[[str], BaseException] = WaitTimeout) -> T:
    """Poll ``check`` every ``interval`` seconds until it returns something truthy, and return that.

    ``check`` runs at least once, and once more after the deadline passes. ``alive``, when given, is called before
    each check and should raise when a process the wait depends on has died.

    Raises:
        whatever ``error(message)`` builds (:class:`WaitTimeout` by default) after ``timeout`` seconds; the message
        names ``what`` and the last value ``check`` returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive:
            alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what} (last: {result!r})")
        time.sleep(interval)
