"""The ``flask session`` command group: inspect and manage stored sessions.

Every command works on the store of the app's :class:`ConnectSession`
(``app.extensions["connect_session"].store``) and nothing else. An operation
the store does not implement, or a store that fails, is a one-line error with
exit status 1, never a traceback.

The commands are written once, synchronously, against a :class:`Target`
(the app and a synchronous view of its extension); :func:`make_group` builds
the group for a framework from a wrapper that runs a command with one:
Flask's here (:data:`session_cli`), Quart's in :mod:`.quart`.
"""

from __future__ import annotations

import collections.abc as cabc
import contextvars
import functools
import json
import sys
import typing as t

import click
from flask import current_app
from flask.cli import AppGroup
from flask.cli import with_appcontext

from .cookie import format_expires
from .cookie import parse_expires
from .cookie import utcnow
from .document import COOKIE_MEMBER
from .document import encode
from .errors import CorruptDocument
from .errors import StoreError
from .errors import describe
from .options import app_secrets
from .protect import generate_key
from .signing import unsign
from .stores.base import implements

if t.TYPE_CHECKING:
    from datetime import datetime

    from .interface import Driver
    from .protect import Protection
    from .stores.base import Document
    from .stores.base import Store
    from .users import SessionInfo

#: Session ids are base64url, so one may start with ``-``: take it as the SID
#: argument rather than as an unknown option.
_SID_SETTINGS = {"ignore_unknown_options": True}

#: ``prune`` draws a progress bar (on a terminal) when it sweeps at least this
#: many sessions itself; shorter runs finish before a bar would be useful.
PROGRESS_THRESHOLD = 100

_T = t.TypeVar("_T")


def printable(text: str) -> str:
    """Return ``text`` with every character that is not printable (control
    characters such as ESC and the 8-bit CSI, bidi overrides, separators)
    written as a Python escape (``\\x1b``), and each backslash doubled,
    so a stored value shown on a terminal can never drive it.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(char if char.isprintable() and char != "\\" else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable_json(value: object) -> str:
    """Return ``value`` as indented JSON, non-ASCII text kept readable but
    every character that is not printable written as a ``\\u`` escape (JSON
    escapes only the ASCII controls), so the output is the same JSON and
    cannot drive a terminal.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False)
    # json.dumps with ensure_ascii gives the \u form (surrogate pairs beyond
    # the BMP); outside strings the JSON text holds no such character.
    return "".join(
        char if char == "\n" or char.isprintable() else json.dumps(char)[1:-1] for char in text
    )


class Admin(t.Protocol):
    """What the commands need of the app's extension, synchronously:
    :class:`~flask_connect_session.ConnectSession` itself, or a blocking
    view of Quart's.
    """

    @property
    def store(self) -> Store:
        """The app's store."""

    def user_sessions(self, user: str | int) -> list[SessionInfo]:
        """See :meth:`ConnectSession.user_sessions`."""

    def revoke(
        self, user: str | int, handle: str | None = None, *, keep_current: bool = False
    ) -> int:
        """See :meth:`ConnectSession.revoke`."""


class Target(t.NamedTuple):
    """What a command runs on."""

    #: The application (Flask's or Quart's).
    app: t.Any
    #: Its extension, seen synchronously.
    admin: Admin


_target: contextvars.ContextVar[Target] = contextvars.ContextVar("connect_session_cli")

_F = t.TypeVar("_F", bound=cabc.Callable[..., t.Any])

#: The commands, in order: (name, command settings, callback).
_COMMANDS: list[tuple[str, dict[str, t.Any], cabc.Callable[..., None]]] = []


def _command(name: str, **settings: t.Any) -> cabc.Callable[[_F], _F]:
    """Register a command of the group (see :func:`make_group`)."""

    def register(callback: _F) -> _F:
        _COMMANDS.append((name, settings, callback))
        return callback

    return register


def make_group(
    wrap: cabc.Callable[[cabc.Callable[..., None]], cabc.Callable[..., None]],
    group_class: type[click.Group] = click.Group,
) -> click.Group:
    """Build the ``session`` command group.

    :param wrap: turns a command's callback into one that runs it with the
        app's :class:`Target` (see :func:`run_with`), as the framework
        loads the app.
    :param group_class: the framework's group class.
    """
    group = group_class("session", help="Inspect and manage the stored sessions.")
    for name, settings, callback in _COMMANDS:
        command = click.command(name, **settings)
        group.add_command(command(wrap(callback)))  # type: ignore[no-untyped-call]
    return group


def run_with(target: Target | None, callback: cabc.Callable[[], _T]) -> _T:
    """Run a command's ``callback`` on ``target`` (``None``: the app has no
    extension, a clear error).
    """
    if target is None:
        raise click.ClickException("ConnectSession is not set up on this app")
    token = _target.set(target)
    try:
        return callback()
    finally:
        _target.reset(token)


def _flask_command(callback: cabc.Callable[..., None]) -> cabc.Callable[..., None]:
    """Run ``callback`` in Flask's app context, on the app's extension."""

    @functools.wraps(callback)
    def command(*args: t.Any, **kwargs: t.Any) -> None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        extension = app.extensions.get("connect_session")
        target = None if extension is None else Target(app, extension)
        run_with(target, functools.partial(callback, *args, **kwargs))

    return t.cast("cabc.Callable[..., None]", with_appcontext(command))


def _store() -> Store:
    return _target.get().admin.store


def _run(store: Store, operation: str, call: cabc.Callable[[], _T]) -> _T:
    """Run one store operation; a missing one or a failure is a clear error.

    :raises click.ClickException: the store does not implement ``operation``
        or raised; Click prints the message and exits with status 1.
    """
    return _attempt(store, f"{operation} sessions", [(operation, call)])


def _attempt(
    store: Store, what: str, operations: cabc.Sequence[tuple[str, cabc.Callable[[], _T]]]
) -> _T:
    """Return the result of the first of ``operations`` the store implements.

    :param what: the task, for the message when the store can do none.
    :raises click.ClickException: the store implements none of them, or one
        raised; Click prints the message and exits with status 1.
    """
    name = type(store).__name__
    for operation, call in operations:
        try:
            return call()
        except NotImplementedError:
            continue
        except click.ClickException:
            raise
        except CorruptDocument as exc:
            raise click.ClickException(
                f"{name}.{operation}: corrupt session document: {exc}"
            ) from None
        except Exception as exc:
            raise click.ClickException(f"{name}.{operation} failed: {describe(exc)}") from None
    methods = " nor ".join(f"{operation}()" for operation, _ in operations)
    why = (
        f"implements neither {methods}" if len(operations) > 1 else f"does not implement {methods}"
    )
    raise click.ClickException(f"{name} cannot {what} (it {why})")


def _resolve_sid(value: str) -> str:
    """Return the session id in ``value``: a bare id, or a signed cookie value
    (``s:...`` or ``s%3A...``) verified with the app's secrets.
    """
    if not value.lower().startswith(("s:", "s%3a")):
        return value
    sid = unsign(value, app_secrets(_target.get().app))
    if sid is None:
        raise click.ClickException("the cookie value does not verify with the app's secrets")
    return sid


def _protection() -> Protection | None:
    """The app's protection at rest (hashed keys, encryption), if any."""
    driver = t.cast("Driver[t.Any]", _target.get().app.session_interface)
    return driver.core.protection


def _keys(sid: str, protection: Protection | None) -> list[str]:
    """The store keys session ``sid`` may be under: its key (its hash with
    ``CONNECT_SESSION_HASH_IDS``), and with that option ``sid`` itself, which
    is then a key as ``list`` shows it, or an id stored before the option
    was on.
    """
    if protection is None:
        return [sid]
    keys = [protection.store_key(sid)]
    if protection.hash_ids:
        keys.append(sid)
    return keys


def _find(store: Store, sid: str) -> tuple[str, Document | None]:
    """Return the store key of session ``sid`` (an id, or a key as ``list``
    shows it) and its stored document (``None``: missing; a corrupt
    document raises).
    """
    keys = _keys(sid, _protection())
    for key in keys:
        document = store.get(key)
        if document is not None:
            return key, document
    return keys[0], None


def _expires(document: Document) -> datetime | None:
    cookie = document.get(COOKIE_MEMBER)
    return parse_expires(cookie.get("expires")) if isinstance(cookie, dict) else None


def _existing_key(store: Store, sid: str) -> str | None:
    """The store key session ``sid`` is under, or ``None`` if missing."""
    for key in _keys(sid, _protection()):
        try:
            if store.get(key) is not None:
                return key
        except CorruptDocument:
            # A corrupt entry is still an entry, and deleting it a fair use.
            return key
    return None


def _size(document: Document) -> int:
    """Size in bytes of the document as JSON (about what the store keeps)."""
    return len(encode(document).encode("utf-8"))


@_command("count")
def count_command() -> None:
    """Print the number of live sessions.

    Uses the store's length(), else counts what all() returns.
    """
    store = _store()
    count = _attempt(
        store,
        "count sessions",
        [("length", store.length), ("all", lambda: len(store.all()))],
    )
    click.echo(count)


def _user_index(what: str, call: cabc.Callable[[Admin], _T]) -> _T:
    """Run ``call`` with the app's extension for a per-user operation; no
    user index or a failing store is a clear error.
    """
    try:
        return call(_target.get().admin)
    except RuntimeError as exc:
        raise click.ClickException(f"cannot {what}: {exc}") from None
    except StoreError as exc:
        raise click.ClickException(f"{exc}: {exc.__cause__!r}") from None


def _list_user(user: str, as_json: bool) -> None:
    infos = _user_index("list a user's sessions", lambda ext: ext.user_sessions(user))
    rows = [
        {
            "handle": info.handle,
            "last_seen": format_expires(info.last_seen),
            "created": format_expires(info.created),
            "ip": info.ip,
            "user_agent": info.user_agent,
        }
        for info in infos
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no sessions of user {user!r}")
    else:
        click.echo(f"{'HANDLE':<22}  {'LAST SEEN':<24}  {'IP':<15}  USER AGENT")
        for row in rows:
            # Both came from the client (the IP through a proxy's header).
            ip, agent = printable(row["ip"] or "-"), printable(row["user_agent"] or "-")
            click.echo(f"{row['handle']:<22}  {row['last_seen']:<24}  {ip:<15}  {agent}")


@_command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option("--user", default=None, help="Only this user's sessions (CONNECT_SESSION_USER_KEY).")
def list_command(as_json: bool, user: str | None) -> None:
    """List live sessions: id, cookie expiry and size in bytes.

    The expiry is the one stored in the session's cookie; stores that extend
    a session's lifetime without rewriting it (Redis' touch) may keep it
    alive longer.

    With --user, list that user's sessions from the user index instead:
    handle, last seen, IP and user agent, most recently seen first.
    """
    if user is not None:
        _list_user(user, as_json)
        return
    store = _store()
    sessions = _attempt(store, "list sessions", [("all", store.all)])
    rows: list[dict[str, t.Any]] = []
    for sid, document in sorted(sessions.items()):
        expires = _expires(document)
        rows.append(
            {
                # Another app sharing the store may have written any key.
                "id": sid if as_json else printable(sid),
                "expires": None if expires is None else format_expires(expires),
                "size": _size(document),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no sessions")
        return
    width = max(len("ID"), *(len(row["id"]) for row in rows))
    click.echo(f"{'ID':<{width}}  {'EXPIRES':<25}  SIZE")
    for row in rows:
        when = row["expires"] or "browser session"
        click.echo(f"{row['id']:<{width}}  {when:<25}  {row['size']}")


@_command("show", context_settings=_SID_SETTINGS)
@click.argument("sid")
def show_command(sid: str) -> None:
    """Print the stored document of session SID as JSON.

    SID is a session id, a signed cookie value (s%3A...), which is
    verified with the app's secrets, or with CONNECT_SESSION_HASH_IDS a key
    as list shows it. With CONNECT_SESSION_ENCRYPT the document is shown
    decrypted.
    """
    store = _store()
    sid = _resolve_sid(sid)
    key, document = _run(store, "get", lambda: _find(store, sid))
    if document is None:
        raise click.ClickException(f"no session {sid!r} in {type(store).__name__}")
    protection = _protection()
    if protection is not None:
        try:
            document = protection.open_stored(key, document)[1].document
        except CorruptDocument as exc:
            raise click.ClickException(f"corrupt session document: {exc}") from None
    click.echo(printable_json(document))


@_command("delete", context_settings=_SID_SETTINGS)
@click.argument("sid")
def delete_command(sid: str) -> None:
    """Delete session SID (an id, a signed cookie value, or with
    CONNECT_SESSION_HASH_IDS a key as list shows it).

    Fails if there is no such session; a corrupt one is deleted too.
    """
    store = _store()
    sid = _resolve_sid(sid)
    key = _run(store, "get", functools.partial(_existing_key, store, sid))
    if key is None:
        raise click.ClickException(f"no session {sid!r} in {type(store).__name__}")
    _run(store, "destroy", lambda: store.destroy(key))
    click.echo(f"deleted {printable(sid)}")


@_command("revoke")
@click.option("--user", required=True, help="The user to log out (CONNECT_SESSION_USER_KEY).")
@click.option("--handle", default=None, help="Only the session with this handle.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def revoke_command(user: str, handle: str | None, yes: bool) -> None:
    """Log USER out of all their sessions, or of the one --handle names
    (see list --user).
    """
    if not yes:
        which = f"session {handle}" if handle else "every session"
        click.confirm(f"Log user {user!r} out of {which}?", abort=True)
    count = _user_index("revoke sessions", lambda ext: ext.revoke(user, handle))
    if handle is not None and count == 0:
        raise click.ClickException(f"user {user!r} has no session {handle!r}")
    click.echo(f"revoked {count} session(s) of user {user!r}")


@_command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_command(yes: bool) -> None:
    """Delete every session, logging every user out.

    Uses the store's clear(), else destroys each session all() returns.
    """
    store = _store()
    if not yes:
        click.confirm(f"Delete every session in {type(store).__name__}?", abort=True)

    def clear() -> str:
        removed = store.clear()
        if removed is None:
            return f"cleared every session ({type(store).__name__}.clear() does not say how many)"
        return f"cleared {removed} session(s)"

    def destroy_each() -> str:
        sids = list(store.all())
        for sid in sids:
            _run(store, "destroy", functools.partial(store.destroy, sid))
        return f"cleared {len(sids)} session(s)"

    click.echo(_attempt(store, "clear sessions", [("clear", clear), ("all", destroy_each)]))


@_command("prune")
def prune_command() -> None:
    """Remove expired sessions now.

    A store that prunes (memory, files) does it itself. A store that lists
    its sessions (all()) but neither prunes nor touches is swept here: each
    session whose cookie expiry is past is destroyed, with a progress bar on
    long runs. Stores whose backend expires entries (Redis, memcached) have
    nothing to prune.
    """
    store = _store()
    name = type(store).__name__
    # The per-user index too (it must never grow without bound: docs/behaviour.rst,
    # "Users and their devices"), where the store keeps it
    # apart from its sessions.
    _run(store, "index_prune", store.index_prune)
    if implements(store, "prune"):
        removed = _run(store, "prune", store.prune)
        click.echo(f"pruned {removed} expired session(s)")
    elif implements(store, "all") and not implements(store, "touch"):
        removed = _sweep(store)
        click.echo(f"pruned {removed} expired session(s)")
    else:
        removed = _run(store, "prune", store.prune)
        click.echo(f"pruned {removed} expired session(s) ({name} leaves expiry to its backend)")


def _sweep(store: Store) -> int:
    """Destroy each session of ``store`` whose stored cookie expiry is past.

    Only for stores with :meth:`~Store.all` and without
    :meth:`~Store.touch`: such a store's lifetime for an entry is the one set
    with the document, so the document's ``cookie.expires`` is the truth.
    (A store that touches extends the lifetime without rewriting the
    document, so its stored expiry can be stale while the session is live.)
    Browser-session documents carry no expiry and are kept.
    """
    sessions = _run(store, "all", store.all)
    now = utcnow()
    removed = 0
    with click.progressbar(
        sessions.items(),
        label="Sweeping sessions",
        hidden=len(sessions) < PROGRESS_THRESHOLD,
        file=sys.stderr,
    ) as items:
        for sid, document in items:
            expires = _expires(document)
            if expires is not None and expires <= now:
                _run(store, "destroy", functools.partial(store.destroy, sid))
                removed += 1
    return removed


@_command("gen-key")
def gen_key_command() -> None:
    """Print a new random key for CONNECT_SESSION_ENCRYPT.

    Put it first in the list of keys to encrypt with it from now on; keep
    the old keys after it until every session has been written again.
    """
    click.echo(generate_key())


@_command("create-table")
@click.option(
    "--sql", "print_sql", is_flag=True, help="Print the DDL instead of running it (for Alembic)."
)
def create_table_command(print_sql: bool) -> None:
    """Create the SQLStore table and its indexes if they are missing.

    With --sql, print the CREATE statements for the app's database instead,
    for migration tools such as Alembic.
    """
    store = _store()
    create = getattr(store, "create_table", None)
    ddl = getattr(store, "ddl", None)
    if not callable(create) or not callable(ddl):
        raise click.ClickException(f"{type(store).__name__} has no table (only SQLStore has)")
    if print_sql:
        click.echo(_run(store, "ddl", ddl), nl=False)
        return
    _run(store, "create_table", create)
    click.echo(f"table {store.table.fullname} is ready")  # type: ignore[attr-defined]


#: The ``flask session`` command group, which ``ConnectSession`` adds to the app.
session_cli = make_group(_flask_command, AppGroup)
