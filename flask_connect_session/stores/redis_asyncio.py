"""Sessions in Redis (or Valkey) for asyncio apps, through ``redis.asyncio``:
the keys, values and TTLs of :class:`~.redis.RedisStore`, byte for byte.
"""

from __future__ import annotations

import collections.abc as cabc
import importlib
import math
import typing as t

from .base import AsyncStore
from .base import Document
from .base import decode_entries
from .redis import BATCH_SIZE
from .redis import SWAP_ATTEMPTS
from .redis import RedisLayout
from .redis import _found
from .redis import _members
from .redis import _now_ms
from .redis import _undecodable_is_corrupt
from .redis import is_noscript_error
from .redis import is_watch_error

_K = t.TypeVar("_K")


async def _batches(items: cabc.AsyncIterator[_K]) -> cabc.AsyncIterator[list[_K]]:
    batch: list[_K] = []
    async for item in items:
        batch.append(item)
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


class AsyncRedisStore(RedisLayout, AsyncStore):
    """:class:`~flask_connect_session.RedisStore` for asyncio apps (Quart),
    over a ``redis.asyncio`` client: the same keys (``<key_prefix><sid>``),
    JSON values and TTLs, the same per-user index and revoke records, and
    the same commands (the merge in one round trip, by ``SET ... IFEQ`` or
    the Lua script, ``GETEX`` loads, ``SCAN`` listings), so a Flask app on
    ``RedisStore``, a Quart app on this store and an Express app on
    connect-redis share sessions.

    :param client_or_url: a ``redis://``, ``rediss://``, ``unix://`` or
        ``valkey://`` URL, or a ready asyncio client: ``redis.asyncio.Redis``,
        ``redis.asyncio.cluster.RedisCluster``, the master client of
        ``redis.asyncio.sentinel.Sentinel``, their ``valkey.asyncio`` twins.
    :param key_prefix: prefix of the session keys.
    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry.
    :param index_prefix: prefix of the per-user index keys (see
        :class:`~flask_connect_session.RedisStore`).
    :param revoked_prefix: prefix of the per-user revoke records.

    .. versionadded:: 0.1
    """

    asyncio = True

    async def aclose(self) -> None:
        """Close the connections this store opened: its client (and a
        Sentinel client's sentinels) if it made it from a URL, and those of
        the cluster nodes it merged on directly.
        """
        clients = [*self._nodes.values()]
        if self._own_client:
            # A Sentinel master client's sentinels have clients of their own.
            manager = getattr(self.client.connection_pool, "sentinel_manager", None)
            clients += [self.client, *getattr(manager, "sentinels", ())]
        self._nodes.clear()
        for client in clients:
            # aclose() since redis-py 5.0.1, close() before.
            close = getattr(client, "aclose", None) or client.close
            await close()

    async def get(self, sid: str) -> Document | None:
        with _undecodable_is_corrupt():
            value = await self.client.get(self._key(sid))
        return self._loaded(sid, value)

    async def get_and_touch(self, sid: str) -> Document | None:
        """As :meth:`RedisStore.get_and_touch
        <flask_connect_session.RedisStore.get_and_touch>`: one ``GETEX``.
        """
        key = self._key(sid)
        guess = self._lifetime(sid)
        with _undecodable_is_corrupt():
            value = await (self.client.getex(key, ex=guess) if guess > 0 else self.client.get(key))
        document = self._loaded(sid, value)
        lifetime = None if document is None else self._correction(sid, document, guess)
        if lifetime is not None:
            await self.client.expire(key, lifetime)
        return document

    async def set(self, sid: str, session: Document) -> None:
        ttl = self._written(sid, session)
        if ttl > 0:
            await self.client.set(self._key(sid), self.encoded(session), ex=ttl)
        else:
            await self.client.delete(self._key(sid))

    async def destroy(self, sid: str) -> bool:
        return bool(await self.client.delete(self._key(sid)))

    async def touch(self, sid: str, session: Document) -> None:
        await self.client.expire(self._key(sid), self._written(sid, session))

    async def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        """As :meth:`RedisStore.merge <flask_connect_session.RedisStore.merge>`:
        atomic, one ``SET ... IFEQ`` where the server has it and the session
        is unchanged since read, else one script call, a value too long for
        the script merged in an optimistic transaction.
        """
        removed = list(removed)
        plan = self._merge_plan(sid, changes, removed)
        key = self._key(sid)
        if not plan.swap:
            command = self._compare_and_set(key, plan)
            if command is not None:
                try:
                    reply = await self.client.execute_command(*command)
                    if self._compare_and_set_done(sid, plan, reply):
                        return True
                except Exception as exc:
                    if not self._compare_and_set_refused(exc):
                        raise
            args = self._script_args(plan, changes, removed)
            merged = self._merge_outcome(sid, plan, await self._run(self._merge, key, args))
            if merged is not None:
                return merged
        client = self._node_client(key)
        for _ in range(SWAP_ATTEMPTS):
            async with client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    with _undecodable_is_corrupt():
                        raw = await pipe.get(key)
                    if raw is None:
                        return False
                    new = self._merged(raw, changes, removed, plan.ttl)
                    pipe.multi()
                    self._queue_write(pipe, key, new, plan.ttl)
                    await pipe.execute()
                    return True
                except Exception as exc:
                    if not is_watch_error(exc):
                        raise
        raise RuntimeError(f"merge of a session lost {SWAP_ATTEMPTS} races in a row")

    async def _run(self, script: t.Any, key: bytes | str, args: list[t.Any]) -> t.Any:
        """As :meth:`RedisStore._run
        <flask_connect_session.RedisStore._run>`: ``EVALSHA``, loading the
        script on ``NOSCRIPT``.
        """
        try:
            return await self.client.evalsha(script.sha, 1, key, *args)
        except Exception as exc:
            if not is_noscript_error(exc):
                raise
        script.sha = await self.client.script_load(script.script)
        return await self.client.evalsha(script.sha, 1, key, *args)

    def _node_client(self, key: str) -> t.Any:
        """The client a transaction on ``key`` goes through: on a cluster, a
        plain client of the key's primary, with the cluster's connection
        settings (asyncio cluster pipelines of older redis-py releases have
        no transactions).
        """
        if not self.cluster:
            return self.client
        node = self.client.get_node_from_key(key)
        client = self._nodes.get(node.name)
        if client is None:
            # redis.asyncio or valkey.asyncio, as the cluster client is.
            package = type(self.client).__module__.rpartition(".cluster")[0]
            module = importlib.import_module(package)
            pool = module.ConnectionPool(
                connection_class=node.connection_class, **node.connection_kwargs
            )
            client = getattr(module, "Redis", None) or module.Valkey
            client = self._nodes[node.name] = client(connection_pool=pool)
        return client

    async def _keys(self, prefix: str | None = None) -> cabc.AsyncIterator[bytes | str]:
        scan = self._scan(prefix)
        async for key in self.client.scan_iter(**scan.kwargs):
            if scan.wanted(key):
                yield key

    async def _entries(
        self, prefix: str | None = None
    ) -> cabc.AsyncIterator[tuple[bytes | str, bytes | str]]:
        """The keys under the prefix with their string values."""
        async for batch in _batches(self._keys(prefix)):
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                pipe.get(key)
            values = await pipe.execute(raise_on_error=False)
            for key, value in zip(batch, values, strict=True):
                if isinstance(value, bytes | str):
                    yield key, value

    async def _session_keys(self) -> cabc.AsyncIterator[bytes | str]:
        async for key, value in self._entries():
            if self._holds_session(value):
                yield key

    async def _index_keys(self) -> cabc.AsyncIterator[bytes | str]:
        """The per-user index keys: the sorted sets under ``index_prefix``."""
        async for batch in _batches(self._keys(self.index_prefix)):
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                pipe.type(key)
            kinds = await pipe.execute()
            for key, kind in zip(batch, kinds, strict=True):
                if kind in (b"zset", "zset"):
                    yield key

    async def _revoked_keys(self) -> cabc.AsyncIterator[bytes | str]:
        """The revoke records: the keys under ``revoked_prefix`` holding a number."""
        async for key, value in self._entries(self.revoked_prefix):
            if self._revoked_at(value) is not None:
                yield key

    async def all(self) -> dict[str, Document]:
        """As :meth:`RedisStore.all <flask_connect_session.RedisStore.all>`."""
        values: dict[str, bytes | str | None] = {}
        async for key, value in self._entries():
            sid = self._sid(key)
            if sid is not None:
                values[sid] = value
        return decode_entries(values)

    async def length(self) -> int:
        """As :meth:`RedisStore.length <flask_connect_session.RedisStore.length>`."""
        return sum([1 async for _ in self._session_keys()])

    async def clear(self) -> int:
        """As :meth:`RedisStore.clear <flask_connect_session.RedisStore.clear>`."""
        removed = await self._unlink(self._session_keys())
        await self._unlink(self._index_keys())
        await self._unlink(self._revoked_keys())
        return removed

    async def _unlink(self, keys: cabc.AsyncIterator[bytes | str]) -> int:
        removed = 0
        async for batch in _batches(keys):
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                # A command per key (as a cluster's asyncio pipeline's
                # unlink() is no pipeline command, but one of its own).
                pipe.execute_command("UNLINK", key)
            removed += sum(await pipe.execute())
        return removed

    # -- the per-user index ------------------------------------------------

    async def _update_key(self, key: bytes | str, until: str, sids: cabc.Iterable[str]) -> int:
        return int(await self._run(self._index, key, self._index_args(until, sids)))

    async def index_prune(self) -> int:
        """As :meth:`RedisStore.index_prune
        <flask_connect_session.RedisStore.index_prune>`.
        """
        removed = 0
        for key in [key async for key in self._index_keys()]:
            removed += await self._update_key(key, "", ())
            sids = _members(await self.client.zrange(key, *self._outlived_range(), byscore=True))
            exists = await self._exist(sids)
            gone = [sid for sid, there in zip(sids, exists, strict=True) if not there]
            if gone:
                await self._update_key(key, "", gone)
            removed += len(gone)
        return removed

    async def _exist(self, sids: list[str]) -> list[t.Any]:
        if not sids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for sid in sids:
            pipe.execute_command("EXISTS", self._key(sid))
        return list(await pipe.execute())

    async def index_add(self, user: str, sid: str, until: float) -> None:
        await self._update_key(self.index_prefix + user, str(math.ceil(until * 1000)), [sid])

    async def index_remove(self, user: str, sid: str) -> None:
        await self._update_key(self.index_prefix + user, "", [sid])

    async def index_revoke(self, user: str, at: float, until: float) -> None:
        await self.client.set(
            self.revoked_prefix + user, str(int(at * 1000)), pxat=math.ceil(until * 1000)
        )

    async def index_revoked(self, user: str) -> float | None:
        return self._revoked_at(await self.client.get(self.revoked_prefix + user))

    async def index_sessions(self, user: str) -> dict[str, Document]:
        """As :meth:`RedisStore.index_sessions
        <flask_connect_session.RedisStore.index_sessions>`.
        """
        key = self.index_prefix + user
        sids = _members(await self.client.zrange(key, f"({_now_ms()}", "+inf", byscore=True))
        if not sids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for sid in sids:
            pipe.get(self._key(sid))
        with _undecodable_is_corrupt():
            values, gone = _found(sids, await pipe.execute())
        if gone:
            await self._update_key(key, "", gone)
        return decode_entries(values)
