"""The Cookie object: expiry arithmetic and express's JSON form."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from flask_connect_session import Cookie
from flask_connect_session.cookie import format_expires
from flask_connect_session.cookie import parse_expires


def test_default_is_browser_session_cookie() -> None:
    """No max_age: no expiry, as express's default cookie."""
    cookie = Cookie()
    assert cookie.expires is None
    assert cookie.max_age is None
    assert cookie.original_max_age is None
    assert cookie.to_document() == {
        "originalMaxAge": None,
        "expires": None,
        "secure": False,
        "httpOnly": True,
        "path": "/",
    }


def test_max_age_sets_expires_and_original() -> None:
    """max_age is remaining seconds; setting it moves expires and original_max_age."""
    cookie = Cookie(max_age=60)
    assert cookie.original_max_age == 60
    assert 59 < t_remaining(cookie) <= 60
    assert cookie.expires is not None and cookie.expires.tzinfo is not None
    cookie.max_age = timedelta(minutes=2)
    assert cookie.original_max_age == 120
    assert 119 < t_remaining(cookie) <= 120
    cookie.max_age = None
    assert cookie.expires is None and cookie.original_max_age is None


def t_remaining(cookie: Cookie) -> float:
    assert cookie.max_age is not None
    return cookie.max_age


def test_expires_setter_sets_original_max_age() -> None:
    """Setting expires sets original_max_age to the time remaining (express)."""
    cookie = Cookie()
    cookie.expires = datetime.now(UTC) + timedelta(seconds=30)
    assert cookie.original_max_age is not None
    assert 29 < cookie.original_max_age <= 30
    cookie.expires = False
    assert cookie.expires is None and cookie.original_max_age is None


def test_naive_expires_means_utc() -> None:
    """A naive datetime is taken as UTC."""
    cookie = Cookie()
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=30)
    cookie.expires = naive
    assert cookie.expires == naive.replace(tzinfo=UTC)


def test_touch_resets_expiry() -> None:
    """touch() moves expires back to now + original_max_age."""
    cookie = Cookie(max_age=60)
    cookie.expires = datetime.now(UTC) + timedelta(seconds=5)
    cookie.original_max_age = 60
    cookie.touch()
    assert 59 < t_remaining(cookie) <= 60


def test_bad_max_age_is_a_type_error() -> None:
    """max_age takes seconds or a timedelta."""
    with pytest.raises(TypeError):
        Cookie().max_age = "60"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        Cookie().max_age = True


def test_document_round_trip() -> None:
    """to_document / from_document keep every attribute (ms in the document)."""
    cookie = Cookie(
        max_age=90,
        path="/app",
        domain="example.com",
        httponly=False,
        secure=True,
        samesite="Lax",
        partitioned=True,
        priority="High",
    )
    doc = cookie.to_document()
    assert doc["originalMaxAge"] == 90000
    assert doc["sameSite"] == "lax" and doc["priority"] == "high"
    back = Cookie.from_document(doc, Cookie())
    assert back.to_document() == doc
    assert back.expires is not None and cookie.expires is not None
    assert abs((back.expires - cookie.expires).total_seconds()) < 0.001


def test_from_document_reads_express_forms_and_keeps_defaults() -> None:
    """Missing or odd members (written by Express) fall back to the defaults."""
    defaults = Cookie(path="/d", domain="d.example", samesite="Strict")
    doc = {"originalMaxAge": None, "expires": None, "httpOnly": True, "sameSite": True}
    back = Cookie.from_document(doc, defaults)
    assert (back.path, back.domain, back.samesite) == ("/d", "d.example", "Strict")
    odd = Cookie.from_document({"expires": "not a date", "sameSite": "weird"}, defaults)
    assert odd.expires is None and odd.samesite == "Strict"


def test_expires_format_matches_javascript() -> None:
    """Dates are written like Date.prototype.toJSON: ms precision, Z."""
    when = datetime(2026, 11, 25, 22, 34, 3, 50123, tzinfo=UTC)
    assert format_expires(when) == "2026-11-25T22:34:03.050Z"
    assert parse_expires("2026-11-25T22:34:03.050Z") == when.replace(microsecond=50000)
    assert parse_expires(12) is None


def test_header_has_every_attribute() -> None:
    """The Set-Cookie header carries each attribute; SameSite=None implies Secure."""
    header = Cookie(
        max_age=60, domain="example.com", samesite="None", partitioned=True, priority="Low"
    ).header("connect.sid", "v")
    parts = {p.split("=")[0].strip() for p in header.split(";")}
    assert {"Expires", "Domain", "Path", "Secure", "HttpOnly", "SameSite"} <= parts
    assert {"Partitioned", "Priority"} <= parts
    assert "SameSite=None" in header and "Priority=Low" in header
    plain = Cookie().header("connect.sid", "v")
    assert "Secure" not in plain and "Expires" not in plain and "HttpOnly" in plain


def test_copy_is_independent_and_complete() -> None:
    """Every attribute is copied (a new slot cannot be forgotten), and
    changing the copy leaves the original as it was.
    """
    original = Cookie(
        max_age=60,
        path="/app",
        domain="example.com",
        httponly=False,
        secure=True,
        samesite="Strict",
        partitioned=True,
        priority="High",
    )
    copy = original.copy()
    assert copy is not original
    for name in Cookie.__slots__:
        assert getattr(copy, name) == getattr(original, name), name
    copy.path, copy.max_age = "/other", 5
    assert (original.path, original.original_max_age) == ("/app", 60)
