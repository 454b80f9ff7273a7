"""Blinker signals of a session's life, used like Flask's own signals.

Each is sent with the app as sender, after the store change it reports
succeeded, with the keyword arguments ``handle`` (the session's
:func:`~flask_connect_session.users.handle`) and ``user`` (the
``CONNECT_SESSION_USER_KEY`` value as a str, or ``None``)::

    from flask_connect_session import session_destroyed

    @session_destroyed.connect_via(app)
    def audit(app, handle, user, reason, **extra):
        app.logger.info("session %s of %s ended: %s", handle, user, reason)
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A new session was stored for the first time. Extra keyword argument:
#: ``session`` (:data:`flask.session`).
#:
#: .. versionadded:: 0.1
session_created = _signals.signal("session-created")

#: :meth:`~flask_connect_session.session.ServerSession.regenerate` moved a
#: stored session to a new id, now stored. Extra keyword arguments:
#: ``session`` and ``old_handle`` (the handle of the old id).
#:
#: .. versionadded:: 0.1
session_regenerated = _signals.signal("session-regenerated")

#: A stored session was removed. Extra keyword argument: ``reason``:
#: ``"destroy"`` (``session.destroy()``), ``"unset"`` (emptied during a
#: request, with ``CONNECT_SESSION_UNSET = "destroy"``), ``"revoke"``
#: (:meth:`~flask_connect_session.ConnectSession.revoke` or ``flask session
#: revoke``) or ``"timeout"`` (``CONNECT_SESSION_ABSOLUTE_TIMEOUT``).
#:
#: .. versionadded:: 0.1
session_destroyed = _signals.signal("session-destroyed")
