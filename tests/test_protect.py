"""Protection at rest (docs/protection.rst): hashed session ids
(``CONNECT_SESSION_HASH_IDS``) and encrypted session data
(``CONNECT_SESSION_ENCRYPT``). The format's own tests run once; the
end-to-end ones on Flask and Quart (see :mod:`framework`), the
``every_store`` ones behind Flask on every built-in store over its real
backend.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import subprocess
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session import Store
from flask_connect_session import session_created
from flask_connect_session import session_destroyed
from flask_connect_session import session_regenerated
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.protect import Protection
from flask_connect_session.protect import associated_data
from flask_connect_session.protect import hash_id
from flask_connect_session.protect import looks_hashed
from flask_connect_session.signing import unsign
from flask_connect_session.users import handle

import framework as fw
from conftest import SECRET
from conftest import STORE_BUILDERS
from framework import App
from framework import request
from framework import session
from server_fixtures import _require_binary
from without_packages import run_without

KEY = "a key of at least thirty-two characters, for the tests"
OLD_KEY = "the previous key, also thirty-two characters or more"
OTHER_KEY = "another app's key, thirty-two characters or more too"
#: A value no dump of a store may show.
PLANTED = "planted-secret-value-4f1c"
VECTORS = Path(__file__).resolve().parent.parent / "node" / "test" / "vectors.json"

MakeApp = t.Callable[..., App]


def build_app(
    framework: str, store: t.Any, hash_ids: bool = True, keys: t.Any = KEY, **config: t.Any
) -> App:
    """An app of ``framework`` over ``store`` with hashed ids and ``keys``."""
    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=store,
        CONNECT_SESSION_HASH_IDS=hash_ids,
        CONNECT_SESSION_ENCRYPT=keys,
    )
    app.config.update(config)
    ext = fw.connect(app)

    @app.post("/set")
    def set_() -> dict[str, t.Any]:
        session.update(request.get_json())
        return {"id": session.id}

    @app.get("/get")
    def get() -> dict[str, t.Any]:
        return {"id": session.id, "data": dict(session)}

    @app.post("/login/<user>")
    def login(user: str) -> dict[str, t.Any]:
        session.regenerate(keep=True)
        session["user_id"] = user
        return {"id": session.id}

    @app.get("/devices")
    def devices() -> list[str]:
        return [info.handle for info in fw.resolve(ext.user_sessions(session["user_id"]))]

    @app.post("/destroy")
    def destroy() -> str:
        session.destroy()
        return "ok"

    return app


@pytest.fixture
def make_app(framework: str) -> MakeApp:
    """Build an app of ``framework`` (see :func:`build_app`)."""
    return functools.partial(build_app, framework)


def sid_of(client: t.Any) -> str:
    cookie = client.get_cookie("connect.sid")
    assert cookie is not None
    sid = unsign(cookie.value, (SECRET,))
    assert sid is not None
    return sid


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Store:
    """A fresh, empty store: the memory store, or (``every_store``) each
    kind in turn; its ``kind`` says which (for :func:`dump`).
    """
    kind = getattr(request, "param", "memory")
    built = STORE_BUILDERS[kind](request)
    built.kind = kind  # type: ignore[attr-defined]
    return built


# -- the format, without a store ---------------------------------------------


def test_vectors() -> None:
    """The stored form of fixed documents under fixed keys and nonces, which
    node/protect.js is checked against too (node/test/protect.test.js).
    """
    for vector in json.loads(VECTORS.read_text()):
        nonces = iter(bytes.fromhex(n) for n in vector["nonces"])
        protection = Protection(
            vector["hashIds"], vector["keys"], nonce=lambda size, n=nonces: next(n)
        )
        hashed = hash_id(vector["sid"])
        assert protection.store_key(vector["sid"]) == vector["storeKey"]
        stored = protection.seal(hashed, vector["document"])
        text = json.dumps(stored, separators=(",", ":"), ensure_ascii=False)
        assert text == vector["stored"], vector["name"]
        opened = protection.open(hashed, json.loads(vector["stored"]))
        assert opened.document == vector["document"]
        assert not opened.stale


def test_node_companion() -> None:
    """node/protect.js passes its own tests, the same vectors among them."""
    node = _require_binary("node", "nodejs")
    result = subprocess.run(
        [node, "--test", str(VECTORS.parent)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "# pass" in result.stdout and "# fail 0" in result.stdout


def test_hash_id() -> None:
    # SHA-256 of "apple", base64url, unpadded.
    assert hash_id("apple") == "OnvT4jYKPSnupDb8-35ExzXRF8QtHBg1QgtrmULdTxs"
    assert looks_hashed(hash_id("apple"))
    assert not looks_hashed("apple")


def test_seal_and_open() -> None:
    protection = Protection(True, [KEY])
    hashed = hash_id("sid")
    document = {
        "n": 1,
        "cookie": {"originalMaxAge": None, "expires": None},
        "_device": {"user": "42", "ip": "203.0.113.7", "agent": "Firefox"},
        "nested": {"a": [1, "é", None]},
    }
    stored = protection.seal(hashed, document)
    assert stored["cookie"] == document["cookie"]  # plain: store TTLs read it
    assert stored["_device"]["user"] == "42"  # the SQL store files rows by it
    assert set(stored["_device"]) == {"user", "sealed"}
    assert all(stored[k].startswith("fcs1.") for k in ("n", "nested"))
    text = json.dumps(stored)
    assert "203.0.113.7" not in text and "Firefox" not in text and "é" not in text
    opened = protection.open(hashed, stored)
    assert opened.document == document
    assert opened.stale == {}


@pytest.mark.parametrize(
    "tamper",
    [
        "another session",
        "another member",
        "flipped bit",
        "unknown key",
        "not base64",
        "device user",
        "encryption off",
    ],
)
def test_values_that_do_not_decrypt_are_corrupt(tamper: str) -> None:
    protection = Protection(True, [KEY])
    hashed = hash_id("sid")
    document = {"a": 1, "b": 2, "cookie": {}, "_device": {"user": "42"}}
    stored = protection.seal(hashed, document)
    reader, read_as = protection, hashed
    if tamper == "another session":
        read_as = hash_id("other sid")
    elif tamper == "another member":
        stored["a"], stored["b"] = stored["b"], stored["a"]
    elif tamper == "flipped bit":
        head, _, tail = stored["a"].rpartition(".")
        stored["a"] = f"{head}.{tail[:-2]}{'A' if tail[-2] != 'A' else 'B'}{tail[-1]}"
    elif tamper == "unknown key":
        reader = Protection(True, [OTHER_KEY])
    elif tamper == "not base64":
        stored["a"] = stored["a"][:-3] + "!!!"
    elif tamper == "device user":
        stored["_device"]["user"] = "1"
    elif tamper == "encryption off":
        reader = Protection(True, [])
    with pytest.raises(CorruptDocument):
        reader.open(read_as, stored)


def test_rotation_and_plain_values_are_stale() -> None:
    """Members under an old key, and plain ones, are read and listed for a
    new encryption at the next write.
    """
    hashed = hash_id("sid")
    old = Protection(False, [OLD_KEY]).seal(hashed, {"a": 1, "cookie": {}})
    stored = {**old, "plain": [1], "cookie": {}}
    opened = Protection(False, [KEY, OLD_KEY]).open(hashed, stored)
    assert opened.document == {"a": 1, "plain": [1], "cookie": {}}
    assert opened.stale == {"a": (old["a"], 1), "plain": ([1], [1])}
    # Without encryption, plain values are simply values.
    assert Protection(True, []).open(hashed, {"plain": [1], "cookie": {}}).stale == {}


def test_associated_data() -> None:
    assert associated_data("H", "k") == b"fcs1\x00H\x00k"
    # A lone surrogate is written as Node writes it: U+FFFD.
    assert associated_data("H", "\ud800") == b"fcs1\x00H\x00\xef\xbf\xbd"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("short", "at least 32 characters"),
        ([KEY, 42], "at least 32 characters"),
        ([KEY, KEY], "the same key"),
        ([], "a key or a list of keys"),
        ({"k": KEY}, "a key or a list of keys"),
    ],
)
def test_bad_keys_are_value_errors(value: object, message: str) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_ENCRYPT=value)
    with pytest.raises(ValueError, match=f"CONNECT_SESSION_ENCRYPT: .*{message}"):
        ConnectSession(app)


def test_hash_ids_is_a_boolean() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_HASH_IDS="maybe")
    with pytest.raises(ValueError, match="CONNECT_SESSION_HASH_IDS"):
        ConnectSession(app)


def test_encryption_without_cryptography_names_the_key_and_package() -> None:
    out = run_without(
        "cryptography",
        f"""
        from flask import Flask
        from flask_connect_session import ConnectSession
        app = Flask(__name__)
        app.config.update(SECRET_KEY="s", CONNECT_SESSION_ENCRYPT={KEY!r})
        try:
            ConnectSession(app)
        except ValueError as exc:
            print(exc)
        app = Flask(__name__)
        app.config.update(SECRET_KEY="s", CONNECT_SESSION_HASH_IDS=True)
        ConnectSession(app)  # hashing needs no package
        print("hashing ok")
        """,
    )
    assert "CONNECT_SESSION_ENCRYPT" in out and "cryptography" in out
    assert "hashing ok" in out


def test_gen_key(framework: str) -> None:
    """``flask session gen-key`` and ``quart session gen-key``."""
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, TESTING=True)
    fw.connect(app)
    runner = app.test_cli_runner()
    keys = {runner.invoke(args=["session", "gen-key"]).output.strip() for _ in range(2)}
    assert len(keys) == 2
    for key in keys:
        assert len(key) == 43 and looks_hashed(key)
        other = Flask(__name__)
        other.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_ENCRYPT=key)
        ConnectSession(other)  # a valid key


# -- every store ---------------------------------------------------------------


def dump(store: Store, request: pytest.FixtureRequest) -> str:
    """Everything the store's backend holds, as text: every key and value of
    Redis, every row of the SQL table, every file (names included), every
    memcached item, every entry of the memory store.
    """
    kind = store.kind  # type: ignore[attr-defined]
    parts: list[str] = []
    if kind == "memory":
        assert isinstance(store, MemoryStore)
        parts.append(repr((store._entries, store._users, store._revoked)))
    elif kind == "filesystem":
        for path in sorted(Path(store.directory).rglob("*")):  # type: ignore[attr-defined]
            parts.append(str(path))
            if path.is_file():
                parts.append(path.read_bytes().decode("utf-8", "replace"))
    elif kind in ("redis", "redis-cluster"):
        client = store.client  # type: ignore[attr-defined]
        keys = (
            client.scan_iter(target_nodes=client.PRIMARIES)
            if kind == "redis-cluster"
            else client.scan_iter()
        )
        for key in keys:
            kind_of = client.type(key)
            kind_of = kind_of.decode() if isinstance(kind_of, bytes) else kind_of
            if kind_of == "string":
                value: object = client.get(key)
            elif kind_of == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                value = kind_of
            parts.append(f"{key!r} {value!r}")
    elif kind == "memcached":
        server = request.getfixturevalue("memcached_server")
        for key in _memcached_keys(server.host, server.port):
            parts.append(f"{key} {server.client().get(key)!r}")
    else:  # SQL
        import sqlalchemy as sa

        with store.engine.connect() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(sa.select(store.table)).all()  # type: ignore[attr-defined]
        parts += [repr(tuple(row)) for row in rows]
    text = "\n".join(parts)
    assert text, "the dump is empty: it would prove nothing"
    return text


def _memcached_keys(host: str, port: int) -> list[str]:
    from urllib.parse import unquote

    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    keys = []
    for line in data.decode().splitlines():
        if line.startswith("key="):
            keys.append(unquote(line.split()[0][4:]))
    return keys


@pytest.mark.every_store
def test_a_dump_holds_no_session_id_and_no_data(
    make_app: MakeApp,
    store: Store,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With both options on, whatever the store holds after logins,
    regenerations, writes and reads (the user index included, where the
    store keeps one), and whatever was logged, shows no session id, no
    signed cookie and none of the data.
    """
    caplog.set_level(logging.DEBUG)
    user_key = "user_id" if store.kind not in ("memcached",) else None  # type: ignore[attr-defined]
    app = make_app(store, CONNECT_SESSION_USER_KEY=user_key)
    sids: list[str] = []
    cookies: list[str] = []
    for n in range(2):
        client = app.test_client()
        client.post("/set", json={"secret": PLANTED, "n": n})
        sids.append(sid_of(client))
        client.post("/login/ann")
        sids.append(sid_of(client))
        client.post("/set", json={"more": PLANTED * 2})
        assert client.get("/get").json["data"]["secret"] == PLANTED  # type: ignore[index]
        cookie = client.get_cookie("connect.sid")
        assert cookie is not None
        cookies.append(cookie.value)
    text = dump(store, request) + "\n".join(r.getMessage() for r in caplog.records)
    assert len(set(sids)) == 4
    for sid in sids:
        assert sid not in text
        assert sid[:12] not in text
    for cookie in cookies:
        assert cookie not in text
    assert PLANTED not in text
    # User names are the index's keys (and the SQL rows' user_id): readable.
    if user_key is not None:
        assert "ann" in text


@pytest.mark.every_store
def test_turning_protection_on_logs_no_one_out(make_app: MakeApp, store: Store) -> None:
    """A session stored plain, under its id, keeps working when both options
    are turned on; its first request moves it under its hash and encrypts
    it, and the next one finds it there.
    """
    user_key = "user_id" if store.kind != "memcached" else None  # type: ignore[attr-defined]
    plain = make_app(store, hash_ids=False, keys=None, CONNECT_SESSION_USER_KEY=user_key)
    client = plain.test_client()
    client.post("/login/ann")
    client.post("/set", json={"note": PLANTED})
    sid = sid_of(client)
    assert store.get(sid) is not None

    protected = make_app(store, CONNECT_SESSION_USER_KEY=user_key)
    cookie = client.get_cookie("connect.sid")
    assert cookie is not None
    other = protected.test_client()
    other.set_cookie("connect.sid", cookie.value)
    assert other.get("/get").json == {  # type: ignore[comparison-overlap]
        "id": sid,
        "data": {"user_id": "ann", "note": PLANTED},
    }
    assert store.get(sid) is None  # moved under its hash...
    stored = store.get(hash_id(sid))
    assert stored is not None and PLANTED not in json.dumps(stored)  # ...and encrypted
    if user_key is not None:
        assert other.get("/devices").json == [handle(sid)]  # its index entry moved too
    assert other.get("/get").json["data"]["note"] == PLANTED  # type: ignore[index]
    other.post("/set", json={"n": 2})
    assert other.get("/get").json["data"] == {  # type: ignore[index]
        "user_id": "ann",
        "note": PLANTED,
        "n": 2,
    }


@pytest.mark.parametrize("switch", ["hash_ids", "encrypt"])
def test_turning_each_on_logs_no_one_out(make_app: MakeApp, switch: str) -> None:
    store = MemoryStore()
    plain = make_app(store, hash_ids=False, keys=None)
    client = plain.test_client()
    client.post("/set", json={"note": "kept"})
    sid = sid_of(client)
    hash_ids = switch == "hash_ids"
    app = make_app(store, hash_ids=hash_ids, keys=None if hash_ids else KEY)
    again = app.test_client()
    again.set_cookie("connect.sid", t.cast(t.Any, client.get_cookie("connect.sid")).value)
    assert again.get("/get").json == {"id": sid, "data": {"note": "kept"}}
    if hash_ids:
        assert store.get(sid) is None and store.get(hash_id(sid)) == {
            "note": "kept",
            "cookie": t.cast(dict[str, t.Any], store.get(hash_id(sid)))["cookie"],
        }
    else:
        assert t.cast(dict[str, t.Any], store.get(sid))["note"] == "kept"  # read plain...
        again.post("/set", json={"n": 1})
        stored = t.cast(dict[str, t.Any], store.get(sid))
        assert stored["note"].startswith("fcs1.")  # ...encrypted at its next write


@pytest.mark.every_store
def test_tampered_or_foreign_values_are_corrupt_documents(
    make_app: MakeApp, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A value that does not decrypt (another session's, another app's key,
    tampered with) is a corrupt document: logged, a new session, the entry
    left in place.
    """
    app = make_app(store)
    victim, attacker = app.test_client(), app.test_client()
    victim.post("/set", json={"role": "user"})
    attacker.post("/set", json={"role": "admin"})
    victim_key, attacker_key = hash_id(sid_of(victim)), hash_id(sid_of(attacker))
    planted = t.cast(dict[str, t.Any], store.get(victim_key))
    planted["role"] = t.cast(dict[str, t.Any], store.get(attacker_key))["role"]
    store.set(victim_key, planted)
    with caplog.at_level(logging.ERROR, "flask_connect_session"):
        response = victim.get("/get")
    assert response.status_code == 200
    assert response.json["data"] == {}  # type: ignore[index]
    assert response.json["id"] != sid_of(attacker)  # type: ignore[index]
    assert "corrupt session document" in caplog.text
    assert store.get(victim_key) == planted  # left in place
    # Another app's key: the same.
    foreign = make_app(store, keys=OTHER_KEY).test_client()
    foreign.set_cookie("connect.sid", t.cast(t.Any, attacker.get_cookie("connect.sid")).value)
    assert foreign.get("/get").json["data"] == {}  # type: ignore[index]


@pytest.mark.every_store
def test_key_rotation(make_app: MakeApp, store: Store) -> None:
    """The first key encrypts, all decrypt; a session's next write encrypts
    its whole document with the first key, untouched members included, so
    the old key can then be retired.
    """
    old = make_app(store, keys=OLD_KEY)
    client = old.test_client()
    client.post("/set", json={"a": 1, "b": [2], "c": {"d": PLANTED}})
    cookie = t.cast(t.Any, client.get_cookie("connect.sid")).value
    key = hash_id(sid_of(client))

    rotated = make_app(store, keys=[KEY, OLD_KEY]).test_client()
    rotated.set_cookie("connect.sid", cookie)
    assert rotated.get("/get").json["data"] == {"a": 1, "b": [2], "c": {"d": PLANTED}}  # type: ignore[index]
    rotated.post("/set", json={"a": 10})

    new_only = Protection(True, [KEY])
    stored = t.cast(dict[str, t.Any], store.get(key))
    assert new_only.open(key, stored).document["c"] == {"d": PLANTED}
    retired = make_app(store, keys=KEY).test_client()
    retired.set_cookie("connect.sid", cookie)
    assert retired.get("/get").json["data"] == {"a": 10, "b": [2], "c": {"d": PLANTED}}  # type: ignore[index]


@pytest.mark.every_store
def test_rotation_loses_to_a_concurrent_change(make_app: MakeApp, store: Store) -> None:
    """A request that re-encrypts a member under the old key writes it only
    if no other request changed that member since it read it: the other
    request's change wins.
    """
    old = make_app(store, keys=OLD_KEY)
    client = old.test_client()
    client.post("/set", json={"x": "old", "y": "old"})
    cookie = t.cast(t.Any, client.get_cookie("connect.sid")).value
    app = make_app(store, keys=[KEY, OLD_KEY])
    other = app.test_client()
    other.set_cookie("connect.sid", cookie)

    @app.post("/race")
    def race() -> str:
        session.get("x")  # loaded: "y" is still under the old key
        assert other.post("/set", json={"y": "changed"}).status_code == 200
        session["x"] = "new"  # re-encrypts "y" only if it is still as read
        return "ok"

    racer = app.test_client()
    racer.set_cookie("connect.sid", cookie)
    assert racer.post("/race").status_code == 200
    assert other.get("/get").json["data"] == {"x": "new", "y": "changed"}  # type: ignore[index]


@pytest.mark.parametrize("hash_ids", [False, True])
def test_handles_do_not_depend_on_hash_ids(make_app: MakeApp, hash_ids: bool) -> None:
    """A session's handle is the same with or without hashed ids: in the
    signals and in the listing of the user's sessions.
    """
    app = make_app(MemoryStore(), hash_ids=hash_ids, CONNECT_SESSION_USER_KEY="user_id")
    sent: list[tuple[str, str]] = []

    def created(sender: App, handle: str, **kwargs: t.Any) -> None:
        sent.append(("created", handle))

    def regenerated(sender: App, handle: str, old_handle: str, **kwargs: t.Any) -> None:
        sent.append(("regenerated", old_handle))
        sent.append(("regenerated to", handle))

    def destroyed(sender: App, handle: str, **kwargs: t.Any) -> None:
        sent.append(("destroyed", handle))

    client = app.test_client()
    with (
        session_created.connected_to(created, app),
        session_regenerated.connected_to(regenerated, app),
        session_destroyed.connected_to(destroyed, app),
    ):
        client.post("/login/ann")
        first = sid_of(client)
        assert client.get("/devices").json == [handle(first)]
        client.post("/login/bob")
        second = sid_of(client)
        assert client.get("/devices").json == [handle(second)]
        client.post("/destroy")
    assert sent == [
        ("created", handle(first)),
        ("regenerated", handle(first)),
        ("regenerated to", handle(second)),
        ("destroyed", handle(second)),
    ]


def test_read_only_request_costs_one_round_trip(
    make_app: MakeApp, redis_server: t.Any, redis_url: str
) -> None:
    """Counted by Redis: with both options on, a read-only request of an
    indexed session is still one GETEX; the first request after turning
    hashing on moves the session, and the next ones are one GETEX again.
    """
    from test_concurrency import CommandStats

    stats = CommandStats(redis_server)
    try:
        store = redis_url  # each app builds its store, as from its config
        plain = make_app(store, hash_ids=False, keys=None, CONNECT_SESSION_USER_KEY="user_id")
        client = plain.test_client()
        client.post("/login/ann")
        app = make_app(store, CONNECT_SESSION_USER_KEY="user_id")
        moved = app.test_client()
        moved.set_cookie("connect.sid", t.cast(t.Any, client.get_cookie("connect.sid")).value)
        moved.get("/get")  # moves it
        stats.reset()
        for _ in range(5):
            moved.get("/get")
        assert stats.calls() == {"getex": 5}
        # A validly signed id the store does not have: its hash, its id, and
        # its hash again (a concurrent move may have just stored it there).
        moved.post("/destroy")
        stats.reset()
        moved.set_cookie("connect.sid", t.cast(t.Any, client.get_cookie("connect.sid")).value)
        moved.get("/get")
        assert stats.calls() == {"getex": 1, "get": 2}
    finally:
        stats.client.close()


def test_cli_show_decrypts_an_id_that_looks_like_a_hash(make_app: MakeApp) -> None:
    """A 43-character id (a ``genid`` of one's own), its session encrypted
    before ``CONNECT_SESSION_HASH_IDS`` was on: ``session show`` finds it under
    the id and decrypts it, though the id looks like a hashed key.
    """
    store = MemoryStore()
    sid = hash_id("not a hash, an id of 43 characters")
    before = make_app(store, hash_ids=False, CONNECT_SESSION_GENID=lambda request: sid)
    before.test_client().post("/set", json={"note": PLANTED})
    assert store.get(sid) is not None and looks_hashed(sid)
    shown = make_app(store).test_cli_runner().invoke(args=["session", "show", sid])
    assert shown.exit_code == 0, shown.output
    assert PLANTED in shown.output


def test_cli_show_and_delete_find_hashed_sessions(make_app: MakeApp) -> None:
    """``flask session show/delete`` and ``quart session show/delete`` find a
    session by its id or its hashed key, and show it decrypted.
    """
    store = MemoryStore()
    app = make_app(store)
    client = app.test_client()
    client.post("/set", json={"note": PLANTED})
    sid = sid_of(client)
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["session", "show", sid])
    assert shown.exit_code == 0 and PLANTED in shown.output  # decrypted
    listed = runner.invoke(args=["session", "list", "--json"])
    assert json.loads(listed.output)[0]["id"] == hash_id(sid)
    by_key = runner.invoke(args=["session", "show", hash_id(sid)])
    assert by_key.exit_code == 0 and PLANTED in by_key.output
    deleted = runner.invoke(args=["session", "delete", sid])
    assert deleted.exit_code == 0 and store.get(hash_id(sid)) is None
