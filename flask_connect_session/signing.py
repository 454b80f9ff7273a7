"""Session ids and the signed cookie value, in express-session's format.

The cookie value is ``"s:" + sid + "." + signature``, where the signature is
the standard-alphabet base64 of HMAC-SHA256(secret, sid) without padding (the
``cookie-signature`` package), percent-encoded like JavaScript's
``encodeURIComponent``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import typing as t
from base64 import b64encode
from urllib.parse import quote
from urllib.parse import unquote

from itsdangerous import Signer

if t.TYPE_CHECKING:
    import collections.abc as cabc

    from werkzeug.sansio.request import Request

#: Cookie values longer than this are ignored unread: browsers cap a cookie
#: at about 4 KiB, and a longer value can only be an attack or garbage.
MAX_COOKIE_LENGTH = 4096

# Characters ``encodeURIComponent`` leaves alone besides the ones ``quote``
# always keeps (letters, digits and ``_.-~``).
_URI_COMPONENT_SAFE = "!*'()"

Secret = str | bytes


def generate_sid(request: Request | None = None) -> str:
    """Return a new random session id: 24 random bytes, base64url (32 chars).

    This is express-session's default ``genid``.

    :param request: the current request; unused, accepted so this function
        has the ``genid`` signature.
    """
    return secrets.token_urlsafe(24)


@functools.lru_cache(maxsize=32)
def _key(secret: Secret) -> bytes:
    # key_derivation="none" makes the HMAC key the secret itself, as in
    # cookie-signature; itsdangerous' default would salt and derive it.
    signer = Signer(secret, key_derivation="none", digest_method=hashlib.sha256)
    return signer.derive_key()


def signature(sid: str, secret: Secret) -> str:
    """Return the cookie-signature signature of ``sid`` under ``secret``."""
    # The key itsdangerous derives (key_derivation="none": the secret
    # itself), HMAC-SHA256 in one C call, and the standard base64 alphabet
    # cookie-signature uses (Signer.get_signature would give the URL-safe one).
    digest = hmac.digest(_key(secret), sid.encode("utf-8"), "sha256")
    return b64encode(digest).rstrip(b"=").decode("ascii")


#: Characters ``encodeURIComponent`` leaves as they are.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~!*'()-]*")


def sign(sid: str, secret: Secret) -> str:
    """Return the cookie value for ``sid``: signed, prefixed and encoded.

    :param sid: the session id.
    :param secret: the signing secret (the first of the configured ones).
    """
    sig = signature(sid, secret)
    if _UNRESERVED.fullmatch(sid):
        # The usual case (ids from generate_sid): only the prefix's ":" and
        # the signature's base64 "+" and "/" need escaping, which is what
        # quote() would do, without its cost on every new session.
        return f"s%3A{sid}.{sig.replace('+', '%2B').replace('/', '%2F')}"
    return quote(f"s:{sid}.{sig}", safe=_URI_COMPONENT_SAFE)


def _unquote(value: str) -> str:
    """``encodeURIComponent``'s inverse: malformed escapes come back as
    U+FFFD, which then fails the signature check.
    """
    # The usual case: the only escapes are those sign() makes, undone
    # without unquote()'s cost on every request.
    plain = value.replace("%3A", ":").replace("%2B", "+").replace("%2F", "/")
    return plain if "%" not in plain else unquote(value, errors="replace")


def cookie_value(header: str, name: str) -> str | None:
    """Return the value of the first cookie called ``name`` in a ``Cookie``
    request header, as the ``cookie`` package express uses parses it
    (surrounding double quotes removed), or ``None``.

    Reads only the one cookie, which is cheaper than parsing them all.
    """
    if name not in header:
        return None
    for pair in header.split(";"):
        key, eq, value = pair.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            if len(value) > 1 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def unsign(value: str, secrets: cabc.Sequence[Secret]) -> str | None:
    """Return the session id in a cookie value, or ``None`` if it is not valid.

    Accepts the percent-encoded and the plain form. A value without the
    ``s:`` prefix, with no signature, that is too long, or whose signature
    verifies under none of ``secrets`` gives ``None``; this never raises for
    any client input.

    :param value: the raw cookie value from the request.
    :param secrets: the secrets to try, in order.
    """
    if not value or len(value) > MAX_COOKIE_LENGTH:
        return None
    if "%" in value:
        value = _unquote(value)
    if not value.startswith("s:"):
        return None
    sid, dot, sig = value[2:].rpartition(".")
    if not dot or not sid:
        return None
    try:
        given = sig.encode("utf-8")
        valid = False
        for secret in secrets:
            expected = signature(sid, secret).encode("ascii")
            # Check every secret so the time taken does not reveal which matched.
            valid |= hmac.compare_digest(expected, given)
    except UnicodeError:  # lone surrogates: not something we ever signed
        return None
    return sid if valid else None
