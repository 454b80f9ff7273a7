"""The store contract, over every built-in store and its real backend."""

from __future__ import annotations

import json
import math
import pickle
import threading
import time
import typing as t
from pathlib import Path

import pytest

from flask_connect_session.errors import CorruptDocument
from flask_connect_session.stores.base import implements

from store_harness import HARNESSES
from store_harness import IN_PROCESS
from store_harness import NOT_ATOMIC
from store_harness import Harness
from store_harness import Touch
from store_harness import cookie
from store_harness import doc

pytestmark = pytest.mark.slow

Document = dict[str, t.Any]


@pytest.fixture(params=list(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Harness:
    """Each built-in store in turn, fresh and empty, with its backend."""
    return HARNESSES[request.param](request)


@pytest.fixture(params=[name for name in HARNESSES if name not in NOT_ATOMIC])
def atomic_harness(request: pytest.FixtureRequest) -> Harness:
    """Each store whose merge is atomic (cachelib's generic one is documented
    as not atomic, so concurrency tests do not run on it).
    """
    harness = HARNESSES[request.param](request)
    assert harness.atomic
    return harness


@pytest.fixture(params=[name for name in HARNESSES if name not in IN_PROCESS])
def external_harness(request: pytest.FixtureRequest) -> Harness:
    """Each store whose backend something outside this process can write to."""
    harness = HARNESSES[request.param](request)
    assert harness.external
    return harness


#: JSON values that trip up naive encoders (Lua's cjson among them).
TRICKY: Document = {
    "empty_list": [],
    "empty_dict": {},
    "nested": {"a": [{}, [], [[]], {"b": {}}], "c": [[], [{}]]},
    "big": 2**70,
    "negative_big": -(2**64) - 1,
    "beyond_double": 2**53 + 1,
    "floats": [0.1, 0.30000000000000004, 1e300, -0.0, 5e-324, 1.5, 123456789.123456789],
    "unicode": "é😀\u2028\u2029中文 \U0001f600",
    "escapes": 'q"\\/\n\r\t\b\f\x00\x1f\x7f',
    "html": "</script><!--",
    "literals": [True, False, None],
    "digits": "12345678901234567890",
    "é key": 1,
    "": "empty name",
    'na"me\\': 2,
    "\n": "newline name",
}


def assert_lifetime(harness: Harness, sid: str, expected: float) -> None:
    """The backend keeps ``sid`` about ``expected`` seconds (never less,
    allowing for its clock; whole-second backends get one second more on
    purpose).
    """
    remaining = harness.remaining(sid)
    assert remaining is not None, f"{sid} has no lifetime"
    late = 1.0 if harness.whole_seconds else 0.0
    assert expected - harness.resolution - 0.5 <= remaining <= expected + late + 0.01, (
        remaining,
        expected,
    )


def stored_json(harness: Harness, sid: str) -> t.Any:
    """The stored value parsed as JSON (the generic cachelib path stores the
    document as a JSON string).
    """
    raw = harness.raw(sid)
    assert raw is not None
    value = json.loads(raw)
    return json.loads(value) if isinstance(value, str) else value


# -- get / set / destroy -----------------------------------------------------


def test_get_missing_and_destroy_missing(harness: Harness) -> None:
    assert harness.store.get("nope") is None
    harness.store.destroy("nope")
    assert harness.store.get("nope") is None


#: Generic cachelib backends cannot tell whether a delete removed anything.
UNTOLD_DESTROY = frozenset(("cachelib-simple", "cachelib-filesystem"))


def test_destroy_tells_whether_it_removed_a_session(harness: Harness) -> None:
    """``destroy`` returns whether a live session went (so a session's end is
    announced once), or ``None`` where the backend cannot tell.
    """
    store = harness.store
    store.set("s1", doc(None, a=1))
    results = (store.destroy("s1"), store.destroy("s1"), store.destroy("nope"))
    if harness.name in UNTOLD_DESTROY:
        assert results == (None, None, None)
    else:
        assert results == (True, False, False)
    assert store.get("s1") is None


def test_round_trip_of_tricky_values(harness: Harness) -> None:
    """What goes in comes out, as plain JSON in the backend, never pickle."""
    store = harness.store
    document = doc(None, **TRICKY)
    store.set("s1", document)
    assert store.get("s1") == document
    assert stored_json(harness, "s1") == document
    raw = harness.raw("s1")
    assert raw is not None and not raw.startswith((b"\x80", b"!"))


def test_get_returns_a_copy(harness: Harness) -> None:
    store = harness.store
    store.set("s1", doc(None, items=[1]))
    first = store.get("s1")
    assert first is not None
    first["items"].append(2)
    first["new"] = True
    assert store.get("s1") == doc(None, items=[1])


def test_set_replaces_and_destroy_removes(harness: Harness) -> None:
    store = harness.store
    store.set("s1", doc(None, a=1))
    store.set("s1", doc(None, b=2))
    assert store.get("s1") == doc(None, b=2)
    store.set("s2", doc(None, c=3))
    store.destroy("s1")
    assert store.get("s1") is None
    assert harness.raw("s1") is None
    assert store.get("s2") == doc(None, c=3)


# -- lifetimes (as connect-redis computes them) -------------------------------


def test_browser_session_cookie_lives_ttl(harness: Harness) -> None:
    harness.store.set("s1", doc(None, a=1))
    assert_lifetime(harness, "s1", harness.store.ttl)


def test_expiring_cookie_lives_until_it_expires_rounded_up(harness: Harness) -> None:
    document = doc(100.3, a=1)
    harness.store.set("s1", document)
    assert_lifetime(harness, "s1", 101)


def test_already_expired_cookie_deletes(harness: Harness) -> None:
    store = harness.store
    store.set("s1", doc(None, a=1))
    store.set("s1", doc(-5, a=2))
    assert store.get("s1") is None
    assert harness.raw("s1") is None


def test_touch_extends_without_rewriting(harness: Harness) -> None:
    store = harness.store
    original = doc(10, a=1)
    store.set("s1", original)
    store.touch("s1", doc(500, a="not written"))
    # A backend that never writes on a read keeps the lifetime of the save.
    assert_lifetime(harness, "s1", 500 if harness.touches else 10)
    assert store.get("s1") == original


def test_touch_never_creates_and_expired_touch_deletes(harness: Harness) -> None:
    store = harness.store
    store.touch("ghost", doc(500))
    assert store.get("ghost") is None
    assert harness.raw("ghost") is None
    store.set("s1", doc(None, a=1))
    store.touch("s1", doc(-1))
    assert (store.get("s1") is None) is harness.touches


def test_get_and_touch_extends_to_original_max_age(harness: Harness) -> None:
    store = harness.store
    assert implements(store, "get_and_touch")
    document = doc(10, a=1)
    document["cookie"]["originalMaxAge"] = 300_000
    store.set("s1", document)
    assert store.get_and_touch("s1") == document
    assert_lifetime(harness, "s1", 300 if harness.touches else 10)
    store.set("s2", doc(None, b=2))
    store.get_and_touch("s2")
    assert_lifetime(harness, "s2", store.ttl)
    assert store.get_and_touch("ghost") is None
    assert harness.raw("ghost") is None


# -- merge --------------------------------------------------------------------


def test_merge_changes_removes_and_keeps_the_rest(harness: Harness) -> None:
    store = harness.store
    store.set("s1", doc(None, a=1, b=2, keep=[], deep={"x": {}}))
    new_cookie = cookie(200)
    assert store.merge("s1", {"b": 3, "d": {}, "cookie": new_cookie}, ["a", "missing"])
    assert store.get("s1") == {
        "cookie": new_cookie,
        "b": 3,
        "keep": [],
        "deep": {"x": {}},
        "d": {},
    }
    assert_lifetime(harness, "s1", 200)


def test_merge_of_tricky_values(harness: Harness) -> None:
    store = harness.store
    store.set("s1", doc(None, **TRICKY))
    changes = {f"new {name}": value for name, value in TRICKY.items()}
    changes["nested"] = {"replaced": [[], {}]}
    assert store.merge("s1", changes, ["big", 'na"me\\'])
    expected = doc(None, **TRICKY) | changes
    del expected["big"], expected['na"me\\']
    assert store.get("s1") == expected
    assert stored_json(harness, "s1") == expected


def test_merge_without_cookie_keeps_lifetime(harness: Harness) -> None:
    store = harness.store
    original = doc(300, a=1)
    store.set("s1", original)
    assert store.merge("s1", {"b": 2}, [])
    assert store.get("s1") == original | {"b": 2}
    assert_lifetime(harness, "s1", 300)


def test_merge_of_missing_session_writes_nothing(harness: Harness) -> None:
    store = harness.store
    assert store.merge("ghost", {"a": 1, "cookie": cookie()}, []) is False
    assert store.get("ghost") is None
    assert harness.raw("ghost") is None


def test_merge_after_destroy_does_not_resurrect(harness: Harness) -> None:
    store = harness.store
    store.set("s1", doc(None, user="ann"))
    store.destroy("s1")
    assert store.merge("s1", {"cart": ["book"], "cookie": cookie()}, []) is False
    assert store.get("s1") is None
    assert harness.raw("s1") is None


def test_merge_with_expired_cookie_deletes(harness: Harness) -> None:
    store = harness.store
    store.set("s1", doc(None, a=1))
    assert store.merge("s1", {"cookie": cookie(-5)}, []) is True
    assert store.get("s1") is None


def test_concurrent_merges_of_different_keys_keep_all(atomic_harness: Harness) -> None:
    """16 threads each merge 5 keys into one session at once: all 80 stay."""
    harness = atomic_harness
    store = harness.store
    store.set("s1", doc(None, start=True))
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(5):
                assert store.merge("s1", {f"k{n}-{i}": i, "cookie": cookie()}, [])
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    document = store.get("s1")
    assert document is not None
    assert {f"k{n}-{i}" for n in range(16) for i in range(5)} <= set(document)
    assert document["start"] is True


def test_merges_racing_a_destroy_never_resurrect(atomic_harness: Harness) -> None:
    """Threads merge in a loop while the session is destroyed: once gone,
    every merge returns False and it stays gone.
    """
    harness = atomic_harness
    store = harness.store
    store.set("s1", doc(None, user="ann"))
    stop = time.monotonic() + 20
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            i = 0
            while store.merge("s1", {f"k{n}": i, "cookie": cookie()}, []):
                i += 1
                assert time.monotonic() < stop, "merge kept succeeding after destroy"
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    store.destroy("s1")
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert store.get("s1") is None
    assert harness.raw("s1") is None


# -- listing --------------------------------------------------------------------


def test_all_length_clear(harness: Harness) -> None:
    store = harness.store
    if not implements(store, "all"):
        assert not implements(store, "length") and not implements(store, "clear")
        for method in (store.all, store.length, store.clear):
            with pytest.raises(NotImplementedError):
                method()
        return
    assert store.all() == {} and store.length() == 0
    sessions = {f"s{n}": doc(None, n=n) for n in range(3)}
    for sid, document in sessions.items():
        store.set(sid, document)
    if harness.external:
        harness.plant("corrupt", b"not json")
    assert store.all() == sessions  # a corrupt entry is left out
    assert store.length() in (3, 4)  # counting does not decode
    store.set("expired", doc(-1, n=9))  # not live: not counted as removed
    assert store.clear() in ((3, 4) if harness.external else (3,))
    assert store.all() == {} and store.length() == 0
    assert store.clear() == 0
    assert all(store.get(sid) is None for sid in sessions)


def test_prune_returns_a_count(harness: Harness) -> None:
    harness.store.set("s1", doc(None, a=1))
    assert harness.store.prune() == 0
    assert harness.store.get("s1") == doc(None, a=1)


# -- corrupt and hostile entries ---------------------------------------------------

CORRUPT = [
    b"not json",
    b"[]",
    b'"a string"',
    b'{"a": 1}',
    b'{"cookie": "oops"}',
    b'{"cookie": []}',
    b'{"cookie": {}',
    b'{"cookie": {}} trailing',
    b"\xff\xfe\x00",
    b"",
]


@pytest.mark.parametrize("raw", CORRUPT, ids=repr)
def test_corrupt_entry_raises_and_is_left_in_place(harness: Harness, raw: bytes) -> None:
    store = harness.store
    harness.plant("bad", raw)
    before = harness.raw("bad")
    with pytest.raises(CorruptDocument):
        store.get("bad")
    with pytest.raises(CorruptDocument):
        store.get_and_touch("bad")
    with pytest.raises(CorruptDocument):
        store.merge("bad", {"a": 1, "cookie": cookie()}, [])
    assert harness.raw("bad") == before


def test_planted_pickle_is_never_executed(external_harness: Harness, tmp_path: Path) -> None:
    harness = external_harness
    # The payload works: unpickling it does create its file.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Touch(proof)))
    assert proof.exists()

    marker = tmp_path / "pwned"
    payload = pickle.dumps(Touch(marker))
    store = harness.store
    # Bare, and as cachelib's Redis serializer writes it ("!" + pickle).
    for raw in (payload, b"!" + payload):
        harness.plant("evil", raw)
        for call in (
            lambda: store.get("evil"),
            lambda: store.get_and_touch("evil"),
            lambda: store.merge("evil", {"a": 1, "cookie": cookie()}, []),
            lambda: store.touch("evil", doc(60)),
        ):
            try:
                assert call() in (None, False)
            except CorruptDocument:
                pass
        if implements(store, "all"):
            assert "evil" not in store.all()
    assert not marker.exists()


def test_lifetime_rounding_matches_connect_redis(harness: Harness) -> None:
    """A cookie expiring in 0.2 s gets a 1 s lifetime, not 0 (ceil)."""
    harness.store.set("s1", doc(0.2, a=1))
    remaining = harness.remaining("s1")
    assert remaining is not None
    assert remaining <= math.ceil(0.2) + (1.01 if harness.whole_seconds else 0.01)
