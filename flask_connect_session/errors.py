"""Exceptions raised by the extension."""

from __future__ import annotations

import re

#: redis-py puts a failed pipeline command in its error's message, arguments
#: included (a session's key, so its id, and its data): ``Command # 1 (SET
#: sess:<id> {...}) of pipeline caused error: <the server's reply>``.
_PIPELINE_COMMAND = re.compile(
    r"^(Command # \d+ \()(\S+)\s.*(\) of pipeline caused error: )", re.S
)


def describe(exc: BaseException) -> str:
    """Return ``"Type: message"`` for an exception, for logs and messages.

    ``str()`` rather than ``repr()``: some clients' ``repr`` drops the
    message (redis-py 8 gives ``network:ConnectionError`` without the host or
    the reason).
    """
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def scrub(exc: BaseException) -> None:
    """Remove what a backend's error message quotes of the command that
    failed (its arguments hold session ids and data), in place, so that the
    exception, logged or chained, shows only the command's name and the
    server's reply.
    """
    if exc.args and isinstance(exc.args[0], str):
        message = _PIPELINE_COMMAND.sub(r"\1\2 ...\3", exc.args[0], count=1)
        exc.args = (message, *exc.args[1:])


class StoreError(Exception):
    """The session store failed: the backend is down or answered with an error.

    Whatever a store raises reaches the application as this exception, with
    the original exception chained as ``__cause__``. A store error raised at
    the view's first access to :data:`flask.session` can be handled with
    ``@app.errorhandler(StoreError)``; one raised while saving reaches Flask's
    500 handling.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: object,
        operation: str,
        sid: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        #: The store that failed.
        self.store = store
        #: The store method that failed (``"get"``, ``"set"``...).
        self.operation = operation
        #: A short prefix of the session id involved, if any (never the whole id).
        self.sid_prefix = sid[:6] if sid else None
        name = type(store).__name__
        where = f" (sid {self.sid_prefix}...)" if self.sid_prefix else ""
        why = f": {describe(cause)}" if cause is not None else ""
        super().__init__(f"{name}.{operation} failed{where}{why}")


class SessionNotFound(Exception):
    """:meth:`~flask_connect_session.session.ServerSession.reload` found no
    stored session: it expired or was destroyed.

    .. versionadded:: 0.1
    """


class CorruptDocument(ValueError):
    """A store found an entry it cannot decode as a session document.

    Stores raise it (instead of a backend error) so the interface can tell a
    corrupt entry, which means "no session", from an unreachable backend,
    which is a :class:`StoreError`.

    .. versionadded:: 0.1
    """


class SessionTooLarge(ValueError):
    """A save would store a session document larger than
    ``CONNECT_SESSION_MAX_SIZE``: nothing was written, and what was stored
    stays as it was.

    It is the application's data that is too large, not the store that
    failed, so it reaches the app as this error, not as :class:`StoreError`.

    :param size: the size the stored document would have, in bytes.
    :param limit: the limit, in bytes.

    .. versionadded:: 0.1
    """

    def __init__(self, size: int, limit: int) -> None:
        #: The size the stored document would have had, in bytes.
        self.size = size
        #: The limit (``CONNECT_SESSION_MAX_SIZE``), in bytes.
        self.limit = limit
        super().__init__(
            f"the session document would be {size} bytes, more than"
            f" CONNECT_SESSION_MAX_SIZE ({limit} bytes): nothing was saved"
        )
