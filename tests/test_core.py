"""The session core on its own: express-session's lifecycle rules as tables.

No web framework and no sleep: each case builds a :class:`~.core.Core` with
a fake clock, starts a :class:`~.core.Lifecycle` for a tiny fake request
(the core's ``Request`` protocol), runs its operations with
:func:`~.calls.run` on a real :class:`MemoryStore` that records every call
made to it, and asserts on what the core decided: the predicates
(``should_save``, ``should_touch``, ``should_destroy``,
``should_set_cookie``), the store calls in order, the signals and the
:class:`~.core.Ending`. A session the browser carries is stored by an
earlier request through the same core, as an app would store it.

The fake clock starts on 2100-01-01, ahead of the store's own (wall)
clock, which it never moves: nothing stored expires during a test. Expiry
in the store is the store contract's business (``tests/stores``).
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import itertools
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from flask_connect_session import MemoryStore
from flask_connect_session import Store
from flask_connect_session import session_created
from flask_connect_session import session_destroyed
from flask_connect_session import session_regenerated
from flask_connect_session.calls import run
from flask_connect_session.cookie import Cookie
from flask_connect_session.cookie import format_expires
from flask_connect_session.core import UNTOUCHED
from flask_connect_session.core import Core
from flask_connect_session.core import Ending
from flask_connect_session.core import Lifecycle
from flask_connect_session.document import DEVICE_MEMBER
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.errors import SessionNotFound
from flask_connect_session.options import Options
from flask_connect_session.signing import Secret
from flask_connect_session.signing import sign
from flask_connect_session.signing import unsign
from flask_connect_session.users import handle

from fake_clock import FakeClock

if t.TYPE_CHECKING:
    from blinker import NamedSignal

SECRETS: tuple[Secret, ...] = ("keyboard cat",)

#: The fake clock's start: 2100-01-01T00:00:00Z, in seconds since the epoch.
T0 = 4_102_444_800.0


def at(seconds: float) -> datetime:
    """The aware UTC time ``seconds`` after :data:`T0`."""
    return datetime.fromtimestamp(T0, UTC) + timedelta(seconds=seconds)


class FakeRequest:
    """The core's ``Request`` protocol: a cookie (or header) value, HTTPS or
    not, and ids ``sid-1``, ``sid-2``... in order.
    """

    user_agent = "Browser"
    remote_addr = "203.0.113.7"

    def __init__(self, value: str | None, secure: bool, ids: cabc.Iterator[str]) -> None:
        self.value = value
        self.secure = secure
        self.ids = ids

    def generate_id(self) -> str:
        return next(self.ids)

    def signed_id(self, secrets: tuple[Secret, ...]) -> str | None:
        return None if self.value is None else unsign(self.value, secrets)


class RecordingStore(MemoryStore):
    """A real :class:`MemoryStore` that logs each call made to it, as
    ``"method sid ..."`` (a set lists the members written; a merge the
    members changed, then the removed ones with a ``-``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def get(self, sid: str) -> dict[str, t.Any] | None:
        self.log.append(f"get {sid}")
        return super().get(sid)

    def get_and_touch(self, sid: str) -> dict[str, t.Any] | None:
        self.log.append(f"get_and_touch {sid}")
        return super().get_and_touch(sid)

    def set(self, sid: str, session: dict[str, t.Any]) -> None:
        self.log.append(" ".join(["set", sid, *sorted(session)]))
        super().set(sid, session)

    def touch(self, sid: str, session: dict[str, t.Any]) -> None:
        self.log.append(f"touch {sid}")
        super().touch(sid, session)

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        removed = list(removed)
        written = [*sorted(changes), *sorted("-" + key for key in removed)]
        self.log.append(" ".join(["merge", sid, *written]))
        return super().merge(sid, changes, removed)

    def destroy(self, sid: str) -> bool:
        self.log.append(f"destroy {sid}")
        return super().destroy(sid)

    def index_add(self, user: str, sid: str, until: float) -> None:
        self.log.append(f"index_add {user} {sid}")
        super().index_add(user, sid, until)

    def index_remove(self, user: str, sid: str) -> None:
        self.log.append(f"index_remove {user} {sid}")
        super().index_remove(user, sid)

    def index_revoked(self, user: str) -> float | None:
        self.log.append(f"index_revoked {user}")
        return super().index_revoked(user)


class NoGetAndTouch(RecordingStore):
    """A store that loads and touches in two calls."""

    get_and_touch = Store.get_and_touch


class NoTouch(NoGetAndTouch):
    """A store that cannot extend a lifetime without a write (express
    stores without ``touch``).
    """

    touch = Store.touch


class Session:
    """What a view does with the session, as the drivers' session objects
    do it: the first access loads it.
    """

    def __init__(self, life: Lifecycle, env: Harness) -> None:
        self.life = life
        self.env = env

    def loaded(self) -> Lifecycle:
        if not self.life.loaded:
            run(self.life.load(), self.env)
        return self.life

    @property
    def data(self) -> dict[str, t.Any]:
        return self.loaded().data

    @property
    def cookie(self) -> Cookie:
        return self.loaded().cookie

    def regenerate(self, keep: bool = False) -> None:
        run(self.loaded().regenerate(keep), self.env)

    def destroy(self) -> None:
        run(self.loaded().destroy(), self.env)

    def reload(self) -> None:
        run(self.loaded().reload(), self.env)

    def save(self) -> None:
        run(self.loaded().save(), self.env)

    def mark_modified(self) -> None:
        self.loaded().force_modified = True


View = cabc.Callable[[Session], object]


@dataclasses.dataclass
class Outcome:
    """One request, as the core decided it."""

    #: The predicates that held: ``"save"``, ``"touch"`` and ``"destroy"``
    #: just before the end of the request, ``"set-cookie"`` once it ended
    #: (when the end decides it); ``None`` when the view never loaded the
    #: session.
    decided: str | None
    #: The store calls and signals, in order.
    calls: list[str]
    #: What the response carries.
    ending: Ending
    #: The lifecycle, for looking further.
    life: Lifecycle

    @property
    def summary(self) -> str:
        """The ending in a word or two: ``send <sid>``, ``expire``, ``-``
        (nothing but ``Vary``), ``untouched`` (not even ``Vary``).
        """
        ending = self.ending
        if ending is UNTOUCHED:
            return "untouched"
        parts = []
        if ending.send is not None:
            parts.append(f"send {unsign(ending.send, SECRETS)}")
        if ending.expire:
            parts.append("expire")
        return " ".join(parts) or "-"


class Harness:
    """A browser and an app's session core over one recording store: the
    environment the core's calls run in (see :mod:`.calls`).

    :param config: the ``CONNECT_SESSION_*`` settings.
    :param store: the store.
    :param takeover: whether the core asks for legacy sessions.
    """

    def __init__(
        self, config: dict[str, t.Any], store: RecordingStore, takeover: bool = False
    ) -> None:
        self.clock = FakeClock(T0)
        self.store = store
        self.core = Core(Options.from_config(config), store, clock=self.clock, takeover=takeover)
        self.ids = (f"sid-{n}" for n in itertools.count(1))
        #: The value the browser sends back: the last one it was sent.
        self.cookie: str | None = None
        self.log = store.log
        self.handles: dict[str, str] = {}
        self.signals = (session_created, session_destroyed, session_regenerated)
        for signal in self.signals:
            signal.connect(self.received, sender=self, weak=False)

    def close(self) -> None:
        for signal in self.signals:
            signal.disconnect(self.received, sender=self)

    # -- the environment ----------------------------------------------------

    def send_signal(
        self, signal: NamedSignal, with_session: bool, kwargs: dict[str, t.Any]
    ) -> None:
        signal.send(self, **kwargs)

    def received(self, sender: object, **kwargs: t.Any) -> None:
        # The session ids behind the handles, for readable tables.
        def sid(name: str) -> str:
            return self.handles.get(kwargs[name], "?")

        if "reason" in kwargs:
            self.log.append(f"destroyed {sid('handle')} {kwargs['reason']}")
        elif "old_handle" in kwargs:
            self.log.append(f"regenerated {sid('handle')} from {sid('old_handle')}")
        else:
            self.log.append(f"created {sid('handle')}")

    def take_over(self) -> None:
        self.log.append("take_over")

    # -- requests -----------------------------------------------------------

    def new_ids(self) -> cabc.Iterator[str]:
        """The next ids, each known by its handle."""
        for sid in self.ids:
            self.handles[handle(sid)] = sid
            yield sid

    def request(
        self, view: View | None = None, *, secure: bool = False, header: bool = False
    ) -> Outcome:
        """Run one request whose view does ``view``; the browser keeps the
        cookie it is sent, and drops one it is told to delete.
        """
        self.log.clear()
        request = FakeRequest(self.cookie, secure, self.new_ids())
        life = self.core.lifecycle(request, SECRETS, header=header)
        if view is not None:
            view(Session(life, self))
        decided: list[str] | None = None
        if life.loaded:
            tagged, text = life.current()
            predicates = {
                "save": life.should_save(text),
                "touch": life.should_touch(),
                "destroy": life.should_destroy(tagged),
            }
            decided = [name for name, held in predicates.items() if held]
        ending = run(life.end(), self)
        if decided is not None and life.should_set_cookie(life.current()[1]):
            decided.append("set-cookie")
        if ending.send is not None:
            self.cookie = ending.send
        elif ending.expire:
            self.cookie = None
        return Outcome(
            None if decided is None else " ".join(decided) or "-", list(self.log), ending, life
        )

    def start(self, data: dict[str, t.Any]) -> str:
        """Store a session holding ``data`` with a request, as an app does."""
        outcome = self.request(lambda s: s.data.update(data))
        assert outcome.ending.send is not None, outcome
        return outcome.life.sid

    def carry(self, sid: str, secret: Secret = SECRETS[0]) -> None:
        """Make the browser carry ``sid``, signed with ``secret``."""
        self.handles[handle(sid)] = sid
        self.cookie = sign(sid, secret)

    def stored(self, sid: str) -> dict[str, t.Any] | None:
        """The stored document, read without logging it."""
        return MemoryStore.get(self.store, sid)

    def destroy_behind(self, sid: str) -> None:
        """Remove ``sid`` as another request would (a logout or a revoke
        elsewhere), without logging it.
        """
        MemoryStore.destroy(self.store, sid)


@pytest.fixture
def make() -> cabc.Iterator[cabc.Callable[..., Harness]]:
    """Build a :class:`Harness`; its signal receivers go at the end."""
    made: list[Harness] = []

    def build(
        config: dict[str, t.Any] | None = None,
        store: type[RecordingStore] = RecordingStore,
        takeover: bool = False,
    ) -> Harness:
        harness = Harness(config or {}, store(), takeover)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        harness.close()


# -- views ----------------------------------------------------------------------


def ignore(s: Session) -> None:
    pass


def read(s: Session) -> None:
    s.data.get("a")


def write(s: Session) -> None:
    s.data["b"] = 2


def empty(s: Session) -> None:
    s.data.clear()


def seq(*views: View) -> View:
    """A view doing ``views`` in turn."""

    def view(s: Session) -> None:
        for one in views:
            one(s)

    return view


# -- the end of a request ---------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One request of a session, and what the core decides for it."""

    id: str
    #: The ``CONNECT_SESSION_*`` settings (and Flask's session settings).
    config: dict[str, t.Any]
    #: The data of the session the browser carries (stored by an earlier
    #: request), or ``None`` for a browser without a session.
    stored: dict[str, t.Any] | None
    view: View | None
    decided: str | None
    calls: list[str]
    ending: str
    store: type[RecordingStore] = RecordingStore
    secure: bool = False
    header: bool = False
    takeover: bool = False


EXPIRING = {"CONNECT_SESSION_COOKIE": {"max_age": 60}}
A = {"a": 1}
NEW_SID_1 = ["set sid-1 b cookie", "created sid-1"]


def new_written(name: str, cookie: dict[str, t.Any], ending: str, secure: bool = False) -> Case:
    """A new session written, with the cookie settings ``cookie``: saved,
    and its cookie sent or not.
    """
    return Case(
        f"new, written, {name}",
        {"CONNECT_SESSION_COOKIE": cookie},
        None,
        write,
        "save set-cookie",
        NEW_SID_1,
        ending,
        secure=secure,
    )


END_CASES = [
    # A new session: stored once written (or with save_uninitialized).
    Case("new, ignored", {}, None, ignore, None, [], "untouched"),
    Case("new, read", {}, None, read, "-", [], "-"),
    Case(
        "new, written",
        {},
        None,
        write,
        "save set-cookie",
        NEW_SID_1,
        "send sid-1",
    ),
    Case(
        "new, save_uninitialized, ignored",
        {"CONNECT_SESSION_SAVE_UNINITIALIZED": True},
        None,
        ignore,
        None,
        ["set sid-1 cookie", "created sid-1"],
        "send sid-1",
    ),
    Case(
        "new, save_uninitialized, read",
        {"CONNECT_SESSION_SAVE_UNINITIALIZED": True},
        None,
        read,
        "save set-cookie",
        ["set sid-1 cookie", "created sid-1"],
        "send sid-1",
    ),
    Case("new, rolling, read", {"CONNECT_SESSION_ROLLING": True}, None, read, "-", [], "-"),
    # A loaded session: saved if changed, touched (by the load, where the
    # store can), its cookie re-sent if its expiry moves.
    Case("loaded, ignored", {}, A, ignore, None, [], "untouched"),
    Case("loaded, read", {}, A, read, "-", ["get_and_touch sid-1"], "-"),
    Case(
        "loaded, read, store without get_and_touch",
        {},
        A,
        read,
        "touch",
        ["get sid-1", "touch sid-1"],
        "-",
        store=NoGetAndTouch,
    ),
    Case("loaded, read, store without touch", {}, A, read, "-", ["get sid-1"], "-", store=NoTouch),
    Case(
        "loaded, written",
        {},
        A,
        write,
        "save",
        ["get_and_touch sid-1", "merge sid-1 b cookie"],
        "-",
    ),
    Case(
        "loaded, written, store without touch",
        {},
        A,
        write,
        "save",
        ["get sid-1", "merge sid-1 b cookie"],
        "-",
        store=NoTouch,
    ),
    Case(
        "loaded, written, expiring cookie",
        EXPIRING,
        A,
        write,
        "save set-cookie",
        ["get_and_touch sid-1", "merge sid-1 b cookie"],
        "send sid-1",
    ),
    Case("loaded, read, expiring cookie", EXPIRING, A, read, "-", ["get_and_touch sid-1"], "-"),
    Case(
        "loaded, marked modified",
        {},
        A,
        Session.mark_modified,
        "save",
        ["get_and_touch sid-1", "merge sid-1 cookie"],
        "-",
    ),
    Case(
        "loaded, marked modified, expiring cookie",
        EXPIRING,
        A,
        Session.mark_modified,
        "save set-cookie",
        ["get_and_touch sid-1", "merge sid-1 cookie"],
        "send sid-1",
    ),
    Case(
        "loaded, read, resave",
        {"CONNECT_SESSION_RESAVE": True},
        A,
        read,
        "save",
        ["get_and_touch sid-1", "merge sid-1 cookie"],
        "-",
    ),
    Case(
        "loaded, read, rolling",
        {"CONNECT_SESSION_ROLLING": True},
        A,
        read,
        "set-cookie",
        ["get_and_touch sid-1"],
        "send sid-1",
    ),
    Case(
        "loaded, ignored, rolling",
        {"CONNECT_SESSION_ROLLING": True},
        A,
        ignore,
        None,
        ["get_and_touch sid-1"],
        "send sid-1",
    ),
    # Emptied: destroyed (the destroy check comes first), or kept empty.
    Case(
        "loaded, emptied",
        {},
        A,
        empty,
        "save destroy",
        ["get_and_touch sid-1", "destroy sid-1", "destroyed sid-1 unset"],
        "expire",
    ),
    Case(
        "loaded, emptied, unset keep",
        {"CONNECT_SESSION_UNSET": "keep"},
        A,
        empty,
        "save",
        ["get_and_touch sid-1", "merge sid-1 cookie -a"],
        "-",
    ),
    # Flask's session.permanent.
    Case(
        "loaded, made permanent",
        {},
        A,
        lambda s: s.data.update(_permanent=True),
        "save set-cookie",
        ["get_and_touch sid-1", "merge sid-1 _permanent cookie"],
        "send sid-1",
    ),
    Case(
        "permanent, read",
        {},
        {"a": 1, "_permanent": True},
        read,
        "set-cookie",
        ["get_and_touch sid-1"],
        "send sid-1",
    ),
    Case(
        "permanent, read, no refresh on each request",
        {"SESSION_REFRESH_EACH_REQUEST": False},
        {"a": 1, "_permanent": True},
        read,
        "-",
        ["get_and_touch sid-1"],
        "-",
    ),
    Case(
        "permanent, made not permanent",
        {"SESSION_REFRESH_EACH_REQUEST": False},
        {"a": 1, "_permanent": True},
        lambda s: s.data.update(_permanent=False),
        "save set-cookie",
        ["get_and_touch sid-1", "merge sid-1 _permanent cookie"],
        "send sid-1",
    ),
    # A secure cookie never goes over plain HTTP (the session is saved).
    new_written("secure cookie over HTTP", {"secure": True}, "-"),
    new_written("secure cookie over HTTPS", {"secure": True}, "send sid-1", secure=True),
    new_written("SameSite=None over HTTP", {"samesite": "None"}, "-"),
    new_written("secure auto over HTTP", {"secure": "auto"}, "send sid-1"),
    # Header or cookie: a header request (API client) never takes over a
    # legacy session from cookies.
    Case("new, read, takeover", {}, None, read, "-", ["take_over"], "-", takeover=True),
    Case(
        "new, read, takeover, header request",
        {},
        None,
        read,
        "-",
        [],
        "-",
        header=True,
        takeover=True,
    ),
    Case(
        "loaded, written, header request",
        EXPIRING,
        A,
        write,
        "save set-cookie",
        ["get_and_touch sid-1", "merge sid-1 b cookie"],
        "send sid-1",
        header=True,
    ),
]

SEQUENCE_CASES = [
    # regenerate(), destroy(), reload() and save() in a view, and what the
    # end of the request adds.
    Case(
        "regenerate",
        {},
        A,
        Session.regenerate,
        "save set-cookie",
        [
            "get_and_touch sid-1",
            "destroy sid-1",
            "set sid-2 cookie",
            "regenerated sid-2 from sid-1",
        ],
        "send sid-2",
    ),
    Case(
        "regenerate keeping the data but csrf_token",
        {},
        {"a": 1, "csrf_token": "t"},
        lambda s: s.regenerate(keep=True),
        "save set-cookie",
        [
            "get_and_touch sid-1",
            "destroy sid-1",
            "set sid-2 a cookie",
            "regenerated sid-2 from sid-1",
        ],
        "send sid-2",
    ),
    Case(
        "regenerate a new session",
        {},
        None,
        seq(write, lambda s: s.regenerate(keep=True)),
        "save set-cookie",
        ["set sid-2 b cookie", "created sid-2"],
        "send sid-2",
    ),
    Case(
        "destroy",
        {},
        A,
        Session.destroy,
        "-",
        ["get_and_touch sid-1", "destroy sid-1", "destroyed sid-1 destroy"],
        "expire",
    ),
    Case(
        "destroy, then written",
        {},
        A,
        seq(Session.destroy, write),
        "save set-cookie",
        [
            "get_and_touch sid-1",
            "destroy sid-1",
            "destroyed sid-1 destroy",
            "set sid-2 b cookie",
            "created sid-2",
        ],
        "send sid-2",
    ),
    Case(
        "regenerate, then destroy",
        {},
        A,
        seq(Session.regenerate, Session.destroy),
        "-",
        ["get_and_touch sid-1", "destroy sid-1", "destroyed sid-1 destroy"],
        "expire",
    ),
    Case(
        "written, then reload",
        {},
        A,
        seq(write, Session.reload),
        "-",
        ["get_and_touch sid-1", "get sid-1"],
        "-",
    ),
    Case(
        "written, then save",
        {},
        A,
        seq(write, Session.save),
        "-",
        ["get_and_touch sid-1", "merge sid-1 b cookie"],
        "-",
    ),
    Case(
        "written, save, written again",
        {},
        A,
        seq(write, Session.save, lambda s: s.data.update(c=3)),
        "save",
        ["get_and_touch sid-1", "merge sid-1 b cookie", "merge sid-1 c cookie"],
        "-",
    ),
    Case(
        "marked modified, then save",
        {},
        A,
        seq(Session.mark_modified, Session.save),
        "-",
        ["get_and_touch sid-1", "merge sid-1 cookie"],
        "-",
    ),
    Case(
        "new, written, then save",
        {},
        None,
        seq(write, Session.save),
        "set-cookie",
        NEW_SID_1,
        "send sid-1",
    ),
]


def revoked_behind(s: Session) -> None:
    """Another request removes the loaded session meanwhile (a revoke, or a
    logout on another tab).
    """
    s.env.destroy_behind(s.loaded().sid)


SEQUENCE_CASES += [
    # The session is removed by another request while this one runs: a
    # logout stays a logout, and a revoked login is never carried over.
    Case(
        "revoked meanwhile, then written",
        {},
        A,
        seq(revoked_behind, write),
        "save",
        ["get_and_touch sid-1", "merge sid-1 b cookie"],
        "-",
    ),
    Case(
        "revoked meanwhile, written, saved, written again",
        {},
        A,
        seq(revoked_behind, write, Session.save, lambda s: s.data.update(c=3)),
        "save set-cookie",
        ["get_and_touch sid-1", "merge sid-1 b cookie", "set sid-2 c cookie", "created sid-2"],
        "send sid-2",
    ),
    Case(
        "revoked meanwhile, then regenerate keeping the data",
        {},
        A,
        seq(revoked_behind, lambda s: s.regenerate(keep=True)),
        "save set-cookie",
        ["get_and_touch sid-1", "destroy sid-1", "set sid-2 cookie", "created sid-2"],
        "send sid-2",
    ),
]


def run_case(make: cabc.Callable[..., Harness], case: Case) -> Outcome:
    harness = make(case.config, case.store, case.takeover)
    if case.stored is not None:
        assert harness.start(case.stored) == "sid-1"
    return harness.request(case.view, secure=case.secure, header=case.header)


@pytest.mark.parametrize("case", END_CASES + SEQUENCE_CASES, ids=lambda case: case.id)
def test_end_of_request(make: cabc.Callable[..., Harness], case: Case) -> None:
    outcome = run_case(make, case)
    assert (outcome.decided, outcome.calls, outcome.summary) == (
        case.decided,
        case.calls,
        case.ending,
    )
    # Vary goes out whenever the response depends on the session.
    assert outcome.ending.vary is (case.ending != "untouched")


def test_reload_of_a_session_removed_meanwhile(make: cabc.Callable[..., Harness]) -> None:
    harness = make()
    harness.start(A)
    with pytest.raises(SessionNotFound):
        harness.request(seq(revoked_behind, Session.reload))
    assert harness.log == ["get_and_touch sid-1", "get sid-1"]


# -- what a request carries ----------------------------------------------------------

#: The cookie member of a session an Express app stored (browser-session).
EXPRESS_COOKIE = {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"}


def carry_stored(harness: Harness) -> None:
    harness.start(A)


def carry_unknown(harness: Harness) -> None:
    harness.carry("unknown")


def carry_other_secret(harness: Harness) -> None:
    harness.start(A)
    harness.carry("sid-1", "another secret")


def carry_forged(harness: Harness) -> None:
    harness.start(A)
    harness.cookie = "s:sid-1.forged"


def carry_corrupt(harness: Harness) -> None:
    harness.start(A)
    # Stored by a broken app: no "cookie" member.
    MemoryStore.set(harness.store, "sid-1", {"a": 1})


def carry_express_login(harness: Harness) -> None:
    # An Express app's session of user ann: not in the user index.
    MemoryStore.set(harness.store, "express-1", {"user_id": "ann", "cookie": EXPRESS_COOKIE})
    harness.carry("express-1")


def carry_revoked_express_login(harness: Harness) -> None:
    carry_express_login(harness)
    harness.store.index_revoke("ann", T0 - 10, T0 + 3600)


def carry_aged(seconds: float) -> cabc.Callable[[Harness], None]:
    def carry(harness: Harness) -> None:
        harness.start(A)
        harness.clock.set(seconds)

    return carry


TIMEOUT = {"CONNECT_SESSION_ABSOLUTE_TIMEOUT": 100}
USERS = {"CONNECT_SESSION_USER_KEY": "user_id"}
NEW_SID_2 = ["set sid-2 b cookie", "created sid-2"]

#: (id, config, what the browser carries, the calls of a request writing
#: ``b``, the ending): a session is loaded only from a validly signed id
#: the store holds in a readable, live document; anything else is a new
#: session with a new id.
LOAD_CASES = [
    ("stored", {}, carry_stored, ["get_and_touch sid-1", "merge sid-1 b cookie"], "-"),
    (
        "unknown id",
        {},
        carry_unknown,
        ["get_and_touch unknown", *NEW_SID_1],
        "send sid-1",
    ),
    ("signed with another secret", {}, carry_other_secret, NEW_SID_2, "send sid-2"),
    ("forged signature", {}, carry_forged, NEW_SID_2, "send sid-2"),
    ("corrupt document", {}, carry_corrupt, ["get_and_touch sid-1", *NEW_SID_2], "send sid-2"),
    (
        "within the absolute timeout",
        TIMEOUT,
        carry_aged(100),
        ["get_and_touch sid-1", "merge sid-1 b cookie"],
        "-",
    ),
    (
        "past the absolute timeout",
        TIMEOUT,
        carry_aged(100.001),
        [
            "get_and_touch sid-1",
            "destroy sid-1",
            "destroyed sid-1 timeout",
            "set sid-2 _created b cookie",
            "created sid-2",
        ],
        "send sid-2",
    ),
    (
        "unindexed login, filed by its first save",
        USERS,
        carry_express_login,
        [
            "get_and_touch express-1",
            "index_revoked ann",
            "index_add ann express-1",
            "merge express-1 _device b cookie",
            # Filed now: revoked since the load, it would end here.
            "index_revoked ann",
        ],
        "-",
    ),
    (
        "unindexed login of a revoked user",
        USERS,
        carry_revoked_express_login,
        [
            "get_and_touch express-1",
            "index_revoked ann",
            "destroy express-1",
            "destroyed express-1 revoke",
            "set sid-1 b cookie",
            "created sid-1",
        ],
        "send sid-1",
    ),
]


@pytest.mark.parametrize(
    ("config", "carry", "calls", "ending"),
    [case[1:] for case in LOAD_CASES],
    ids=[case[0] for case in LOAD_CASES],
)
def test_load(
    make: cabc.Callable[..., Harness],
    config: dict[str, t.Any],
    carry: cabc.Callable[[Harness], None],
    calls: list[str],
    ending: str,
) -> None:
    harness = make(config)
    carry(harness)
    outcome = harness.request(write)
    assert (outcome.calls, outcome.summary) == (calls, ending)


def test_a_corrupt_document_is_left_for_inspection(make: cabc.Callable[..., Harness]) -> None:
    harness = make()
    carry_corrupt(harness)
    harness.request(write)
    with pytest.raises(CorruptDocument):
        harness.stored("sid-1")


# -- time, on the injected clock ---------------------------------------------------

#: A touch interval of 60 s: (seconds after the session was stored, whether
#: a read-only request extends its lifetime).
INTERVAL_STEPS = [(30, False), (61, True), (91, False), (121, True)]


@pytest.mark.parametrize("cookie", [{}, {"max_age": 3600}], ids=["browser-session", "expiring"])
def test_touch_interval(make: cabc.Callable[..., Harness], cookie: dict[str, t.Any]) -> None:
    """With ``TOUCH_AFTER``, a read-only request touches only once the
    interval has passed since the last touch, which the stored document
    records (its cookie's expiry, or ``_touched``).
    """
    harness = make({"CONNECT_SESSION_TOUCH_AFTER": 60, "CONNECT_SESSION_COOKIE": cookie})
    harness.start(A)
    touch = "merge sid-1 cookie" if cookie else "merge sid-1 _touched cookie"
    for seconds, touches in INTERVAL_STEPS:
        harness.clock.set(seconds)
        outcome = harness.request(read)
        assert outcome.calls == ["get sid-1", touch][: 1 + touches], seconds
        # As in express, a touch without rolling leaves the browser's cookie.
        assert outcome.summary == "-", seconds
        stored = harness.stored("sid-1")
        assert stored is not None
        if touches and cookie:
            assert stored["cookie"]["expires"] == format_expires(at(seconds + 3600))
        elif touches:
            assert stored["_touched"] == (T0 + seconds) * 1000


def test_touch_interval_is_at_most_half_the_lifetime(make: cabc.Callable[..., Harness]) -> None:
    """An interval longer than the cookie's lifetime counts as half of it, so
    an active session is touched before it expires.
    """
    harness = make({"CONNECT_SESSION_TOUCH_AFTER": 60, "CONNECT_SESSION_COOKIE": {"max_age": 10}})
    harness.start(A)
    for seconds, touches in [(4.999, False), (5, True), (9.999, False), (10, True)]:
        harness.clock.set(seconds)
        assert len(harness.request(read).calls) == 1 + touches, seconds


#: (config, steps): each step is (seconds after the first request, the
#: view, the session id the request ends with). The first session starts
#: at 0 and lives 100 s however active; what restarts the count differs.
TIMEOUT_SCENARIOS = {
    "busy all along": (
        TIMEOUT,
        [
            (30, read, "sid-1"),
            (60, write, "sid-1"),
            (100, read, "sid-1"),
            (100.001, read, "sid-2"),
        ],
    ),
    "regenerate restarts it": (
        TIMEOUT,
        [(60, Session.regenerate, "sid-2"), (160, read, "sid-2"), (160.001, read, "sid-3")],
    ),
    "with users, regenerate keeps it": (
        {**TIMEOUT, **USERS},
        [
            (60, lambda s: s.regenerate(keep=True), "sid-2"),
            (100, read, "sid-2"),
            (100.001, read, "sid-3"),
        ],
    ),
    "with users, a login restarts it": (
        {**TIMEOUT, **USERS},
        [
            (60, lambda s: s.data.update(user_id="bob"), "sid-1"),
            (160, read, "sid-1"),
            (160.001, read, "sid-2"),
        ],
    ),
}


@pytest.mark.parametrize("scenario", sorted(TIMEOUT_SCENARIOS))
def test_absolute_timeout(make: cabc.Callable[..., Harness], scenario: str) -> None:
    config, steps = TIMEOUT_SCENARIOS[scenario]
    harness = make(config)
    harness.start({"user_id": "ann"})
    for seconds, view, sid in steps:
        harness.clock.set(seconds)
        assert harness.request(view).life.sid == sid, seconds


def test_last_seen_is_written_once_a_minute(make: cabc.Callable[..., Harness]) -> None:
    """With ``USER_KEY``, a read-only request rewrites the ``_device``
    member (and the index entry) once its last-seen time is a minute old;
    the entry lasts as long as the cookie, plus a minute.
    """
    harness = make({**USERS, "CONNECT_SESSION_COOKIE": {"max_age": 3600}})
    harness.start({"user_id": "ann"})
    write_seen = ["get_and_touch sid-1", "index_add ann sid-1", "merge sid-1 _device cookie"]
    for seconds, calls in [
        (30, ["get_and_touch sid-1"]),
        (59.999, ["get_and_touch sid-1"]),
        (60, write_seen),
        (119.999, ["get_and_touch sid-1"]),
        (120, write_seen),
    ]:
        harness.clock.set(seconds)
        assert harness.request(read).calls == calls, seconds
    stored = harness.stored("sid-1")
    assert stored is not None
    device = stored[DEVICE_MEMBER]
    assert (device["created"], device["seen"]) == (T0 * 1000, (T0 + 120) * 1000)
    assert device["until"] == (T0 + 120 + 3600 + 60) * 1000


def test_cookie_expiry_follows_the_clock(make: cabc.Callable[..., Harness]) -> None:
    """An expiring cookie's expiry is the injected time plus its max age,
    the same in the response and in the store; ``max_age`` counts down on
    the clock; each sending moves it on (``rolling``).
    """
    harness = make({"CONNECT_SESSION_COOKIE": {"max_age": 60}, "CONNECT_SESSION_ROLLING": True})
    sent: list[tuple[float, datetime | None, float | None]] = []

    def note(s: Session) -> None:
        sent.append((harness.clock() - T0, s.cookie.expires, s.cookie.max_age))

    def change(s: Session) -> None:
        s.data["c"] = 3

    for seconds, view in [(0, seq(write, note)), (20, note), (30, read), (45, change)]:
        harness.clock.set(seconds)
        outcome = harness.request(view)
        assert outcome.summary == "send sid-1", seconds
        assert outcome.ending.cookie is not None
        assert outcome.ending.cookie.expires == at(seconds + 60), seconds
    assert sent == [(0, at(60), 60.0), (20, at(60), 40.0)]
    stored = harness.stored("sid-1")
    assert stored is not None
    assert stored["cookie"] == {
        "originalMaxAge": 60_000,
        "expires": "2100-01-01T00:01:45.000Z",
        "secure": False,
        "httpOnly": True,
        "path": "/",
    }


def test_permanent_cookie_lives_the_permanent_lifetime(make: cabc.Callable[..., Harness]) -> None:
    harness = make({"PERMANENT_SESSION_LIFETIME": 3600})
    harness.start(A)
    harness.clock.set(10)
    outcome = harness.request(lambda s: s.data.update(_permanent=True))
    assert outcome.ending.cookie is not None
    assert outcome.ending.cookie.expires == at(3610)
