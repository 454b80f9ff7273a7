"""Session values as JSON, and the express-session document around them.

Values go through Flask's tagged JSON, so the types Flask's own cookie
session keeps (tuple, bytes, datetime, UUID, Markup) come back as they went
in, while plain JSON values are stored as plain JSON that an Express app reads
as is. Nothing here ever uses pickle.
"""

from __future__ import annotations

import json
import typing as t

from flask.json.tag import TaggedJSONSerializer

from .errors import CorruptDocument

_tagger = TaggedJSONSerializer()


_PLAIN = (str, int, float, bool, type(None))


def tag(value: t.Any) -> t.Any:
    """Return the JSON-ready (tagged) form of a session value.

    Gives exactly what Flask's ``TaggedJSONSerializer.tag`` gives, with a fast
    path for plain JSON values, which are most of what sessions hold.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict and not (len(value) == 1 and next(iter(value)) in _tagger.tags):
        return {k: tag(v) for k, v in value.items()}
    if kind is list:
        return [tag(item) for item in value]
    return _tagger.tag(value)


# One encoder for all: json.dumps with non-default arguments builds a new
# encoder on every call.
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: t.Any) -> str:
    """Return a compact JSON string of an already tagged value.

    NaN and infinities are written as Python writes them (``NaN``): a value
    someone else stored that way is kept as it is. New values never hold
    one (:func:`check_finite`).
    """
    return _encoder.encode(value)


# Refuses NaN and infinities, which JSON (JSON.parse, PostgreSQL) cannot read.
_strict_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_finite(tagged: t.Mapping[str, t.Any], text: str, stored: t.Mapping[str, t.Any]) -> None:
    """Refuse to write a value that is or holds a float NaN or infinity.

    JSON has no form for them: Python writes ``NaN``, which Express's
    ``JSON.parse`` and PostgreSQL's json column refuse. A value exactly as
    it was stored (by another app, or an older version) is written back as
    it is, so such a value never fails a save that changes other keys.

    :param tagged: the data about to be written, in its stored form.
    :param text: ``tagged`` as JSON (:func:`dumps_data`): only when it holds
        ``NaN`` or ``Infinity`` are the values looked at.
    :param stored: the stored form of the values the session was loaded with.
    :raises TypeError: a new or changed value holds one; the message names
        its key.
    """
    if "NaN" not in text and "Infinity" not in text:  # the usual case
        return
    for key, value in tagged.items():
        if key in stored and (stored[key] is value or dumps(stored[key]) == dumps(value)):
            continue
        try:
            _strict_encoder.encode(value)
        except ValueError:
            raise TypeError(
                f"session[{key!r}] cannot be stored as JSON: NaN and infinity have no JSON"
                " form (Express and PostgreSQL cannot read them); store None or a string"
            ) from None


def dumps_data(data: t.Mapping[str, t.Any]) -> tuple[dict[str, t.Any], str]:
    """Return session data in its stored (tagged) form and as JSON text.

    :raises TypeError: a value has no JSON form; the message names its key.
    """
    try:
        tagged = {key: tag(value) for key, value in data.items()}
        return tagged, dumps(tagged)
    except (TypeError, ValueError, RecursionError):
        for key, value in data.items():
            try:
                dumps(tag(value))
            except (TypeError, ValueError, RecursionError) as exc:
                raise TypeError(f"session[{key!r}] cannot be stored as JSON: {exc}") from exc
        raise


#: Stored values nested deeper than this are treated as corrupt: nothing a
#: session needs, and deep enough to exhaust the stack when written back.
MAX_DEPTH = 100


def _untag(value: t.Any, depth: int = 0, decode: bool = True) -> tuple[t.Any, bool]:
    """Return the Python value for a stored value (a copy), and whether it
    held any object shaped like a Flask tag (``{" t": [...]}``).

    With ``decode`` false, tag-shaped objects stay plain dicts. A tag-shaped
    object whose payload does not decode stays a plain dict rather than
    failing the request.
    """
    if depth > MAX_DEPTH:
        raise CorruptDocument(f"values nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        items: dict[str, t.Any] = {}
        special = False
        for key, item in value.items():
            items[key], inner = _untag(item, depth + 1, decode)
            special |= inner
        if len(items) == 1 and not decode:
            return items, special or next(iter(items)) in _tagger.tags
        if len(items) == 1:
            key = next(iter(items))
            tag_class = _tagger.tags.get(key)
            if tag_class is not None:
                try:
                    converted = tag_class.to_python(items[key])
                except Exception:  # any decoding failure: keep the plain object
                    return items, True
                # TagDateTime gives None for text that is not a date.
                return (items if converted is None else converted), True
        return items, special
    if isinstance(value, list):
        result = []
        special = False
        for item in value:
            converted, inner = _untag(item, depth + 1, decode)
            result.append(converted)
            special |= inner
        return result, special
    return value, False


def untag(value: t.Any) -> t.Any:
    """Return the Python value for a stored (tagged) JSON value; never fails.

    Decodes every tag: only for values this extension wrote (see
    :func:`load_data`).
    """
    return _untag(value)[0]


def load_data(
    stored: t.Mapping[str, t.Any], trusted: t.Callable[[str, t.Any], bool]
) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """Return a stored session's data as Python values, and the *base* that
    change tracking compares against.

    :param trusted: called with a key and its stored value when the value
        holds objects shaped like Flask tags: whether this extension wrote
        it. Only then are the tags decoded (to tuple, Markup...); otherwise
        the value stays the plain JSON another app wrote.
    :raises CorruptDocument: the values are nested too deeply to read.

    The base is the stored form of each value as this module would write it
    (:func:`tag` of the Python value), so a value in another form (written by
    another app) compares as unchanged until the request changes it, and is
    then never rewritten behind the user's back. For plain JSON values the
    two forms are one and the same object.
    """
    data: dict[str, t.Any] = {}
    base: dict[str, t.Any] = {}
    try:
        for key, raw in stored.items():
            value, special = _untag(raw, decode=False)
            if special and trusted(key, raw):
                value = _untag(raw)[0]
            data[key] = value
            base[key] = tag(value) if special else raw
    except RecursionError:
        raise CorruptDocument(f"values nested deeper than {MAX_DEPTH} levels") from None
    return data, base


def error_kind(exc: BaseException) -> str:
    """Describe a decoding error without quoting the text it is about, so
    session contents never reach the logs.
    """
    if isinstance(exc, json.JSONDecodeError):
        return f"{type(exc).__name__}: {exc.msg} at position {exc.pos}"
    if isinstance(exc, UnicodeDecodeError):
        return f"{type(exc).__name__}: {exc.reason} at position {exc.start}"
    return type(exc).__name__
