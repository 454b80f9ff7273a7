"""Store cost at scale: get/set with 1,000 vs 1,000,000 stored sessions,
and the memory one small session takes in MemoryStore.

    python benchmarks/scale.py [--large 1000000] [--samples 20000]

Starts its own redis-server on a free loopback port. See README.md here.
With ``--sql``, measures ``SQLStore`` on a PostgreSQL it starts instead (as
the tests do; ``postgresql`` Debian package), one table per size.

    python benchmarks/scale.py --sql [--large 1000000] [--samples 5000]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from flask_connect_session import MemoryStore  # noqa: E402
from flask_connect_session import RedisStore  # noqa: E402
from flask_connect_session import Store  # noqa: E402
from flask_connect_session.document import encode  # noqa: E402

COOKIE = {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"}


def document(n: int) -> dict[str, object]:
    """A small session: three keys, as a logged-in user's might be."""
    return {"user_id": n, "name": f"user{n}", "csrf": "x" * 32, "cookie": COOKIE}


def fill_memory(store: MemoryStore, count: int) -> None:
    for n in range(count):
        store.set(f"sid{n:012d}", document(n))


def fill_redis(client: object, count: int) -> None:
    pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
    for n in range(count):
        pipe.set(f"sess:sid{n:012d}", encode(document(n)), ex=86400)
        if n % 10000 == 9999:
            pipe.execute()
    pipe.execute()


def fill_sql(store: t.Any, count: int) -> None:
    """Fill a SQLStore's table with ``count`` small sessions, in SQL."""
    store.create_table()
    document_sql = (
        "json_build_object('user_id', n, 'name', 'user' || n, 'csrf', repeat('x', 32),"
        " 'cookie', json_build_object('originalMaxAge', null, 'expires', null,"
        " 'httpOnly', true, 'path', '/'))"
    )
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO {store.table.name} (sid, sess, expire)"
            f" SELECT 'sid' || lpad(n::text, 12, '0'), {document_sql},"
            " (now() AT TIME ZONE 'UTC') + interval '1 day'"
            f" FROM generate_series(0, {count - 1}) AS n"
        )
        conn.exec_driver_sql(f"ANALYZE {store.table.name}")


def sql_main(sizes: tuple[int, int], samples: int) -> None:
    """get/set cost of SQLStore on PostgreSQL at both sizes."""
    from flask_connect_session import SQLStore

    from server_fixtures import temporary_postgres

    with temporary_postgres() as server:
        stores: dict[int, Store] = {}
        for count in sizes:
            store = SQLStore(server.url(), table=f"session_{count}", prune_interval=None)
            fill_sql(store, count)
            stores[count] = store
        result = costs(stores, samples)
    print(f"median us per operation, {samples} random sessions each")
    print(f"{'store':12}{'op':5}{sizes[0]:>12,}{sizes[1]:>12,}{'ratio':>8}")
    for index, op in enumerate(("get", "set")):
        small, large = result[sizes[0]][index], result[sizes[1]][index]
        print(f"{'postgresql':12}{op:5}{small:12.2f}{large:12.2f}{large / small:8.2f}")


def costs(stores: dict[int, Store], samples: int) -> dict[int, tuple[float, float]]:
    """Median microseconds of get and of set on random stored sessions, for
    each population size, measured in interleaved rounds so that machine
    noise hits every size alike.
    """
    timings: dict[int, tuple[list[float], list[float]]] = {n: ([], []) for n in stores}
    rounds = 20
    for _ in range(rounds):
        for count, store in stores.items():
            gets, sets = timings[count]
            for _ in range(samples // rounds):
                sid = f"sid{random.randrange(count):012d}"
                start = time.perf_counter_ns()
                doc = store.get(sid)
                middle = time.perf_counter_ns()
                assert doc is not None
                store.set(sid, doc)
                end = time.perf_counter_ns()
                gets.append((middle - start) / 1000)
                sets.append((end - middle) / 1000)
    return {n: (statistics.median(g), statistics.median(s)) for n, (g, s) in timings.items()}


def dict_lookup_costs(sizes: tuple[int, ...], samples: int) -> dict[int, float]:
    """Median microseconds of one ``d[sid]`` in a plain dict of JSON texts of
    each size, interleaved: the floor under MemoryStore's get at that size
    (at 1,000,000 entries the dict no longer fits in the CPU caches).
    """
    dicts = {n: {f"sid{i:012d}": encode(document(i)) for i in range(n)} for n in sizes}
    timings: dict[int, list[float]] = {n: [] for n in sizes}
    rounds = 20
    for _ in range(rounds):
        for count, entries in dicts.items():
            for _ in range(samples // rounds):
                sid = f"sid{random.randrange(count):012d}"
                start = time.perf_counter_ns()
                entries[sid]
                timings[count].append((time.perf_counter_ns() - start) / 1000)
    return {n: statistics.median(values) for n, values in timings.items()}


def memory_per_session(count: int = 100_000) -> float:
    gc.collect()
    tracemalloc.start()
    store = MemoryStore()
    before = tracemalloc.get_traced_memory()[0]
    fill_memory(store, count)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--sql", action="store_true", help="SQLStore on PostgreSQL")
    args = parser.parse_args()
    if args.sql:
        sql_main((args.small, args.large), args.samples)
        return

    from server_fixtures import RedisServer
    from server_fixtures import _require_binary

    sizes = (args.small, args.large)
    results: dict[str, dict[int, tuple[float, float]]] = {}
    memories: dict[int, Store] = {}
    for count in sizes:
        memory = MemoryStore()
        fill_memory(memory, count)
        memories[count] = memory
    results["memory"] = costs(memories, args.samples)
    del memories
    gc.collect()
    lookups = dict_lookup_costs(sizes, args.samples)
    gc.collect()

    tmp = Path(tempfile.mkdtemp(prefix="fcs-scale-"))
    server = RedisServer(_require_binary("redis-server", "redis-server"), tmp)
    server.start()
    try:
        # One database per population size, in the same server.
        redis_stores: dict[int, Store] = {}
        for db, count in enumerate(sizes):
            url = server.url.rsplit("/", 1)[0] + f"/{db}"
            fill_redis(RedisStore(url).client, count)
            redis_stores[count] = RedisStore(url)
        results["redis"] = costs(redis_stores, args.samples)
    finally:
        server.stop()

    print(f"median us per operation, {args.samples} random sessions each")
    print(f"{'store':8}{'op':5}{args.small:>12,}{args.large:>12,}{'ratio':>8}")
    for name, by_count in results.items():
        for index, op in enumerate(("get", "set")):
            small, large = by_count[args.small][index], by_count[args.large][index]
            print(f"{name:8}{op:5}{small:12.2f}{large:12.2f}{large / small:8.2f}")
    small, large = lookups[args.small], lookups[args.large]
    print(f"{'dict':8}{'d[k]':5}{small:12.2f}{large:12.2f}{large / small:8.2f}", end="")
    print(f"   (+{large - small:.2f} us: the cache-miss floor under memory get)")
    print(f"MemoryStore bytes per small session (3 keys): {memory_per_session():.0f}")


if __name__ == "__main__":
    main()
