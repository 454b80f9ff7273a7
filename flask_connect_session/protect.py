"""Protection at rest: session ids hashed and session data encrypted in the
store (``CONNECT_SESSION_HASH_IDS``, ``CONNECT_SESSION_ENCRYPT``).

A :class:`Protection` sits between the session core and the store. It gives
the key a session is stored under (:meth:`~Protection.store_key`: the id, or
the base64url SHA-256 of it) and seals documents on their way to the store
and opens them on their way back: every member but ``"cookie"`` becomes one
AES-256-GCM ciphertext, bound to the member's name and to the hashed session
id, so the stores' merges (which write members one by one) keep working on
sealed documents unchanged. ``docs/protection.rst`` describes the format
precisely enough for another language; ``node/protect.js`` is the Express
side of it.

With both options off there is no :class:`Protection` at all: the core
checks for ``None`` and pays nothing more.
"""

from __future__ import annotations

import binascii
import collections.abc as cabc
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import typing as t

from .document import COOKIE_MEMBER
from .document import DEVICE_MEMBER
from .document import if_unchanged
from .errors import CorruptDocument
from .serialization import dumps
from .serialization import error_kind
from .stores.base import to_utf8

if t.TYPE_CHECKING:
    from .document import Document

#: The version tag that starts every sealed value (and the associated data).
VERSION = "fcs1"
#: What a sealed member value starts with.
SEALED_PREFIX = VERSION + "."
#: The member of a sealed ``"_device"`` object holding its ciphertext.
SEALED_MEMBER = "sealed"
#: Shortest accepted encryption key, in characters.
MIN_KEY_LENGTH = 32
#: HKDF-SHA256 salt of every derived key.
HKDF_SALT = b"flask-connect-session"
#: HKDF info of the AES-256-GCM key.
HKDF_INFO_AES = b"flask-connect-session aes-256-gcm"
#: HKDF info of the key id written in each ciphertext.
HKDF_INFO_ID = b"flask-connect-session key id"
#: Bytes of a key id (8 base64url characters).
KEY_ID_BYTES = 6
#: Characters of a key id.
KEY_ID_LENGTH = 8
#: Bytes of an AES-GCM nonce.
NONCE_BYTES = 12
#: Bytes of an AES-GCM tag.
TAG_BYTES = 16
#: Length of a hashed id: unpadded base64url of 32 bytes.
HASHED_LENGTH = 43

_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def hash_id(sid: str) -> str:
    """Return the hashed form of a session id: the SHA-256 of its UTF-8
    bytes, base64url without padding (43 characters).

    It is the key of the session in the store with
    ``CONNECT_SESSION_HASH_IDS``, and what the encryption binds each value
    to, with or without it.
    """
    return _b64encode(hashlib.sha256(sid.encode("utf-8", "surrogatepass")).digest())


def looks_hashed(key: str) -> bool:
    """Whether a store key has the shape of a hashed id (43 base64url
    characters), so that with ``CONNECT_SESSION_HASH_IDS`` it is taken for
    one; any other key is a session id stored before the option was on.
    """
    return len(key) == HASHED_LENGTH and _BASE64URL.issuperset(key)


def generate_key() -> str:
    """Return a new random encryption key for ``CONNECT_SESSION_ENCRYPT``
    (32 random bytes, base64url: 43 characters).

    .. versionadded:: 0.1
    """
    return secrets.token_urlsafe(32)


# base64url through binascii directly: the base64 module's wrappers cost
# more than the decryption of a small value. "+" and "/" are not base64url:
# they become "*", which strict decoding refuses.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_+/", b"+/**")


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url.

    :raises ValueError: it is not (``binascii.Error`` and
        ``UnicodeEncodeError`` are ``ValueError``).
    """
    data = text.encode("ascii").translate(_FROM_URLSAFE)
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)


_json_decode = json.JSONDecoder().decode


def _utf8(name: str) -> bytes:
    """A member name as UTF-8, a lone surrogate (which Node cannot encode)
    as U+FFFD, as Node's ``Buffer.from(name)`` writes it.
    """
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        fixed = name.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed.encode("utf-8")


def associated_data(hashed: str, name: str) -> bytes:
    """Return the data each ciphertext is bound to: the format version, the
    hashed session id and the member name, so a value moved to another
    session or another member fails to decrypt.
    """
    return _aad_prefix(hashed) + _utf8(name)


def _aad_prefix(hashed: str) -> bytes:
    """The associated data of every member of session ``hashed``, but the name."""
    return b"%s\x00%s\x00" % (VERSION.encode(), hashed.encode("ascii"))


class _Key:
    """One encryption key, derived with HKDF-SHA256."""

    __slots__ = ("id", "aead")

    def __init__(self, secret: str, aead_class: t.Any) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        material = secret.encode("utf-8")

        def derive(info: bytes, length: int) -> bytes:
            kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=HKDF_SALT, info=info)
            return kdf.derive(material)

        #: The key id written in each ciphertext (8 base64url characters).
        self.id = _b64encode(derive(HKDF_INFO_ID, KEY_ID_BYTES))
        self.aead = aead_class(derive(HKDF_INFO_AES, 32))


def _aesgcm(setting: str) -> tuple[t.Any, type[Exception]]:
    """``cryptography``'s AES-GCM class and its exception for a tag that
    does not verify.
    """
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ValueError(
            f"{setting}: encryption needs the 'cryptography' package"
            " (the [encrypt] extra): pip install cryptography"
        ) from None
    return AESGCM, InvalidTag


@dataclasses.dataclass
class Opened:
    """A document as the store holds it, opened."""

    #: The document in the clear.
    document: Document
    #: The members to seal anew at the next write (plain, or under a key
    #: that is not the first), by name: their stored value and their value
    #: in the clear.
    stale: dict[str, tuple[t.Any, t.Any]]


class Protection:
    """Hashes the keys sessions are stored under and encrypts what they hold.

    :param hash_ids: store each session under :func:`hash_id` of its id.
    :param keys: encryption keys, the first encrypts, all decrypt; none: no
        encryption.
    :param setting: the config key named in errors.
    :param nonce: returns a new nonce of the given length; tests pass a
        fixed one for reproducible output.
    :raises ValueError: two keys have the same key id, or ``cryptography``
        is missing. (The options check the keys' length.)

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        hash_ids: bool = False,
        keys: cabc.Sequence[str] = (),
        *,
        setting: str = "CONNECT_SESSION_ENCRYPT",
        nonce: cabc.Callable[[int], bytes] = os.urandom,
    ) -> None:
        #: Whether sessions are stored under their hashed ids.
        self.hash_ids = hash_ids
        #: Whether values are encrypted.
        self.encrypts = bool(keys)
        self._nonce = nonce
        self._keys: dict[str, _Key] = {}
        self._first: _Key | None = None
        self._invalid_tag: type[Exception] = Exception
        if keys:
            aead, self._invalid_tag = _aesgcm(setting)
            for secret in keys:
                key = _Key(secret, aead)
                if key.id in self._keys:
                    raise ValueError(f"{setting}: two keys have the same key id; make a new key")
                self._keys[key.id] = key
            self._first = next(iter(self._keys.values()))

    def __repr__(self) -> str:
        # Never the keys.
        return f"<Protection hash_ids={self.hash_ids} keys={len(self._keys)}>"

    # -- keys ----------------------------------------------------------------

    def store_key(self, sid: str) -> str:
        """Return the key the store keeps session ``sid`` under."""
        return hash_id(sid) if self.hash_ids else sid

    def hashed(self, key: str) -> str:
        """Return the hashed id of the session stored under ``key``.

        With ``hash_ids``, a key that does not look hashed
        (:func:`looks_hashed`) is an id stored before the option was on.
        """
        if self.hash_ids and looks_hashed(key):
            return key
        return hash_id(key)

    def hashed_ids(self, key: str) -> tuple[str, ...]:
        """Return the hashed ids the session stored under ``key`` may have,
        the likelier first: :meth:`hashed`, and with ``hash_ids`` for a key
        shaped like a hash, also the hash of that key, in case it is a
        43-character id stored before the option was on (a listing of the
        user index tries both before it gives up on a document).
        """
        hashed = self.hashed(key)
        return (hashed, hash_id(key)) if hashed == key else (hashed,)

    def open_stored(self, key: str, stored: cabc.Mapping[str, t.Any]) -> tuple[str, Opened]:
        """Open the document stored under ``key`` with the hashed id it is
        bound to, trying each of :meth:`hashed_ids`; return that hashed id
        and the document opened.

        :raises CorruptDocument: it opens with none of them (the error of
            the likeliest).
        """
        first, *others = self.hashed_ids(key)
        try:
            return first, self.open(first, stored)
        except CorruptDocument:
            for hashed in others:
                with contextlib.suppress(CorruptDocument):
                    return hashed, self.open(hashed, stored)
            raise

    # -- sealing -------------------------------------------------------------

    def seal_value(self, hashed: str, name: str, value: t.Any) -> t.Any:
        """Return the stored form of member ``name``'s ``value``.

        ``"cookie"`` stays as it is; a ``"_device"`` object keeps its
        ``"user"`` readable beside its ciphertext (the SQL store files rows
        by it); any other member becomes one sealed string.
        """
        if name == COOKIE_MEMBER or self._first is None:
            return value
        if name == DEVICE_MEMBER and isinstance(value, dict):
            user = value.get("user")
            if isinstance(user, str):
                return {"user": user, SEALED_MEMBER: self._encrypt(hashed, name, value)}
        return self._encrypt(hashed, name, value)

    def _encrypt(self, hashed: str, name: str, value: t.Any) -> str:
        key = self._first
        assert key is not None
        nonce = self._nonce(NONCE_BYTES)
        plain = to_utf8(dumps(value))
        sealed = key.aead.encrypt(nonce, plain, associated_data(hashed, name))
        return f"{SEALED_PREFIX}{key.id}.{_b64encode(nonce + sealed)}"

    def seal(self, hashed: str, document: cabc.Mapping[str, t.Any]) -> Document:
        """Return a whole document as the store is to keep it."""
        if self._first is None:
            return dict(document)
        return {name: self.seal_value(hashed, name, value) for name, value in document.items()}

    def seal_changes(
        self,
        hashed: str,
        changes: cabc.Mapping[str, t.Any],
        removed: cabc.Collection[str],
        stale: cabc.Mapping[str, tuple[t.Any, t.Any]],
    ) -> dict[str, t.Any]:
        """Return the members a merge writes: ``changes`` sealed, plus each
        ``stale`` member the merge does not otherwise write, sealed under the
        first key *if it is still stored as it was read* (see
        :func:`~flask_connect_session.document.if_unchanged`): a concurrent
        request's change of that member wins over the re-encryption.
        """
        sealed = {name: self.seal_value(hashed, name, value) for name, value in changes.items()}
        for name, (stored, value) in stale.items():
            if name not in sealed and name not in removed:
                sealed[name] = if_unchanged(self.seal_value(hashed, name, value), stored)
        return sealed

    # -- opening -------------------------------------------------------------

    def open(self, hashed: str, stored: cabc.Mapping[str, t.Any]) -> Opened:
        """Open a stored (checked) document.

        Plain members are read as they are (a document stored before
        encryption was on, or by an app without it) and, with encryption,
        listed as stale, as are members sealed under a key that is not the
        first.

        :raises CorruptDocument: a sealed value does not decrypt (tampered,
            moved from another session or member, under no configured key)
            or is sealed while no key is configured.
        """
        document: Document = {}
        stale: dict[str, tuple[t.Any, t.Any]] = {}
        first = self._first
        prefix = _aad_prefix(hashed)
        for name, value in stored.items():
            if name == COOKIE_MEMBER:
                document[name] = value
                continue
            opened, key_id = self._open_value(prefix, name, value)
            document[name] = opened
            if first is not None and key_id != first.id:
                stale[name] = (value, opened)
        return Opened(document, stale)

    def _open_value(self, prefix: bytes, name: str, value: t.Any) -> tuple[t.Any, str | None]:
        """Return a stored member's value in the clear and the id of the key
        it was sealed under (``None``: it was plain).

        :param prefix: the session's :func:`_aad_prefix`.
        """
        if isinstance(value, str):
            if value.startswith(SEALED_PREFIX):
                return self._decrypt(prefix, name, value)
        elif name == DEVICE_MEMBER and isinstance(value, dict):
            sealed = value.get(SEALED_MEMBER)
            if isinstance(sealed, str) and sealed.startswith(SEALED_PREFIX):
                device, key_id = self._decrypt(prefix, name, sealed)
                if (
                    len(value) != 2
                    or not isinstance(device, dict)
                    or device.get("user") != value.get("user")
                ):
                    raise CorruptDocument(f"{DEVICE_MEMBER!r} does not match its ciphertext")
                return device, key_id
        return value, None

    def _decrypt(self, prefix: bytes, name: str, value: str) -> tuple[t.Any, str]:
        """Decrypt sealed ``value`` of member ``name``; return it and its key id."""
        if not self._keys:
            raise CorruptDocument(
                "a member is encrypted but CONNECT_SESSION_ENCRYPT configures no key"
            )
        # "fcs1." + 8-character key id + "." + payload
        start = len(SEALED_PREFIX)
        key_id, dot = value[start : start + KEY_ID_LENGTH], start + KEY_ID_LENGTH
        key = self._keys.get(key_id)
        if key is None or value[dot : dot + 1] != ".":
            raise CorruptDocument("a member is encrypted under a key that is not configured")
        try:
            raw = _b64decode(value[dot + 1 :])
        except ValueError:
            raise CorruptDocument("a member's ciphertext is not base64url") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise CorruptDocument("a member's ciphertext is too short")
        try:
            plain = key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], prefix + _utf8(name))
        except self._invalid_tag:
            raise CorruptDocument(
                "a member does not decrypt (tampered with, or moved from another session)"
            ) from None
        try:
            return _json_decode(plain.decode()), key_id
        except (ValueError, RecursionError) as exc:
            raise CorruptDocument(f"a decrypted member is not JSON: {error_kind(exc)}") from None


def from_options(hash_ids: bool, keys: cabc.Sequence[str] | None) -> Protection | None:
    """Return the protection the options ask for, or ``None`` when both
    are off (the core then does nothing more than without this module).

    :raises ValueError: see :class:`Protection`.
    """
    if not hash_ids and not keys:
        return None
    return Protection(hash_ids, keys or ())
