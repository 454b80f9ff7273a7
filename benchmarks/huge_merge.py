"""How long one merge into a huge stored session blocks Redis.

Redis runs one script at a time and answers no other client meanwhile. A
merge into a session another writer changed since this process read it is
spliced in Lua, which scans the stored JSON at Lua speed; with a huge value
(written by another app, or before ``CONNECT_SESSION_MAX_SIZE``) one merge
could stall every client. The store now leaves values over
``SCRIPT_LIMIT`` to a compare-and-swap whose comparison runs at C speed.

For each document (plain text, or text full of escapes), the merge is run
as the store does it now, and with the script allowed to scan any size (the
old behaviour), while another process sends PINGs in a loop; printed (the
median of the runs): the longest PING wait during the merge, and the
longest command Redis ran (its slow log, which times each command).

Starts its own redis-server on a free loopback port. See README.md here.

    python benchmarks/huge_merge.py [--megabytes 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def documents(size: int) -> dict[str, dict[str, t.Any]]:
    cookie = {"originalMaxAge": None, "expires": None, "path": "/"}
    return {
        "plain text": {"cookie": cookie, "blob": "x" * size},
        # Each escape is a step of the Lua scanner's slow path.
        "escapes": {"cookie": cookie, "blob": "\n" * (size // 2)},
    }


def pinger(url: str, started: t.Any, stop: t.Any, result: t.Any) -> None:
    """PING in a loop until ``stop`` is set; put the longest wait (s) in
    ``result``. Run in a process of its own: a thread would also wait for
    the merging thread's hold on the GIL.
    """
    import redis

    connection = redis.Redis.from_url(url).connection_pool.make_connection()
    longest = 0.0
    started.set()
    while not stop.is_set():
        start = time.perf_counter()
        connection.send_command("PING")
        connection.read_response()
        longest = max(longest, time.perf_counter() - start)
    connection.disconnect()
    result.put(longest)


def one_merge(
    store: t.Any, client: t.Any, url: str, document: dict[str, t.Any]
) -> tuple[float, float]:
    """Merge into ``document`` after another writer changed it; return the
    longest PING wait during the merge and the longest command Redis ran
    (its slow log), in ms.
    """
    from flask_connect_session.document import encode

    client.set("sess:big", encode(document), ex=600)
    store.get("big")  # this process read it...
    client.set("sess:big", encode({**document, "theirs": 1}), keepttl=True)  # ...then another
    client.slowlog_reset()
    started, stop, result = (
        multiprocessing.Event(),
        multiprocessing.Event(),
        multiprocessing.Queue(),
    )
    process = multiprocessing.Process(target=pinger, args=(url, started, stop, result))
    process.start()
    started.wait()
    time.sleep(0.05)
    assert store.merge("big", {"mine": 1}, [])
    time.sleep(0.01)
    stop.set()
    longest_ping = result.get()
    process.join()
    # Microseconds each command took inside Redis.
    longest_command = max(entry["duration"] for entry in client.slowlog_get(-1)) / 1000
    return longest_ping * 1000, longest_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from index_cost import open_store

    from flask_connect_session.stores import redis as redis_store

    with open_store("redis", Path(tempfile.mkdtemp(prefix="fcs-huge-"))) as store:
        client = store.client
        kwargs = client.connection_pool.connection_kwargs
        url = f"redis://{kwargs['host']}:{kwargs['port']}/0"
        store.max_size = 0
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 1_000_000)  # the PINGs are many
        size = int(args.megabytes * 1_000_000)
        print(f"{'document':12} {'merge':22} {'longest PING ms':>16} {'longest command ms':>19}")
        for name, document in documents(size).items():
            for variant, limit in (
                ("script scans any size", 1 << 40),
                ("now", redis_store.SCRIPT_LIMIT),
            ):
                with mock.patch.object(redis_store, "SCRIPT_LIMIT", limit):
                    results = [one_merge(store, client, url, document) for _ in range(args.runs)]
                waits, scripts = zip(*results, strict=True)
                print(
                    f"{name:12} {variant:22} {statistics.median(waits):>16.1f}"
                    f" {statistics.median(scripts):>19.1f}"
                )


if __name__ == "__main__":
    main()
