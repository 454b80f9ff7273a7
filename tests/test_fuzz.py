"""Property tests: whatever a client sends, a store holds or a config says,
the extension answers with "no session", a session, or a ``ValueError``
naming the key; never a crash.

Every property runs a bounded number of examples, without Hypothesis'
example database. Properties over a store hold whatever the store already
holds: each example works on fresh session ids.
"""

from __future__ import annotations

import collections.abc as cabc
import hashlib
import json
import math
import os
import pickle
import string
import time
import typing as t
from datetime import datetime
from datetime import timedelta
from urllib.parse import quote
from urllib.parse import unquote

import pytest
from flask import Flask
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from flask_connect_session import CachelibStore
from flask_connect_session import ConnectSession
from flask_connect_session import FileSystemStore
from flask_connect_session import MemoryStore
from flask_connect_session import RedisStore
from flask_connect_session import Store
from flask_connect_session.document import encode
from flask_connect_session.document import is_reserved
from flask_connect_session.signing import MAX_COOKIE_LENGTH
from flask_connect_session.signing import cookie_value
from flask_connect_session.signing import generate_sid
from flask_connect_session.signing import sign
from flask_connect_session.signing import signature
from flask_connect_session.signing import unsign
from flask_connect_session.stores.base import to_utf8

import framework as fw
from conftest import SECRET
from conftest import add_views
from framework import session

KEY = "connect.sid"

#: Bounded runs, no example database (failures print their example; nothing
#: is replayed from earlier runs), no deadline (real servers vary).
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: For properties whose examples cost several requests against a real server.
FUZZ_STORE = settings(FUZZ, max_examples=100)


# -- raw access to each store kind -----------------------------------------

#: Lifetime, in seconds, of entries planted with :func:`raw_write`.
RAW_TTL = 3600


def _worker(store: Store) -> Store:
    """The store that does the work: a ``CachelibStore`` delegates to one."""
    if isinstance(store, CachelibStore):
        return t.cast(Store, getattr(store, "_backend", store))
    return store


def _memcached_client(store: Store) -> t.Any:
    """The raw pymemcache client of a memcached-backed store, else ``None``."""
    client = getattr(store, "client", None)
    return client if type(client).__module__.startswith("pymemcache") else None


def _session_file(store: FileSystemStore, sid: str) -> str:
    # The documented layout: <sha256(sid)>.session, a header line, the document.
    name = hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()
    return os.path.join(store.directory, name + ".session")


def raw_write(store: Store, sid: str, data: bytes) -> bytes | str:
    """Plant ``data`` as the stored entry of ``sid``, bypassing the store's
    encoding, live for :data:`RAW_TTL` seconds. Returns the entry as the
    store now holds it (what :func:`raw_read` gives back).
    """
    worker = _worker(store)
    if isinstance(worker, RedisStore):
        worker.client.set(worker.key_prefix + sid, data, ex=RAW_TTL)
        return data
    if isinstance(worker, FileSystemStore):
        path = _session_file(worker, sid)
        header = to_utf8(encode({"sid": sid})) + b"\n"
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            file.write(header + data)
        expiry = time.time() + RAW_TTL
        os.utime(path, (expiry, expiry))
        return data
    if isinstance(worker, MemoryStore):
        # MemoryStore keeps JSON text and has no raw API: its dict is the only
        # way to plant text that is not a document.
        text = data.decode("utf-8", "replace")
        worker._entries[sid] = (text, time.time() + RAW_TTL)
        return text
    client = _memcached_client(worker)
    if client is not None:
        key = t.cast(str, getattr(worker, "key_prefix", "")) + sid
        client.set(key, data, expire=RAW_TTL, noreply=False)
        return data
    if type(worker).__name__ == "SQLStore":
        import sql_raw

        return sql_raw.plant(t.cast(t.Any, worker), sid, data, RAW_TTL)
    pytest.skip(f"no raw writer for {type(worker).__name__}")


def raw_read(store: Store, sid: str) -> bytes | str | None:
    """Return the entry of ``sid`` as the store holds it, without decoding it."""
    worker = _worker(store)
    if isinstance(worker, RedisStore):
        value = worker.client.get(worker.key_prefix + sid)
        return value.encode("utf-8") if isinstance(value, str) else value
    if isinstance(worker, FileSystemStore):
        try:
            with open(_session_file(worker, sid), "rb") as file:
                return file.read().partition(b"\n")[2]
        except FileNotFoundError:
            return None
    if isinstance(worker, MemoryStore):
        entry = worker._entries.get(sid)
        return None if entry is None else entry[0]
    client = _memcached_client(worker)
    if client is not None:
        return t.cast(bytes | None, client.get(getattr(worker, "key_prefix", "") + sid))
    if type(worker).__name__ == "SQLStore":
        import sql_raw

        return sql_raw.raw(t.cast(t.Any, worker), sid)
    pytest.skip(f"no raw reader for {type(worker).__name__}")


def stored_bytes(entry: bytes | str) -> bytes:
    """A raw entry as bytes (FileSystemStore adds a final newline)."""
    data = entry.encode("utf-8", "surrogatepass") if isinstance(entry, str) else entry
    return data.rstrip(b"\n")


# -- cookie values -----------------------------------------------------------

#: Fragments percent-decoding and cookie parsing find hard: bad, truncated,
#: NUL and overlong escapes, encoded surrogates, quotes, separators.
NASTY_PIECES = [
    "%",
    "%Z",
    "%ZZ",
    "%%",
    "%00",
    "%0",
    "%2",
    "%25",
    "%3A",
    "%3a",
    "%2E",
    "%2e",
    "%C0%AE",
    "%E0%80%AE",
    "%F0%80%80%AE",
    "%ED%A0%80",
    "%F4%90%80%80",
    "%FF",
    "%C3",
    "%uD800",
    '"',
    "'",
    "\\",
    ";",
    ",",
    "=",
    " ",
    "\t",
    "\x00",
    "\x7f",
    "\xa0",
    "é",
    "\u2028",
    "\U0001d11e",
    "\ud800",
    "s:",
    "s%3A",
    "S:",
    ".",
    "..",
    KEY,
]

latin1_text = st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
nasty_text = st.lists(st.sampled_from(NASTY_PIECES) | st.text(max_size=3), max_size=25).map(
    "".join
)
huge_text = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["a", "%", "%41", "s:", ".", ";", KEY + "=x;"]),
    st.integers(MAX_COOKIE_LENGTH - 8, 4 * MAX_COOKIE_LENGTH),
)
#: Shaped like a signed value, signature made up.
fake_signed = st.builds(
    lambda prefix, sid, sig: f"{prefix}{sid}.{sig}",
    st.sampled_from(["s:", "s%3A", "s%3a", ""]),
    st.text(max_size=40),
    st.text(string.ascii_letters + string.digits + "+/=%", max_size=50),
)
cookie_texts = st.one_of(st.text(), latin1_text, nasty_text, huge_text, fake_signed)


def canonical(value: str) -> str:
    """A cookie value as ``unsign`` reads it (percent-decoded when it has a ``%``)."""
    return unquote(value, errors="replace") if "%" in value else value


def forged_values(sid: str) -> st.SearchStrategy[str]:
    """Cookie values derived from the genuine one for ``sid`` that are not it:
    truncated, tampered, re-signed with other secrets, unsigned.
    """
    genuine = sign(sid, SECRET)
    plain = unquote(genuine)
    fixed = st.sampled_from(
        [
            sid,
            "s:" + sid,
            "s:" + sid + ".",
            "s:" + sid + "." + signature(sid, SECRET)[:-1],
            "s:" + sid + "." + signature(sid, SECRET) + "=",
            sign(sid, "wrong secret"),
            sign(sid, SECRET + " "),
            sign(sid, SECRET.upper()),
            sign(sid + " ", SECRET).replace("%20.", "."),
            "s:" + sid + "." + signature(sid[:-1], SECRET),
            "s:" + sid[:-1] + "." + signature(sid, SECRET),
            plain.replace("s:", "S:", 1),
            plain.replace("+", "-").replace("/", "_"),  # base64url instead
            '"' + genuine,
            genuine + '"',
        ]
    )
    truncated = st.integers(0, len(genuine) - 1).map(lambda i: genuine[:i])
    beheaded = st.integers(1, len(genuine)).map(lambda i: genuine[i:])

    def mutate(base: str) -> st.SearchStrategy[str]:
        index = st.integers(0, len(base))
        char = st.characters(codec="latin-1") | st.sampled_from(NASTY_PIECES)
        replaced = st.builds(lambda i, c: base[:i] + c + base[i + 1 :], index, char)
        inserted = st.builds(lambda i, c: base[:i] + c + base[i:], index, char)
        return replaced | inserted

    return st.one_of(fixed, truncated, beheaded, mutate(genuine), mutate(plain)).filter(
        lambda value: not reads_as(value, genuine)
    )


def reads_as(value: str, genuine: str) -> bool:
    """Whether a cookie value could read as ``genuine``: trimmed, without
    surrounding quotes, percent-decoded.
    """
    value = value.strip()
    target = canonical(genuine)
    return canonical(value) == target or canonical(value[1:-1]) == target


@FUZZ
@given(header=cookie_texts, name=st.sampled_from([KEY, "a", ""]) | st.text(max_size=12))
def test_cookie_value_never_raises(header: str, name: str) -> None:
    """Any header text gives ``None`` or a piece of that header."""
    value = cookie_value(header, name)
    assert value is None or value in header


#: A cookie name or value as a browser sends it (no separators in names, no
#: ``;`` in values).
cookie_names = st.text(
    st.characters(codec="latin-1", exclude_characters=';="\\,', exclude_categories=["Z", "C"]),
    min_size=1,
    max_size=12,
)
cookie_values = st.text(st.characters(codec="latin-1", exclude_characters=";"), max_size=30)


@FUZZ
@given(
    before=st.lists(st.tuples(cookie_names, cookie_values), max_size=5),
    first=cookie_values | cookie_values.map(lambda v: f'"{v}"'),
    after=st.lists(st.tuples(st.just(KEY) | cookie_names, cookie_values), max_size=5),
    spacing=st.sampled_from([";", "; ", " ; ", ";\t"]),
)
def test_first_cookie_of_the_name_wins(
    before: list[tuple[str, str]],
    first: str,
    after: list[tuple[str, str]],
    spacing: str,
) -> None:
    """Of several cookies called ``connect.sid``, the first is the one read,
    trimmed and without surrounding double quotes, as express's ``cookie``
    package reads it.
    """
    assume(all(name.strip() != KEY for name, _ in before))
    pairs = [*before, (KEY, first), *after]
    header = spacing.join(f"{name}={value}" for name, value in pairs)
    expected = first.strip()
    if len(expected) > 1 and expected[0] == expected[-1] == '"':
        expected = expected[1:-1]
    assert cookie_value(header, KEY) == expected


#: Session ids that can be signed: any text without lone surrogates.
signable_sids = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=200)
secrets_lists = st.lists(
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)
    | st.binary(min_size=1, max_size=20),
    min_size=1,
    max_size=3,
)


@FUZZ
@given(
    value=cookie_texts
    | st.builds(sign, signable_sids, signable_sids)
    | st.builds(sign, signable_sids, st.sampled_from([SECRET, "second secret"]))
)
def test_unsign_accepts_only_genuine_signatures(value: str) -> None:
    """``unsign`` never raises, and returns a sid only for a value that is
    exactly ``s:<sid>.<signature under one of the secrets>``.
    """
    secrets = [SECRET, b"second secret"]
    sid = unsign(value, secrets)
    if sid is not None:
        assert len(value) <= MAX_COOKIE_LENGTH
        assert any(canonical(value) == f"s:{sid}.{signature(sid, s)}" for s in secrets)


@FUZZ
@given(data=st.data(), sid=st.sampled_from(["apple", "%", "%41", "a.b.c"]) | signable_sids)
def test_tampered_values_never_verify(data: st.DataObject, sid: str) -> None:
    """A truncated, tampered or re-signed cookie never verifies, while every
    encoding of the genuine value does.
    """
    forged = data.draw(forged_values(sid))
    assert unsign(forged, [SECRET]) is None
    genuine = sign(sid, SECRET)
    if len(genuine) <= MAX_COOKIE_LENGTH:
        assert unsign(genuine, [SECRET]) == sid
        assert unsign(quote(unquote(genuine), safe=""), [SECRET]) == sid


#: RFC 6265 cookie-octet: what a cookie value may hold without quoting.
COOKIE_OCTETS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('",;\\')


@FUZZ
@given(sid=signable_sids, secrets=secrets_lists)
def test_sign_unsign_round_trip(sid: str, secrets: list[str | bytes]) -> None:
    """Any non-empty sid round-trips through ``sign``, a ``Cookie`` header and
    ``unsign``; the signed value needs no quoting; another secret rejects it.
    The unencoded (express-compatible) form round-trips when the sid has no
    ``%`` (which would read as an escape).
    """
    value = sign(sid, secrets[0])
    assert set(value) <= COOKIE_OCTETS
    header = f"a=1; {KEY}={value}; {KEY}=other"
    if len(value) > MAX_COOKIE_LENGTH:
        assert unsign(value, secrets) is None  # oversized: ignored, even if genuine
        return
    assert unsign(value, secrets) == sid
    assert unsign(cookie_value(header, KEY) or "", secrets[::-1]) == sid
    other = secrets[0] + (b"x" if isinstance(secrets[0], bytes) else "x")  # type: ignore[operator]
    assert unsign(value, [other]) is None
    if "%" not in sid:
        assert unsign(unquote(value), secrets) == sid


@settings(FUZZ, max_examples=50)
@given(
    sid=st.text(st.characters(exclude_categories=["Cs"]), min_size=MAX_COOKIE_LENGTH // 12)
    | st.text(string.ascii_letters, min_size=MAX_COOKIE_LENGTH - 60, max_size=MAX_COOKIE_LENGTH)
)
def test_oversized_cookies_are_ignored(sid: str) -> None:
    """A cookie value longer than MAX_COOKIE_LENGTH is ignored unread, even
    when its signature is genuine; one within the limit is read.
    """
    value = sign(sid, SECRET)
    assert unsign(value, [SECRET]) == (sid if len(value) <= MAX_COOKIE_LENGTH else None)


def test_generated_sids_round_trip() -> None:
    """Default ids are 32 base64url characters and survive a Cookie header."""
    for _ in range(200):
        sid = generate_sid()
        assert len(sid) == 32 and set(sid) <= set(string.ascii_letters + string.digits + "-_")
        value = sign(sid, SECRET)
        assert unsign(cookie_value(f"{KEY}={value}", KEY) or "", [SECRET]) == sid


# -- whole requests with arbitrary Cookie headers ----------------------------


def contains_genuine(header: str, genuine: str) -> bool:
    """Whether any ``;``-separated cookie in ``header`` could read as
    ``genuine`` (trimmed, unquoted, percent-decoded), whatever its name.
    """
    return any(reads_as(pair.partition("=")[2], genuine) for pair in header.split(";"))


def cookie_headers(sid: str, attacker_sids: list[str]) -> st.SearchStrategy[str]:
    """Cookie headers full of forgeries of ``sid``'s cookie, attacker-chosen
    ids signed with the real secret, and garbage; never the genuine cookie.
    """
    names = st.sampled_from(
        [KEY, KEY, " " + KEY, KEY + " ", "\t" + KEY, "Connect.sid", KEY + "x", "x" + KEY, ""]
    ) | st.text(max_size=5)
    values = st.one_of(
        forged_values(sid),
        forged_values(sid),
        cookie_texts,
        st.sampled_from(attacker_sids).map(lambda chosen: sign(chosen, SECRET)),
    )
    pair = st.builds(
        lambda name, eq, value: f"{name}{eq}{value}",
        names,
        st.sampled_from(["=", "=", "= ", " =", "=="]),
        values,
    )
    separators = st.sampled_from(["; ", ";", " ; ", ";;", ", "])
    joined = st.builds(lambda pairs, sep: sep.join(pairs), st.lists(pair, max_size=6), separators)
    genuine = sign(sid, SECRET)
    return st.one_of(joined, joined, st.text(), latin1_text).filter(
        lambda header: not contains_genuine(header, genuine)
    )


@pytest.fixture
def victim(make_app: cabc.Callable[..., Flask]) -> tuple[Flask, str]:
    """An app over each store, with one user's session holding a secret."""
    app = make_app()
    sid = app.test_client().post("/set", json={"secret": "victim"}).json["id"]
    # The raw-header mechanism works: the genuine cookie does reach it.
    reader = app.test_client(use_cookies=False)
    seen = reader.get("/get", environ_overrides={"HTTP_COOKIE": f"{KEY}={sign(sid, SECRET)}"})
    assert seen.json["data"] == {"secret": "victim"}
    return app, sid


#: Ids an attacker would like adopted, signed with the real secret in these
#: tests. Only legal memcached keys: ids are genid's (base64url) in practice.
ATTACKER_SIDS = ["attacker", "sess:x", "../../etc/passwd", "a" * 200, "*", "%00"]


def test_arbitrary_cookie_headers_read_no_session(victim: tuple[Flask, str], store: Store) -> None:
    """Reading with any Cookie header but the genuine one is a 200 with a new,
    empty session that is neither the victim's nor an attacker-chosen id, and
    sends no cookie (nothing was written).
    """
    app, sid = victim
    # Raw headers: a client with a cookie jar would replace them with its own.
    client = app.test_client(use_cookies=False)
    quart = fw.framework_of(app) == "quart"  # behind a server: deliverable headers only

    @FUZZ_STORE
    @given(header=cookie_headers(sid, ATTACKER_SIDS))
    def check(header: str) -> None:
        assume(quart is False or fw.deliverable(header))
        response = client.get("/get", environ_overrides={"HTTP_COOKIE": header})
        assert response.status_code == 200
        body = response.json
        assert body["new"] is True and body["data"] == {}
        assert body["id"] != sid and body["id"] not in ATTACKER_SIDS
        assert "Set-Cookie" not in response.headers

    check()
    assert store.get(sid) is not None and store.get(sid)["secret"] == "victim"  # type: ignore[index]
    assert all(store.get(chosen) is None for chosen in ATTACKER_SIDS)


@pytest.mark.every_store
def test_arbitrary_cookie_headers_write_a_fresh_session(
    victim: tuple[Flask, str], store: Store
) -> None:
    """Writing with any Cookie header but the genuine one stores the data under
    a new id, whose signed cookie is sent; the victim's data is untouched and
    nothing is stored under an attacker-chosen id.
    """
    app, sid = victim
    client = app.test_client(use_cookies=False)
    quart = fw.framework_of(app) == "quart"  # behind a server: deliverable headers only

    @FUZZ_STORE
    @given(header=cookie_headers(sid, ATTACKER_SIDS))
    def check(header: str) -> None:
        assume(quart is False or fw.deliverable(header))
        response = client.post("/set", json={"mine": 1}, environ_overrides={"HTTP_COOKIE": header})
        assert response.status_code == 200
        new_sid = response.json["id"]
        assert new_sid != sid and new_sid not in ATTACKER_SIDS
        assert response.json["data"] == {"mine": 1}
        assert f"{KEY}={sign(new_sid, SECRET)};" in response.headers["Set-Cookie"]
        assert store.get(new_sid) is not None

    check()
    assert store.get(sid)["secret"] == "victim"  # type: ignore[index]
    assert all(store.get(chosen) is None for chosen in ATTACKER_SIDS)


def test_forged_cookie_first_hides_the_genuine_one(victim: tuple[Flask, str]) -> None:
    """With a forged ``connect.sid`` before the genuine one, the forged one is
    read (the first wins), so the request gets a new session; with the genuine
    one first, the victim's session is read whatever follows.
    """
    app, sid = victim
    client = app.test_client(use_cookies=False)
    genuine = f"{KEY}={sign(sid, SECRET)}"
    quart = fw.framework_of(app) == "quart"  # behind a server: deliverable headers only

    @FUZZ_STORE
    @given(forged=forged_values(sid), other=cookie_texts.filter(lambda v: ";" not in v))
    def check(forged: str, other: str) -> None:
        assume(";" not in forged)
        assume(quart is False or fw.deliverable(forged + other))
        header = f"a=b; {KEY}={forged}; {genuine}; c={other}"
        response = client.get("/get", environ_overrides={"HTTP_COOKIE": header})
        assert response.json["id"] != sid and response.json["data"] == {}
        header = f"a=b; {genuine}; {KEY}={forged}; c={other}"
        response = client.get("/get", environ_overrides={"HTTP_COOKIE": header})
        assert response.json["id"] == sid and response.json["data"] == {"secret": "victim"}

    check()


# -- stored documents ----------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included: Python's JSON writes and reads them
    st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)

#: Flask's tagged-JSON markers, with payloads that are right or wrong.
TAGS = [" t", " b", " d", " u", " m", " di"]
tagged_values = st.builds(lambda tag, payload: {tag: payload}, st.sampled_from(TAGS), json_values)
GOOD_TAGGED = [
    {" t": [1, "a"]},
    {" b": "aGVsbG8="},
    {" d": "Thu, 01 Jan 2026 00:00:00 GMT"},
    {" u": "12345678123456781234567812345678"},
    {" m": "<b>hi</b>"},
    {" di": {" t__": 1}},
]

#: Values of the wrong type for any member (numbers aside).
odd_non_numbers = st.one_of(
    st.none(), st.booleans(), st.text(), st.lists(json_scalars, max_size=2), st.just({})
)
odd_values = odd_non_numbers | st.integers() | st.floats()

#: ``cookie.originalMaxAge`` values (ms) within datetime's range, and beyond it.
sane_max_ages = st.integers(-(10**12), 10**12) | st.floats(-1e12, 1e12)
INSANE_MAX_AGES = [math.nan, math.inf, -math.inf, 1e20, -1e20, 10**30, 1e300, 9.3e21]
#: ``cookie.expires`` strings within datetime's range in any offset, and not.
sane_expires = st.builds(
    lambda when, offset: when.isoformat() + offset,
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1)),
    st.sampled_from(["", "Z", "+00:00", "+14:00", "-12:00", ".123Z"]),
)
INSANE_EXPIRES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999Z",
]
#: ``cookie.domain`` strings a Set-Cookie header can carry, and not.
sane_domains = st.sampled_from(
    ["example.com", ".example.com", "é.com", "ü;x", "", ".."]
) | st.text(string.ascii_letters + string.digits + ".-", max_size=30)
INSANE_DOMAINS = ["\x80", "\r", "a\nb", "a" * 64, "\udcff"]
#: ``_created`` (ms since the epoch) values: recent, or not numbers at all...
sane_created = odd_non_numbers.filter(lambda v: not isinstance(v, bool)) | st.integers(
    int(time.time() * 1000) - 10**9, int(time.time() * 1000)
)
#: ... or numbers no clock can compare with.
INSANE_CREATED = [math.nan, math.inf, 10**400]


def _with_insane(sane: st.SearchStrategy[t.Any], insane: list[t.Any]) -> t.Any:
    """``sane`` values plus the ``insane`` ones (which once failed requests)."""
    return sane | st.sampled_from(insane)


def cookie_members() -> st.SearchStrategy[dict[str, t.Any]]:
    """A stored ``cookie`` object: express's members with right, odd or
    out-of-range values, plus unknown members.
    """
    member = {
        "originalMaxAge": st.none()
        | odd_non_numbers
        | _with_insane(sane_max_ages, INSANE_MAX_AGES),
        "expires": st.none() | odd_values | _with_insane(sane_expires, INSANE_EXPIRES),
        "httpOnly": st.booleans() | odd_values,
        "secure": st.booleans() | odd_values,
        "path": st.sampled_from(["/", "/a b;c", "/\r\nX: y", ""]) | odd_values,
        "domain": odd_non_numbers.filter(lambda v: not isinstance(v, str))
        | _with_insane(sane_domains, INSANE_DOMAINS),
        "sameSite": st.sampled_from(["lax", "strict", "none", "Weird", True, False]) | odd_values,
        "partitioned": st.booleans() | odd_values,
        "priority": st.sampled_from(["low", "HIGH", "urgent"]) | odd_values,
    }
    unknown = st.dictionaries(st.text(max_size=5).filter(lambda k: k not in member), json_values)
    return st.builds(
        lambda known, unknown: {**unknown, **known},
        st.fixed_dictionaries({}, optional=member),
        unknown,
    )


def session_documents() -> st.SearchStrategy[dict[str, t.Any]]:
    """Documents with an object ``cookie``: odd but readable session documents."""
    data_values = json_values | st.sampled_from(GOOD_TAGGED)
    data_values |= tagged_values  # tagged payloads that do not decode, too
    data = st.dictionaries(st.text(max_size=10), data_values, max_size=5)
    created = _with_insane(sane_created, INSANE_CREATED)
    extras = st.fixed_dictionaries(
        {}, optional={"_created": created, "_permanent": odd_values, "_flashes": odd_values}
    )
    return st.builds(
        lambda data, extras, cookie: {**data, **extras, "cookie": cookie},
        data,
        extras,
        cookie_members(),
    )


def _encoded(document: object) -> bytes:
    return to_utf8(encode(document))


def _pickled(protocol: int) -> bytes:
    return pickle.dumps({"cookie": {}, "user": "admin"}, protocol=protocol)


#: Stored entries that are not session documents.
corrupt_entries = st.one_of(
    st.binary(max_size=100),
    json_values.filter(lambda v: not isinstance(v, dict)).map(_encoded),
    st.dictionaries(st.text(max_size=5), json_values, max_size=4).map(
        lambda d: _encoded({k: v for k, v in d.items() if k != "cookie"})
    ),
    (json_scalars | st.lists(json_scalars)).map(
        lambda cookie: _encoded({"a": 1, "cookie": cookie})
    ),
    session_documents()
    .map(_encoded)
    .flatmap(lambda text: st.integers(1, len(text) - 1).map(lambda i: text[:i])),
    st.integers(0, pickle.HIGHEST_PROTOCOL).map(_pickled),
    st.sampled_from([b"", b"null", b"[]", b'"cookie"', b"\xef\xbb\xbf{}", b"{}{}", b"{,}"]),
)


def readable(entry: bytes | str) -> dict[str, t.Any] | None:
    """The session document in a raw entry, as JSON reads it, or ``None``."""
    try:
        document = json.loads(entry)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and isinstance(document.get("cookie"), dict):
        return document
    return None


#: Sessions this old are discarded by the "absolute-timeout" probe app; no
#: generated ``_created`` is that old.
PROBE_TIMEOUT = 10 * 365 * 86400


@pytest.fixture(params=["rolling", "absolute-timeout"])
def probe_app(make_app: cabc.Callable[..., Flask], request: pytest.FixtureRequest) -> Flask:
    """An app that re-sends the cookie on every response (so the stored cookie
    is read and rendered), with or without an absolute timeout (so ``_created``
    is read), with a view that lists the keys then writes one.
    """
    timeout = PROBE_TIMEOUT if request.param == "absolute-timeout" else None
    app = make_app(CONNECT_SESSION_ROLLING=True, CONNECT_SESSION_ABSOLUTE_TIMEOUT=timeout)

    @app.get("/keys")
    def keys() -> dict[str, t.Any]:
        return {"id": session.id, "keys": sorted(session.keys())}

    @app.post("/probe")
    def probe() -> dict[str, t.Any]:
        keys = sorted(session.keys())
        session["probe"] = 1
        return {"id": session.id, "keys": keys}

    return app


def check_planted(app: Flask, store: Store, entry: bytes) -> None:
    """Plant ``entry`` under a fresh id and request with that id's genuine
    cookie: a readable document is used (its keys are the session's), anything
    else starts a new session and is left in place. Never a 500.
    """
    sid = generate_sid()
    stored = raw_write(store, sid, entry)
    document = readable(stored)
    client = app.test_client(use_cookies=False)
    cookie = {"HTTP_COOKIE": f"{KEY}={sign(sid, SECRET)}"}
    response = client.get("/keys", environ_overrides=cookie)
    assert response.status_code == 200
    if document is None:
        assert response.json["id"] != sid and response.json["keys"] == []
        after = raw_read(store, sid)
        assert after is not None and stored_bytes(after) == stored_bytes(stored)
    else:
        assert response.json["id"] == sid
        assert response.json["keys"] == sorted(k for k in document if not is_reserved(k))
    response = client.post("/probe", environ_overrides=cookie)
    assert response.status_code == 200
    if response.json["id"] == sid:
        assert document is not None
        assert response.json["keys"] == sorted(k for k in document if not is_reserved(k))
    if document is None:
        after = raw_read(store, sid)
        assert after is not None and stored_bytes(after) == stored_bytes(stored)


@pytest.mark.every_store
def test_odd_stored_documents_are_used(probe_app: Flask, store: Store) -> None:
    """A stored session document with odd members (unknown keys, wrong types in
    ``cookie``, tagged values, reserved members) loads, keeps its data keys,
    and can be written back.
    """

    @FUZZ_STORE
    @given(document=session_documents())
    def check(document: dict[str, t.Any]) -> None:
        check_planted(probe_app, store, _encoded(document))

    check()


@pytest.mark.every_store
def test_corrupt_stored_entries_mean_a_new_session(probe_app: Flask, store: Store) -> None:
    """A stored entry that is not a session document (bytes, other JSON,
    truncated JSON, a pickle) starts a new session and is left as it was.
    """

    @FUZZ_STORE
    @given(entry=corrupt_entries)
    def check(entry: bytes) -> None:
        check_planted(probe_app, store, entry)

    check()


@pytest.mark.every_store
@pytest.mark.parametrize("size", [10_000, 300_000])
def test_enormous_stored_document_is_used(probe_app: Flask, store: Store, size: int) -> None:
    """A very large session document (many keys, long values) is read and
    written back like any other.
    """
    document = {f"k{i}": "v" * (size // 100) for i in range(100)}
    document["cookie"] = {"originalMaxAge": None, "expires": None}
    check_planted(probe_app, store, _encoded(document))


# -- configuration -----------------------------------------------------------

CONFIG_KEYS = [
    "CONNECT_SESSION_KEY",
    "CONNECT_SESSION_SECRET",
    "CONNECT_SESSION_COOKIE",
    "CONNECT_SESSION_PROXY",
    "CONNECT_SESSION_STORE",
    "CONNECT_SESSION_ROLLING",
    "CONNECT_SESSION_RESAVE",
    "CONNECT_SESSION_SAVE_UNINITIALIZED",
    "CONNECT_SESSION_UNSET",
    "CONNECT_SESSION_GENID",
    "CONNECT_SESSION_KEY_PREFIX",
    "CONNECT_SESSION_TTL",
    "CONNECT_SESSION_ABSOLUTE_TIMEOUT",
]

config_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.timedeltas(),
    st.sampled_from(
        ["true", "OFF", "yes", "auto", "Lax", "none", "destroy", "keep", "", " ", "1", "0"]
    ),
)
config_values = st.one_of(
    config_scalars,
    st.lists(config_scalars, max_size=3),
    st.dictionaries(st.text(max_size=10), config_scalars, max_size=3),
)
COOKIE_SETTINGS = sorted(
    {"path", "domain", "httponly", "httpOnly", "http_only", "secure", "samesite", "sameSite"}
    | {"same_site", "partitioned", "priority", "max_age", "maxAge"}
)
cookie_tables = st.dictionaries(
    st.sampled_from(COOKIE_SETTINGS) | st.text(max_size=8), config_scalars, max_size=4
)


def _not_importable(path: str) -> bool:
    # Arbitrary text must never import a real module (importing runs code).
    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    if module.startswith("."):
        return True  # a relative path imports nothing: a ValueError
    return not all(part.isidentifier() for part in module.split("."))


def config_values_for(key: str, tmp: str) -> st.SearchStrategy[t.Any]:
    """Values for ``key``: anything, plus values close to valid ones."""
    specific: dict[str, st.SearchStrategy[t.Any]] = {
        "CONNECT_SESSION_COOKIE": cookie_tables,
        "CONNECT_SESSION_SECRET": st.lists(st.text(max_size=5) | st.binary(max_size=5)),
        "CONNECT_SESSION_STORE": st.one_of(
            st.builds(
                lambda scheme, rest: f"{scheme}://{rest}",
                st.sampled_from(["memory", "redis", "rediss", "unix", "valkey", "memcached"]),
                st.text(max_size=20),
            ),
            st.sampled_from(
                [
                    "memory://",
                    f"file://{tmp}/sessions",
                    f"file://localhost{tmp}/sessions",
                    "file://remote/sessions",
                    "file:///x?y=1",
                    "file:relative",
                    "redis://:pw@localhost:1/0",
                    "redis://h:99999",
                    "redis://[::1",
                    "memcached://h:1,h:2",
                    "memcached://u@h",
                    "MEMORY://",
                ]
            ),
            st.builds(MemoryStore),
        ),
        "CONNECT_SESSION_GENID": st.sampled_from(
            [
                "flask_connect_session.signing:generate_sid",
                "flask_connect_session.signing.generate_sid",
                "flask_connect_session.signing:MAX_COOKIE_LENGTH",
                "flask_connect_session.signing:nope",
                "no_such_module_zz:f",
                "no_such_module_zz",
                ":",
                ".",
                "",
                "a..b:c",
            ]
            + [".x:y", "..:y", ".x.y"]
        )
        | st.text(max_size=20).filter(_not_importable)
        | st.just(generate_sid),
    }
    values = config_values if key not in specific else specific[key] | config_values
    if key == "CONNECT_SESSION_STORE":
        values = values.filter(lambda v: not (isinstance(v, str) and "file:" in v.lower()))
        values |= specific[key]  # the curated file URLs, which stay under tmp
    return values


def _configured_app(key: str, value: object) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True)
    app.config[key] = value
    return app


@FUZZ
@given(key=st.sampled_from(CONFIG_KEYS), data=st.data())
def test_config_values_are_accepted_or_value_errors_naming_the_key(
    key: str, data: st.DataObject, tmp_path: t.Any
) -> None:
    """``init_app`` with any value for a ``CONNECT_SESSION_*`` key either
    succeeds or raises ``ValueError`` whose message names the key.
    """
    value = data.draw(config_values_for(key, str(tmp_path)), label="value")
    app = _configured_app(key, value)
    try:
        ConnectSession(app)
    except ValueError as exc:
        assert key in str(exc)


#: Keys whose accepted values must give working requests (a store URL may
#: point at no server, a genid at any callable).
REQUEST_KEYS = sorted(set(CONFIG_KEYS) - {"CONNECT_SESSION_STORE", "CONNECT_SESSION_GENID"})

bool_settings = st.booleans() | st.sampled_from([0, 1, "true", "Off", " yes ", "NO", "1"])
durations = (
    st.integers(0, 10**9) | st.floats(0, 1e9) | st.timedeltas(timedelta(0), timedelta(days=20000))
)
#: Values close to what ``init_app`` accepts, so most examples get to the requests.
plausible_values: dict[str, st.SearchStrategy[t.Any]] = {
    "CONNECT_SESSION_KEY": st.text(min_size=1, max_size=20),
    "CONNECT_SESSION_SECRET": st.text(min_size=1)
    | st.lists(st.text(min_size=1) | st.binary(min_size=1), min_size=1, max_size=3),
    "CONNECT_SESSION_COOKIE": st.fixed_dictionaries(
        {},
        optional={
            "path": st.text(max_size=10),
            "domain": st.none() | sane_domains,
            "httpOnly": bool_settings,
            "secure": bool_settings | st.sampled_from(["auto", "AUTO"]),
            "sameSite": st.sampled_from([None, True, False, "lax", "Strict", "none", "auto"]),
            "partitioned": bool_settings,
            "priority": st.sampled_from([None, "low", "Medium", "HIGH"]),
            "maxAge": st.none() | st.integers(0, 10**12),
            "max_age": st.none() | durations,
        },
    ),
    "CONNECT_SESSION_PROXY": st.none() | bool_settings,
    "CONNECT_SESSION_ROLLING": bool_settings,
    "CONNECT_SESSION_RESAVE": bool_settings,
    "CONNECT_SESSION_SAVE_UNINITIALIZED": bool_settings,
    "CONNECT_SESSION_UNSET": st.sampled_from(["destroy", "keep"]),
    "CONNECT_SESSION_KEY_PREFIX": st.text(max_size=10),
    "CONNECT_SESSION_TTL": durations,
    "CONNECT_SESSION_ABSOLUTE_TIMEOUT": st.none() | durations,
}


def request_config(tmp: str) -> st.SearchStrategy[dict[str, t.Any]]:
    """A few ``CONNECT_SESSION_*`` settings at once, mostly plausible values."""

    def value(key: str) -> st.SearchStrategy[t.Any]:
        plausible = plausible_values[key]
        return plausible | plausible | config_values_for(key, tmp)

    keys = st.lists(st.sampled_from(REQUEST_KEYS), min_size=1, max_size=4, unique=True)
    return keys.flatmap(lambda chosen: st.fixed_dictionaries({k: value(k) for k in chosen}))


@settings(FUZZ, max_examples=75, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_accepted_config_values_serve_requests(
    framework: str, data: st.DataObject, tmp_path: t.Any
) -> None:
    """Settings ``init_app`` accepts give an app whose session requests work
    over HTTP and HTTPS: writing, reading back with the cookie sent, clearing;
    no exception.
    """
    config = data.draw(request_config(str(tmp_path)), label="config")
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=MemoryStore())
    app.config.update(config)
    try:
        fw.connect(app)
    except ValueError:
        assume(False)

    @app.post("/w")
    def write() -> str:
        session["a"] = 1
        return session.id

    @app.get("/r")
    def read() -> str:
        return str(session.get("a"))

    @app.post("/clear")
    def clear() -> str:
        session.clear()
        return "ok"

    # No cookie jar: the test client's own cookie parsing is not under test.
    client = app.test_client(use_cookies=False)
    for base_url in ("http://localhost", "https://localhost"):
        written = client.post("/w", base_url=base_url)
        assert written.status_code == 200
        sent = [h.split(";")[0] for h in written.headers.getlist("Set-Cookie")]
        cookie = {"HTTP_COOKIE": "; ".join(sent)} if sent else {}
        assert client.get("/r", base_url=base_url, environ_overrides=cookie).status_code == 200
        assert (
            client.post("/clear", base_url=base_url, environ_overrides=cookie).status_code == 200
        )


# -- regression tests for the bugs these properties found --------------------


@pytest.fixture
def rolling_app(make_app: cabc.Callable[..., Flask]) -> Flask:
    """An app over each store that re-sends the cookie on every response."""
    return make_app(CONNECT_SESSION_ROLLING=True)


def _plant_and_request(app: Flask, store: Store, document: object) -> t.Any:
    sid = generate_sid()
    raw_write(store, sid, _encoded(document))
    client = app.test_client(use_cookies=False)
    return client.get("/get", environ_overrides={"HTTP_COOKIE": f"{KEY}={sign(sid, SECRET)}"})


@pytest.mark.every_store
@pytest.mark.parametrize("value", [{" b": 5}, {" u": "zz"}, {" t": 5}, {" di": {}}, {" di": 5}])
def test_stored_undecodable_tagged_value_is_no_500(
    rolling_app: Flask, store: Store, value: object
) -> None:
    """A stored value shaped like Flask's tagged JSON whose payload does not
    decode (another app may have written it) does not fail the request.
    """
    assert _plant_and_request(rolling_app, store, {"x": value, "cookie": {}}).status_code == 200


@pytest.mark.parametrize(
    "cookie",
    [
        {"originalMaxAge": math.nan},
        {"originalMaxAge": math.inf},
        {"originalMaxAge": 1e300},
        {"originalMaxAge": 10**30},
        {"expires": "9999-12-31T23:59:59-14:00"},
        {"expires": "0001-01-01T00:00:00+14:00"},
    ],
)
def test_stored_cookie_time_out_of_range_is_no_500(
    rolling_app: Flask, store: Store, cookie: dict[str, t.Any]
) -> None:
    """A stored cookie whose ``originalMaxAge`` or ``expires`` is out of
    datetime's range does not fail the request.
    """
    assert _plant_and_request(rolling_app, store, {"cookie": cookie}).status_code == 200


@pytest.mark.every_store
@pytest.mark.parametrize("depth", [600, 100_000])
def test_stored_deeply_nested_document_is_corrupt_not_a_store_error(
    rolling_app: Flask, store: Store, depth: int
) -> None:
    """A stored document nested too deeply to decode is a corrupt document (a
    new session), not a store failure.
    """
    sid = generate_sid()
    raw_write(store, sid, b'{"cookie":{},"a":' + b"[" * depth + b"]" * depth + b"}")
    client = rolling_app.test_client(use_cookies=False)
    response = client.get("/get", environ_overrides={"HTTP_COOKIE": f"{KEY}={sign(sid, SECRET)}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CONNECT_SESSION_TTL", math.inf),
        ("CONNECT_SESSION_COOKIE", {"maxAge": math.inf}),
        ("CONNECT_SESSION_COOKIE", {"max_age": 1e12}),
        ("CONNECT_SESSION_COOKIE", {"max_age": timedelta(days=999_999_999)}),
    ],
)
def test_out_of_range_durations_are_value_errors(key: str, value: object) -> None:
    """A duration no datetime can hold is a ValueError naming the key at
    init_app, not an OverflowError there or on every request.
    """
    app = _configured_app(key, value)
    try:
        ConnectSession(app)
    except ValueError as exc:
        assert key in str(exc)
        return

    @app.post("/w")
    def write() -> str:
        session["a"] = 1
        return "ok"

    assert app.test_client().post("/w").status_code == 200


@pytest.mark.parametrize("path", [".x:y", "..:y"])
def test_relative_genid_path_is_a_value_error(path: str) -> None:
    """A relative import path for GENID is a ValueError naming the key."""
    with pytest.raises(ValueError, match="CONNECT_SESSION_GENID"):
        ConnectSession(_configured_app("CONNECT_SESSION_GENID", path))


@pytest.mark.parametrize("name", ["a\r\nb", "a\nSet-Cookie: x=1", "a b", "a;b", "a=b", "é"])
def test_cookie_name_that_is_not_a_token_is_a_value_error(name: str) -> None:
    """A cookie name that is not an RFC 6265 token (so could not be sent, or
    would never be read back) is refused at init_app.
    """
    with pytest.raises(ValueError, match="CONNECT_SESSION_KEY"):
        ConnectSession(_configured_app("CONNECT_SESSION_KEY", name))


@pytest.mark.parametrize("domain", ["\x80", "\r", "a" * 64])
def test_stored_unrenderable_cookie_domain_is_no_500(
    rolling_app: Flask, store: Store, domain: str
) -> None:
    """A stored cookie domain no Set-Cookie header can carry does not fail the
    request that re-sends the cookie.
    """
    response = _plant_and_request(rolling_app, store, {"cookie": {"domain": domain}})
    assert response.status_code == 200


@pytest.mark.parametrize("domain", ["\x80", "\r", "a" * 64])
def test_unrenderable_configured_domain_is_a_value_error(domain: str) -> None:
    """A configured cookie domain no Set-Cookie header can carry is refused at
    init_app, not on every request.
    """
    app = _configured_app("CONNECT_SESSION_COOKIE", {"domain": domain})
    with pytest.raises(ValueError, match="CONNECT_SESSION_COOKIE"):
        ConnectSession(app)


@pytest.mark.parametrize("created", INSANE_CREATED, ids=["nan", "inf", "10**400"])
def test_stored_created_out_of_range_is_no_500(
    make_app: cabc.Callable[..., Flask], store: Store, created: object
) -> None:
    """With an absolute timeout, a stored ``_created`` that is not a usable
    time does not fail the request.
    """
    app = make_app(CONNECT_SESSION_ABSOLUTE_TIMEOUT=60)
    sid = generate_sid()
    raw_write(store, sid, _encoded({"cookie": {}, "_created": created, "a": 1}))
    client = app.test_client(use_cookies=False)
    response = client.get("/get", environ_overrides={"HTTP_COOKIE": f"{KEY}={sign(sid, SECRET)}"})
    assert response.status_code == 200


def test_undecodable_entry_with_str_responses_is_corrupt(framework: str, redis_url: str) -> None:
    """A RedisStore whose client decodes responses to str reads an entry that
    is not UTF-8 as a corrupt document (a new session), not as a store failure.
    """
    import redis

    app = fw.new_app(framework)
    store = RedisStore(redis.Redis.from_url(redis_url, decode_responses=True))
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=store)
    fw.connect(app)
    add_views(app)
    with redis.Redis.from_url(redis_url) as raw:
        raw.set("sess:planted", b"\xff\xfe{}")
    client = app.test_client(use_cookies=False)
    response = client.get(
        "/get", environ_overrides={"HTTP_COOKIE": f"{KEY}={sign('planted', SECRET)}"}
    )
    assert response.status_code == 200 and response.json["id"] != "planted"
