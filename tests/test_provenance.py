"""The MACs that mark stored values this extension wrote with tags."""

from __future__ import annotations

import hmac
import json
import typing as t
from base64 import b64decode

import pytest

from flask_connect_session import provenance
from flask_connect_session.provenance import holds_tags
from flask_connect_session.provenance import sign_value
from flask_connect_session.provenance import value_mac
from flask_connect_session.provenance import verify
from flask_connect_session.serialization import tag
from flask_connect_session.signing import signature

SID = "sid-1"
VALUE = tag((1.0, {"b": 1, "2": [2.5, None]}))


def test_mac_is_short_base64url() -> None:
    mac = sign_value("secret", SID, "pair", VALUE)
    assert len(mac) == 22 and set(mac) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


@pytest.mark.parametrize(
    ("secret", "sid", "key", "value"),
    [
        ("other secret", SID, "pair", VALUE),
        ("secret", "sid-2", "pair", VALUE),
        ("secret", SID, "other", VALUE),
        ("secret", SID, "pair", tag((1.0, {"b": 1, "2": [2.5, 0]}))),
        ("secret", SID, "pair", {" m": "<b>x</b>"}),
    ],
    ids=["secret", "sid", "key", "value", "another-tag"],
)
def test_mac_binds_secret_sid_key_and_value(secret: str, sid: str, key: str, value: t.Any) -> None:
    mac = sign_value("secret", SID, "pair", VALUE)
    assert verify([secret], sid, key, json.loads(json.dumps(value)), mac) is None


def test_mac_survives_another_json_writer() -> None:
    """What JSON.stringify makes of the value once parsed again (integral
    floats as integers, integer-like keys first) verifies.
    """
    mac = sign_value("secret", SID, "pair", VALUE)
    rewritten = {" t": [1, {"2": [2.5, None], "b": 1}]}
    assert verify(["secret"], SID, "pair", rewritten, mac) == 0


def test_verify_finds_the_secret_and_compares_every_one(monkeypatch: pytest.MonkeyPatch) -> None:
    mac = sign_value("old", SID, "pair", VALUE)
    calls: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(a)
        return real(a, b)

    monkeypatch.setattr(provenance.hmac, "compare_digest", spy)
    parsed = json.loads(json.dumps(VALUE))
    assert verify(["new", "old", "older"], SID, "pair", parsed, mac) == 1
    assert len(calls) == 3


@pytest.mark.parametrize("mac", [None, 5, ["x"], "", "é" * 22, "A" * 22])
def test_verify_refuses_anything_else(mac: object) -> None:
    assert verify(["secret"], SID, "pair", json.loads(json.dumps(VALUE)), mac) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", False),
        ({"a": [1, {"b": None}]}, False),
        (tag((1,)), True),
        ({"a": [tag(b"x")]}, True),
        (tag({" t": 1}), True),  # Flask escapes a dict shaped like a tag
    ],
)
def test_holds_tags(value: t.Any, expected: bool) -> None:
    assert holds_tags(value) is expected


def test_value_mac_of_the_parsed_form_matches_sign_value() -> None:
    """``sign_value`` signs what a store gives back: dict keys as strings."""
    value = {" di": {"1": 2}}
    assert sign_value("s", SID, "k", {" di": {1: 2}}) == value_mac("s", SID, "k", value)


@pytest.mark.parametrize(
    "sid",
    [provenance._CONTEXT.decode("ascii"), "flask-connect-session: tagged session value"],
    ids=["context", "former-context"],
)
def test_mac_key_is_no_cookie_signature(sid: str) -> None:
    """The MAC key is not the cookie signature of any session id, the
    derivation's context among them: a cookie never reveals it.
    """
    key = provenance._mac_key("secret")
    assert b64decode(signature(sid, "secret") + "=") != key
    assert hmac.new(b"secret", sid.encode("utf-8"), "sha256").digest() != key
