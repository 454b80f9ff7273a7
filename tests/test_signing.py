"""The cookie value: express-session's cookie-signature format, byte for byte."""

from __future__ import annotations

from urllib.parse import quote
from urllib.parse import unquote

import hypothesis
import pytest
from hypothesis import strategies as st

from flask_connect_session.signing import MAX_COOKIE_LENGTH
from flask_connect_session.signing import _unquote
from flask_connect_session.signing import generate_sid
from flask_connect_session.signing import sign
from flask_connect_session.signing import signature
from flask_connect_session.signing import unsign

VECTORS = [
    ("apple", "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"),
    ("%", "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"),
    ("/foo", "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"),
]


@pytest.mark.parametrize(("sid", "expected"), VECTORS)
def test_sign_matches_express(sid: str, expected: str) -> None:
    """Signing gives exactly the value express-session sends."""
    assert sign(sid, "keyboard cat") == expected


@pytest.mark.parametrize(("sid", "encoded"), VECTORS)
def test_unsign_accepts_encoded_and_plain(sid: str, encoded: str) -> None:
    """Both the percent-encoded and the decoded form verify."""
    from urllib.parse import unquote

    assert unsign(encoded, ["keyboard cat"]) == sid
    assert unsign(unquote(encoded), ["keyboard cat"]) == sid


def test_unsign_tries_every_secret() -> None:
    """A value signed with an older secret still verifies (rotation)."""
    value = sign("abc", "old")
    assert unsign(value, ["new", "old"]) == "abc"
    assert unsign(value, ["new"]) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "apple",  # no s: prefix
        "s:apple",  # no signature
        "s:.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",  # empty sid
        "s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCV",  # one char off
        "s:apples.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",  # other sid
        "s%3Aapple.%ZZ",  # broken escape
        "s:apple.\udcff",  # lone surrogate
        "s:" + "a" * MAX_COOKIE_LENGTH + ".x",  # oversized
    ],
)
def test_unsign_rejects_bad_values(value: str) -> None:
    """Anything not validly signed is "no session", never an error."""
    assert unsign(value, ["keyboard cat"]) is None


def test_signature_is_over_whole_sid_up_to_last_dot() -> None:
    """A sid containing dots is signed as a whole, as cookie-signature does."""
    value = sign("a.b.c", "s")
    assert unsign(value, ["s"]) == "a.b.c"


def test_generate_sid_is_32_urlsafe_chars_and_unique() -> None:
    """The default genid: 24 random bytes as base64url, like uid-safe(24)."""
    sids = {generate_sid() for _ in range(1000)}
    assert len(sids) == 1000
    for sid in sids:
        assert len(sid) == 32
        assert set(sid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("connect.sid=abc", "abc"),
        ("a=1; connect.sid=abc; b=2", "abc"),
        ("connect.sid=first; connect.sid=second", "first"),
        ('connect.sid="quoted"', "quoted"),
        ("xconnect.sid=no; connect.sidx=no", None),
        ("connect.sid", None),
        ("", None),
        ("  connect.sid  =  spaced  ", "spaced"),
    ],
)
def test_cookie_value_reads_the_first_cookie_of_the_name(
    header: str, expected: str | None
) -> None:
    """Only the named cookie is read; the first one wins; quotes are removed."""
    from flask_connect_session.signing import cookie_value

    assert cookie_value(header, "connect.sid") == expected


@hypothesis.given(sid=st.text(min_size=1, max_size=40), secret=st.text(min_size=1, max_size=8))
def test_sign_is_encode_uri_component_of_the_signed_value(sid: str, secret: str) -> None:
    """The fast path for ordinary ids encodes exactly as quote() with
    encodeURIComponent's safe characters does, for any id a genid may make.
    """
    reference = quote(f"s:{sid}.{signature(sid, secret)}", safe="!*'()")
    assert sign(sid, secret) == reference


@hypothesis.given(st.text(alphabet="%3AaBbFf2:+/x\u00e9", max_size=24))
def test_cookie_values_are_unquoted_as_unquote_does(value: str) -> None:
    """Undoing the escapes sign() makes, and falling back to unquote() for
    any other, gives what unquote() gives for every value.
    """
    assert _unquote(value) == unquote(value, errors="replace")
