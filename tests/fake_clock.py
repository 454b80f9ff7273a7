"""A clock a test moves, for the session core: no sleeping, no patching of
:func:`time.time` for the whole process.

Given to the core (:class:`~flask_connect_session.core.Core`, or an app's
through :func:`use_clock`), it moves time for the core's decisions only:
cookie expiries, touch intervals, absolute timeouts, last-seen times. The
store keeps its own clock, so expiry in the store still needs real time (the
store contract tests it).
"""

from __future__ import annotations

import collections.abc as cabc
import time
import typing as t

from flask_connect_session.core import Core
from flask_connect_session.interface import Driver


class FakeClock:
    """Returns ``start`` (by default the time it was made, in whole
    milliseconds as stored times are) plus the seconds it was last
    :meth:`set` to; it never moves by itself.
    """

    def __init__(self, start: float | None = None) -> None:
        #: The time at offset 0, in seconds since the epoch.
        self.start = time.time_ns() // 1_000_000 / 1000 if start is None else start
        self.now = self.start

    def __call__(self) -> float:
        return self.now

    def set(self, seconds: float) -> None:
        """Move to ``seconds`` after :attr:`start` (earlier too)."""
        self.now = self.start + seconds


def use_clock(app: t.Any, clock: cabc.Callable[[], float]) -> None:
    """Give ``app``'s session core ``clock``, in place of the wall clock.

    Call it after ``ConnectSession(app)`` (or ``QuartConnectSession(app)``)
    and before any request (and again after
    :func:`~flask_connect_session.testing.install_store`, which rebuilds the
    core).
    """
    interface = app.session_interface
    assert isinstance(interface, Driver), "the app has no connect session"
    takeover = bool(interface.legacy)
    interface.core = Core(interface.options, interface.store, clock=clock, takeover=takeover)
