"""The stored session document: the user's data plus the reserved members.

A stored session is the JSON object express-session keeps: the user's data
(each value in Flask's tagged JSON form, see :mod:`.serialization`) plus a
``"cookie"`` member. This extension adds a few members of its own, all
named here and handled only here:

``"cookie"``
    express-session's cookie (:class:`~.cookie.CookieDocument`).
``"_created"``
    creation time, ms since the epoch (``CONNECT_SESSION_ABSOLUTE_TIMEOUT``).
``"_device"``
    the session's user, first and last seen times, user agent and IP
    (``CONNECT_SESSION_USER_KEY``, see :mod:`.users`).
``"_touched"``
    when a browser-session cookie's store lifetime was last extended
    (``CONNECT_SESSION_TOUCH_AFTER``), which its ``expires`` cannot tell.
``"_tagged:<key>"``
    for each data key whose value holds Flask tags, the MAC proving this
    extension wrote it (see :mod:`.provenance`): one member per key, so each
    MAC is set and removed with its key's own change.

An Express app keeps the underscore members as ordinary session values.
Everything here is pure: no store, no request, no clock.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import json
import typing as t

from .cookie import lifetime_seconds
from .cookie import parse_expires
from .errors import CorruptDocument
from .serialization import dumps
from .serialization import error_kind

if t.TYPE_CHECKING:
    from .cookie import CookieDocument

#: A session document as stores move it: a JSON object.
Document = dict[str, t.Any]
#: The ``"_device"`` member.
Device = dict[str, t.Any]

#: Document member holding the cookie, as in express-session.
COOKIE_MEMBER = "cookie"
#: Document member holding the creation time (ms since the epoch).
CREATED_MEMBER = "_created"
#: Document member holding the user's session metadata.
DEVICE_MEMBER = "_device"
#: Document member holding when a browser-session cookie's session was last
#: touched (ms since the epoch).
TOUCHED_MEMBER = "_touched"
#: Prefix of the members holding the MAC of a tagged value: ``"_tagged:<key>"``.
TAGGED_PREFIX = "_tagged:"
#: Members of a document that are not the user's data, besides those
#: starting with :data:`TAGGED_PREFIX` (see :func:`is_reserved`).
RESERVED_MEMBERS = frozenset((COOKIE_MEMBER, CREATED_MEMBER, DEVICE_MEMBER, TOUCHED_MEMBER))

#: Times beyond this (ms since the epoch, year 5138) are unreadable.
_MAX_TIME = 10**14


class _IfUnchangedText(str):
    """A string member value to write only if the stored member is still
    :attr:`previous` (see :func:`if_unchanged`).
    """

    previous: t.Any


class _IfUnchangedObject(dict[str, t.Any]):
    """An object member value to write only if the stored member is still
    :attr:`previous` (see :func:`if_unchanged`).
    """

    __slots__ = ("previous",)
    previous: t.Any


_CONDITIONAL = frozenset((_IfUnchangedText, _IfUnchangedObject))


def if_unchanged(value: t.Any, previous: t.Any) -> t.Any:
    """Mark a member value of a merge's changes as conditional: the merge
    writes it only if the member is still stored as ``previous`` (what the
    request read), else it leaves the member as it is, so another request's
    change of it wins.

    Protection at rest (:mod:`.protect`) re-encrypts members this way. The
    value is a ``str`` or ``dict`` subclass: a store that does not know the
    mark writes it like any value (the re-encryption then wins a race it
    should lose, as any write would); :func:`~.stores.base.apply_changes`
    honours it, so every built-in store does.
    """
    marked: _IfUnchangedText | _IfUnchangedObject
    marked = _IfUnchangedText(value) if isinstance(value, str) else _IfUnchangedObject(value)
    marked.previous = previous
    return marked


def is_conditional(value: object) -> bool:
    """Whether a member value was marked with :func:`if_unchanged`."""
    return type(value) in _CONDITIONAL


def unconditional(changes: cabc.Mapping[str, t.Any]) -> bool:
    """Whether no member value of ``changes`` is conditional (the usual case)."""
    return _CONDITIONAL.isdisjoint(map(type, changes.values()))


def applies(value: t.Any, document: cabc.Mapping[str, t.Any], name: str) -> bool:
    """Whether a merge writes ``value`` as member ``name`` of the stored
    ``document``: always, unless the value is conditional and the member
    changed (or went) since it was read; compared as JSON, so ``1`` and
    ``true`` differ.
    """
    if type(value) not in _CONDITIONAL:
        return True
    return name in document and dumps(document[name]) == dumps(value.previous)


def is_reserved(key: object) -> bool:
    """Whether ``key`` names a document member that is not the user's data,
    so it cannot be a session data key.
    """
    return key in RESERVED_MEMBERS or (isinstance(key, str) and key.startswith(TAGGED_PREFIX))


def tagged_member(key: str) -> str:
    """Return the document member holding the MAC of data key ``key``'s value."""
    return TAGGED_PREFIX + key


def check_document(document: object) -> Document:
    """Return ``document`` if it is a session document.

    :raises CorruptDocument: it is not a JSON object with an object
        ``"cookie"`` member.
    """
    if not isinstance(document, dict):
        raise CorruptDocument(f"not a JSON object but {type(document).__name__}")
    if not isinstance(document.get(COOKIE_MEMBER), dict):
        raise CorruptDocument("no object 'cookie' member")
    return document


def decode(text: str | bytes) -> Document:
    """Parse a stored document; for stores that keep JSON text.

    :raises CorruptDocument: the text is not JSON or not a session document.
    """
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CorruptDocument(f"not JSON ({len(text)} bytes): {error_kind(exc)}") from None
    return check_document(document)


def encode(document: t.Mapping[str, t.Any]) -> str:
    """Return a document as compact JSON text; for stores that keep text."""
    return dumps(document)


def device_user(device: object) -> str | None:
    """Return the user a stored ``"_device"`` member names, if it is one."""
    user = device.get("user") if isinstance(device, dict) else None
    return user if isinstance(user, str) else None


def stamp(document: cabc.Mapping[str, t.Any], member: str = CREATED_MEMBER) -> int | None:
    """Return a time member of a document (ms since the epoch), or ``None``
    if it has none that is a plausible number.
    """
    value = document.get(member)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 <= value <= _MAX_TIME else None  # NaN compares False


def last_touch(
    document: cabc.Mapping[str, t.Any], browser_lifetime: float
) -> tuple[float, float] | None:
    """Return when a document's store lifetime was last extended (ms since
    the epoch) and the lifetime (seconds) that gave it, or ``None`` if it
    cannot tell.

    A touch resets the cookie to now plus its original max age, so for an
    expiring cookie that time is ``expires - originalMaxAge``; a
    browser-session cookie has the ``"_touched"`` member instead, and the
    store's lifetime for it, ``browser_lifetime``.
    """
    cookie = document[COOKIE_MEMBER]
    expires = parse_expires(cookie.get("expires"))
    if expires is None:
        touched = stamp(document, TOUCHED_MEMBER)
        return None if touched is None else (touched, browser_lifetime)
    original = lifetime_seconds(cookie.get("originalMaxAge"))
    return None if original is None else ((expires.timestamp() - original) * 1000, original)


@dataclasses.dataclass
class Stored:
    """A stored document taken apart: the user's values as stored, and the
    reserved members.
    """

    #: The data members, in their stored (tagged JSON) form.
    values: dict[str, t.Any]
    #: The ``"_tagged:<key>"`` members, by data key (whatever their values).
    macs: dict[str, t.Any]
    #: The ``"cookie"`` member.
    cookie: dict[str, t.Any]
    #: The ``"_device"`` member, if it is an object.
    device: Device | None
    #: The creation time, if plausible.
    created: int | None


def split(document: cabc.Mapping[str, t.Any]) -> Stored:
    """Take a checked document (see :func:`check_document`) apart."""
    values: dict[str, t.Any] = {}
    macs: dict[str, t.Any] = {}
    skip = len(TAGGED_PREFIX)
    for key, value in document.items():
        if key.startswith(TAGGED_PREFIX):
            macs[key[skip:]] = value
        elif key not in RESERVED_MEMBERS:
            values[key] = value
    device = document.get(DEVICE_MEMBER)
    return Stored(
        values=values,
        macs=macs,
        cookie=document[COOKIE_MEMBER],
        device=device if isinstance(device, dict) else None,
        created=stamp(document),
    )


class Revision(t.NamedTuple):
    """What one save writes besides the user's values: the reserved members
    as they are to be stored.
    """

    #: The cookie member.
    cookie: CookieDocument
    #: The ``"_device"`` member, ``None`` for none.
    device: Device | None
    #: The creation time to store, ``None`` to leave it as it is (or absent).
    created: int | None
    #: The touch time to store (browser-session cookies with a touch
    #: interval), ``None`` for none.
    touched: int | None


def assemble(
    values: cabc.Mapping[str, t.Any], macs: cabc.Mapping[str, str], revision: Revision
) -> Document:
    """Return the whole document of a session stored for the first time.

    :param values: the data in stored (tagged) form.
    :param macs: the MAC of each value that holds tags, by data key.
    """
    document: Document = dict(values)
    document.update((tagged_member(key), mac) for key, mac in macs.items())
    document[COOKIE_MEMBER] = revision.cookie
    if revision.touched is not None:
        document[TOUCHED_MEMBER] = revision.touched
    if revision.created is not None:
        document[CREATED_MEMBER] = revision.created
    if revision.device is not None:
        document[DEVICE_MEMBER] = revision.device
    return document


def changed_keys(
    base: cabc.Mapping[str, t.Any], values: cabc.Mapping[str, t.Any]
) -> tuple[dict[str, t.Any], list[str]]:
    """Return the data members a save must write (changed or new) and the
    keys it must remove, comparing the stored form of each value.
    """
    # An untouched plain value is the very object loaded: no JSON needed.
    changes = {
        key: value
        for key, value in values.items()
        if key not in base or (base[key] is not value and dumps(base[key]) != dumps(value))
    }
    return changes, [key for key in base if key not in values]


class Merge(t.NamedTuple):
    """The members one save of a stored session writes and removes
    (:meth:`~flask_connect_session.Store.merge`), and the MAC members the
    document holds afterwards.
    """

    #: Members to set.
    changes: dict[str, t.Any]
    #: Members to remove.
    removed: list[str]
    #: The ``"_tagged:<key>"`` members stored once the merge is done, by key.
    stored_macs: dict[str, t.Any]


def merge(
    changes: dict[str, t.Any],
    removed: list[str],
    macs: cabc.Mapping[str, str],
    stored_macs: cabc.Mapping[str, t.Any],
    revision: Revision,
    old_device: object,
) -> Merge:
    """Return the merge of a save of a stored session.

    :param changes: the changed data members (see :func:`changed_keys`),
        extended in place with the reserved members.
    :param removed: the removed data keys, extended in place likewise.
    :param macs: the MAC of every value holding tags after the save, by key.
    :param stored_macs: the MAC members as last loaded or saved, by key.
    :param old_device: the ``"_device"`` member as last loaded or saved.
    """
    written = [*changes, *removed]
    # Each MAC is its own member, merged with its key's change.
    for key, mac in macs.items():
        if stored_macs.get(key) != mac:
            changes[tagged_member(key)] = mac
    removed += [tagged_member(key) for key in written if key in stored_macs and key not in macs]
    kept = {key: mac for key, mac in stored_macs.items() if key not in written}
    changes[COOKIE_MEMBER] = revision.cookie
    if revision.device is not old_device:
        if revision.device is None:
            removed.append(DEVICE_MEMBER)
        else:
            changes[DEVICE_MEMBER] = revision.device
    if revision.touched is not None:
        changes[TOUCHED_MEMBER] = revision.touched
    if revision.created is not None:
        changes[CREATED_MEMBER] = revision.created
    return Merge(changes, removed, {**kept, **macs})
