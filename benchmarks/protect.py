"""Per-request cost of protection at rest: hashed ids, encryption, both.

Raw WSGI requests in one process (as bench.py), on the memory store and on
a redis-server started on a free loopback port, each store with no
protection, ``CONNECT_SESSION_HASH_IDS``, ``CONNECT_SESSION_ENCRYPT`` and
both, interleaved round by round. The session holds ten keys of a typical
login (a user id, a CSRF token, a cart, flashes...). Scenarios: a read-only
request, a request changing one key, a request creating a session (one
key), and a
write right after a key rotation (the session's ten keys under the old key,
re-encrypted with the new one by that write; the store is reset between
requests, untimed). Also prints the stored size of the session and the
Redis commands of a read-only request (``INFO commandstats``).

    python benchmarks/protect.py [--rounds 15] [--batch 200]
"""

from __future__ import annotations

import json
import statistics
import time
import typing as t

from flask import Flask
from flask import session

from bench import call
from bench import connect_session
from bench import environ_for
from bench import parse_rounds
from bench import start_redis

SCENARIOS = ("reads", "increments", "creates", "rotates")
NEW_KEY = "the new key of the benchmark, 32 characters or more"
OLD_KEY = "the old key of the benchmark, 32 characters or more"
#: (hash_ids, keys) of each protection; encryption with a rotation in
#: progress (the old key decrypts what the rotation scenario plants).
PROTECTIONS: dict[str, tuple[bool, list[str] | None]] = {
    "none": (False, None),
    "hash ids": (True, None),
    "encrypt": (False, [NEW_KEY, OLD_KEY]),
    "both": (True, [NEW_KEY, OLD_KEY]),
}
#: A session after a login: ten keys.
DATA: dict[str, t.Any] = {
    "user_id": 48213,
    "_user_id": "48213",
    "_fresh": True,
    "_id": "f" * 128,
    "csrf_token": "c" * 40,
    "cart": [{"sku": "A-1", "qty": 2, "price": 9.99}, {"sku": "B-22", "qty": 1, "price": 0.5}],
    "locale": "fr_FR",
    "theme": "dark",
    "_flashes": [["message", "Welcome back!"]],
    "n": 0,
}


class Variant:
    """One store with one protection: an app, a seeded session, and the
    requests of each scenario.
    """

    def __init__(self, store_name: str, store: object, protection: str) -> None:
        hash_ids, keys = PROTECTIONS[protection]
        self.name = f"{store_name}, {protection}"
        self.encrypts = keys is not None
        self.app = connect_session(
            store, CONNECT_SESSION_HASH_IDS=hash_ids, CONNECT_SESSION_ENCRYPT=keys
        )
        add_views(self.app)
        headers = call(self.app.wsgi_app, environ_for("/seed", None))
        cookie = next(v for k, v in headers if k == "Set-Cookie").split(";")[0]
        self.environs = {
            "reads": environ_for("/reads", cookie),
            "increments": environ_for("/increments", cookie),
            "creates": environ_for("/creates", None),
            "rotates": environ_for("/increments", cookie),
        }
        ext = self.app.extensions["connect_session"]
        self.store = ext.store
        core = self.app.session_interface.core  # type: ignore[attr-defined]
        from flask_connect_session.signing import unsign

        sid = unsign(cookie.partition("=")[2], ("benchmark secret",))
        assert sid is not None
        self.protection = core.protection
        self.key = sid if self.protection is None else self.protection.store_key(sid)
        self.hashed = sid
        if self.protection is not None:
            from flask_connect_session.protect import hash_id

            self.hashed = hash_id(sid)
        self.under_old_key = self._old_document()

    def _old_document(self) -> dict[str, t.Any] | None:
        """The stored session with every member under the old key (``None``
        without encryption: nothing to rotate).
        """
        if not self.encrypts:
            return None
        from flask_connect_session.protect import Protection

        stored = self.store.get(self.key)
        document = self.protection.open(self.hashed, stored).document
        return Protection(False, [OLD_KEY]).seal(self.hashed, document)

    def time_batch(self, scenario: str, batch: int) -> float:
        """Median-friendly mean µs per request of ``batch`` requests."""
        environ, app = self.environs[scenario], self.app.wsgi_app
        if scenario != "rotates":
            start = time.perf_counter_ns()
            for _ in range(batch):
                call(app, environ)
            return (time.perf_counter_ns() - start) / batch / 1000
        total = 0
        for _ in range(batch):
            if self.under_old_key is not None:
                self.store.set(self.key, self.under_old_key)
            start = time.perf_counter_ns()
            call(app, environ)
            total += time.perf_counter_ns() - start
        return total / batch / 1000


def add_views(app: Flask) -> None:
    """The seeding view; bench.py's apps have the others."""

    @app.get("/seed")
    def seed() -> str:
        session.update(DATA)
        return "x"


def main() -> None:
    args = parse_rounds(__doc__, 15, 200)
    import random

    server, tmp = start_redis()
    try:
        import redis

        variants = []
        for protection in PROTECTIONS:
            variants.append(Variant("memory", "memory://", protection))
            variants.append(Variant("redis", server.url, protection))
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            random.shuffle(variants)
            for variant in variants:
                for scenario in SCENARIOS:
                    samples.setdefault((variant.name, scenario), []).append(
                        variant.time_batch(scenario, args.batch)
                    )
        variants.sort(key=lambda v: (not v.name.startswith("memory"), v.name))
        commands = {
            v.name: read_only_commands(v, redis.Redis.from_url(server.url)) for v in variants
        }
        sizes = {v.name: len(json.dumps(v.store.get(v.key)).encode()) for v in variants}
    finally:
        server.stop()
    med = {key: statistics.median(values) for key, values in samples.items()}
    print(f"median us/request ({args.rounds} rounds of {args.batch}), session of 10 keys")
    print(f"{'variant':22}" + "".join(f"{s:>12}" for s in SCENARIOS) + "  stored bytes")
    for variant in variants:
        row = "".join(f"{med[variant.name, s]:12.1f}" for s in SCENARIOS)
        print(f"{variant.name:22}{row}  {sizes[variant.name]:>12}")
    print("\nratio to the same store without protection")
    for variant in variants:
        base = variant.name.split(",")[0] + ", none"
        row = "".join(f"{med[variant.name, s] / med[base, s]:12.2f}" for s in SCENARIOS)
        print(f"{variant.name:22}{row}")
    print("\nRedis commands of a read-only request")
    for variant in variants:
        if variant.name.startswith("redis"):
            print(f"{variant.name:22}  {commands[variant.name]}")


def read_only_commands(variant: Variant, client: t.Any) -> dict[str, int]:
    """The Redis commands one read-only request of ``variant`` sends."""
    if not variant.name.startswith("redis"):
        return {}
    call(variant.app.wsgi_app, variant.environs["reads"])
    client.config_resetstat()
    call(variant.app.wsgi_app, variant.environs["reads"])
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if not name.startswith(("cmdstat_config", "cmdstat_info"))
    }


if __name__ == "__main__":
    main()
