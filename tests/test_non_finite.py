"""NaN and infinities (the ``every_store`` cases on every store): JSON has no form for them (Python
writes ``NaN``, which Express's ``JSON.parse`` and PostgreSQL's json column
refuse), so a save that would write one fails with a ``TypeError`` naming
the key, and what it would have written is not written. One that another app
or an older version already stored never fails a read, nor a save that
changes other keys: it stays as it is.
"""

from __future__ import annotations

import collections.abc as cabc
import math
import typing as t

import pytest
from flask import Flask
from test_fuzz import raw_write

from flask_connect_session import Store
from flask_connect_session.signing import sign

from conftest import SECRET
from framework import request
from framework import session

KEY = "connect.sid"
NAN = float("nan")
INF = float("inf")

#: Values that are or hold a non-finite float, tagged ones (a tuple) too.
NON_FINITE = [NAN, INF, -INF, [1.0, NAN], {"x": {"y": INF}}, (1, -INF)]


def cookie_env(sid: str) -> dict[str, str]:
    return {"HTTP_COOKIE": f"{KEY}={sign(sid, SECRET)}"}


def add_views(app: Flask, value: t.Any) -> None:
    @app.post("/bad")
    def bad() -> str:
        session["bad"] = value
        if request.args.get("save"):
            session.save()
        return "stored"

    @app.get("/peek")
    def peek() -> dict[str, t.Any]:
        # NaN compares unequal to itself: describe the values instead.
        return {key: repr(value) for key, value in session.items()}

    @app.post("/del")
    def delete() -> str:
        del session[request.args["key"]]
        return "deleted"


def stored_data(store: Store, sid: str) -> dict[str, t.Any] | None:
    document = store.get(sid)
    return None if document is None else {k: v for k, v in document.items() if k != "cookie"}


@pytest.mark.every_store
@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize("save", [False, True], ids=["end-of-request", "save()"])
def test_a_non_finite_value_is_a_type_error_naming_the_key(
    make_app: cabc.Callable[..., Flask], store: Store, value: t.Any, save: bool
) -> None:
    app = make_app()
    add_views(app, value)
    client = app.test_client(use_cookies=False)
    sid = client.post("/set", json={"a": 1}).json["id"]
    with pytest.raises(TypeError, match=r"^session\['bad'\] cannot be stored as JSON: NaN"):
        client.post(
            "/bad", query_string={"save": "1" if save else ""}, environ_overrides=cookie_env(sid)
        )
    assert stored_data(store, sid) == {"a": 1}  # nothing of that save was written


@pytest.mark.parametrize("value", [NAN, [INF]], ids=repr)
def test_a_new_session_holding_one_is_not_stored(
    make_app: cabc.Callable[..., Flask], store: Store, value: t.Any
) -> None:
    app = make_app()
    add_views(app, value)
    client = app.test_client()
    with pytest.raises(TypeError, match=r"^session\['bad'\]"):
        client.post("/bad")
    assert client.get_cookie(KEY) is None


# -- stored by someone else ------------------------------------------------

#: A document an older version (or a Python script) wrote with Python's
#: json, which writes NaN and infinities as bare words.
PLANTED = (
    b'{"v":NaN,"w":[1,Infinity,-Infinity],"keep":"me",'
    b'"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"}}'
)


#: PostgreSQL's json column cannot hold NaN, so no stored one is there to read
#: (test_store_sql checks that it refuses one).
CAN_HOLD_NAN = pytest.mark.every_store(but=("postgresql",))


def plant(store: Store, sid: str) -> None:
    raw_write(store, sid, PLANTED)


def assert_kept(data: dict[str, t.Any] | None) -> None:
    assert data is not None
    assert math.isnan(data["v"])
    assert data["w"] == [1, INF, -INF]
    assert data["keep"] == "me"


@CAN_HOLD_NAN
@pytest.mark.parametrize(
    "config",
    [{}, {"CONNECT_SESSION_TOUCH_AFTER": 60}, {"CONNECT_SESSION_RESAVE": True}],
    ids=["default", "touch-after", "resave"],
)
def test_one_stored_elsewhere_never_fails_a_read_or_a_save_of_other_keys(
    make_app: cabc.Callable[..., Flask], store: Store, config: dict[str, t.Any]
) -> None:
    """Reads, and saves that change other keys (several, so that Redis'
    fast merge path, which re-encodes the whole stored document in Python,
    runs too), keep the stored NaN and infinities as they are.
    """
    app = make_app(**config)
    add_views(app, None)
    client = app.test_client(use_cookies=False)
    plant(store, "planted")
    env = cookie_env("planted")
    peek = client.get("/peek", environ_overrides=env)
    assert peek.status_code == 200
    assert peek.json["v"] == "nan" and peek.json["w"] == "[1, inf, -inf]"
    for n in (1, 2, 3):
        response = client.get("/count", environ_overrides=env)
        assert response.json == {"n": n, "id": "planted"}
        data = stored_data(store, "planted")
        assert_kept(data)
        assert data is not None and data["n"] == n
    assert (
        client.post("/del", query_string={"key": "keep"}, environ_overrides=env).text == "deleted"
    )
    data = stored_data(store, "planted")
    assert data is not None and "keep" not in data and math.isnan(data["v"])
    # Removing the NaN itself is a change like any other.
    assert client.post("/del", query_string={"key": "v"}, environ_overrides=env).text == "deleted"
    data = stored_data(store, "planted")
    assert data is not None and "v" not in data and data["w"] == [1, INF, -INF]


@CAN_HOLD_NAN
def test_one_stored_elsewhere_is_carried_over_by_regenerate(
    make_app: cabc.Callable[..., Flask], store: Store
) -> None:
    """``regenerate(keep=True)`` (a login) moves the stored values as they
    are: a NaN the user cannot fix must not fail their login.
    """
    app = make_app()
    client = app.test_client(use_cookies=False)
    plant(store, "planted")
    response = client.post("/regenerate?keep=1", environ_overrides=cookie_env("planted"))
    assert response.status_code == 200
    new = response.json["id"]
    assert new != "planted" and store.get("planted") is None
    assert_kept(stored_data(store, new))
