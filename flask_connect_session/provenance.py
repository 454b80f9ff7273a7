"""Proof that a stored value was written by this extension, so that only such
values are decoded as Flask's tagged types.

Flask's tagged JSON turns ``{" m": "<b>"}`` into :class:`~markupsafe.Markup`,
which Jinja does not escape. Another app sharing the store (an Express app
that keeps client input, say) can write that shape too, so a tag-shaped value
is decoded only if the document's ``"_tagged:<key>"`` member holds a valid
MAC for it: HMAC-SHA256, under a key derived from the app's secret, of the session
id, the data key and the value's JSON. Anyone without the secret (a client
copying input into the session, an Express app changing the value) cannot
make one. Values without tags need no MAC.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import functools
import hashlib
import hmac
import json
import typing as t

from flask.json.tag import TaggedJSONSerializer

#: Bytes of HMAC-SHA256 kept (128 bits), base64url without padding.
MAC_BYTES = 16

#: Separates these MACs from every other use of the secret (cookie signing).
_CONTEXT = b"flask-connect-session\x00tagged session value"

_TAGS = frozenset(TaggedJSONSerializer().tags)

#: Integral floats beyond this are left as floats: JavaScript writes ``1.0``
#: as ``1``, and within 2**53 the two are the same number.
_MAX_EXACT = 2**53

_encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=True)


@functools.lru_cache(maxsize=32)
def _mac_key(secret: str | bytes) -> bytes:
    # HKDF-SHA256 (RFC 5869) with the context as salt and info. The secret
    # is the *message* of the extract step, never the key: HMAC(secret, m) is
    # the cookie signature of sid m, so a key derived that way would be sent
    # in a cookie to whoever got a session whose id equals m.
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    prk = hmac.new(_CONTEXT, raw, hashlib.sha256).digest()
    return hmac.new(prk, _CONTEXT + b"\x01", hashlib.sha256).digest()


def _canonical(value: t.Any) -> t.Any:
    """The value as any JSON writer would give it back once parsed: an
    integral float is the integer (Express writes ``2.0`` as ``2``); object
    members are sorted when encoded (JavaScript moves integer-like keys first).
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_EXACT:
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def value_mac(secret: str | bytes, sid: str, key: str, value: t.Any) -> str:
    """Return the MAC of the stored (tagged) ``value`` of ``key`` in session
    ``sid``, as parsed from the store's JSON.
    """
    message = _encoder.encode([sid, key, _canonical(value)]).encode("ascii")
    digest = hmac.new(_mac_key(secret), message, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_value(secret: str | bytes, sid: str, key: str, value: t.Any) -> str:
    """Return the MAC of a tagged value about to be written: that of its
    JSON form as it will be read back (dict keys become strings).
    """
    return value_mac(secret, sid, key, json.loads(json.dumps(value)))


def verify(
    secrets: cabc.Sequence[str | bytes], sid: str, key: str, value: t.Any, mac: object
) -> int | None:
    """Return the index of the secret under which ``mac`` is the MAC of
    ``value`` (see :func:`value_mac`), or ``None``. Every secret is compared
    in constant time.
    """
    if not isinstance(mac, str):
        return None
    given = mac.encode("utf-8", "surrogatepass")
    found = None
    for index, secret in enumerate(secrets):
        expected = value_mac(secret, sid, key, value).encode("ascii")
        if hmac.compare_digest(expected, given) and found is None:
            found = index
    return found


def holds_tags(value: t.Any) -> bool:
    """Whether a stored (tagged) value holds a Flask tag anywhere.

    Flask escapes a user's dict shaped like a tag (``" di"``), so in what this
    extension writes every tag-shaped object is a real tag.
    """
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _TAGS:
            return True
        return any(holds_tags(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_tags(item) for item in value)
    return False
