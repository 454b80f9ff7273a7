"""Raw access to a ``SQLStore``'s table, bypassing the store: plant a value,
read one back, read the lifetime a row has (for the store and fuzz tests).
"""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa

from flask_connect_session import SQLStore


def utcnow() -> datetime:
    """Now, naive UTC, as the table keeps it."""
    return datetime.now(UTC).replace(tzinfo=None)


def _postgres(store: SQLStore) -> bool:
    return store.engine.dialect.name == "postgresql"


def plant(store: SQLStore, sid: str, raw: bytes, ttl: float = 100) -> str:
    """Store ``raw`` as the ``sess`` of ``sid``, expiring in ``ttl`` seconds
    (negative: already expired); return the text the table now holds.
    """
    store.create_table()
    table = store.table
    text = raw.decode("utf-8", "replace")
    if _postgres(store):
        # A json column holds only JSON: what cannot be is planted as a
        # JSON string, a corrupt document all the same.
        try:
            json.loads(text, parse_constant=_reject)
        except (ValueError, RecursionError):
            text = json.dumps(text)
    sess = sa.cast(sa.literal(text), table.c.sess.type) if _postgres(store) else text
    expire = utcnow() + timedelta(seconds=ttl)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.sid == sid))
        conn.execute(sa.insert(table).values(sid=sid, sess=sess, expire=expire))
    return text


def _reject(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def row(store: SQLStore, sid: str) -> tuple[str | bytes, datetime] | None:
    """The stored ``(sess, expire)`` of ``sid``, expired or not."""
    table = store.table
    sess = sa.cast(table.c.sess, sa.Text) if _postgres(store) else table.c.sess
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(sess, table.c.expire).where(table.c.sid == sid)).first()
    return None if found is None else (found[0], found[1])


def raw(store: SQLStore, sid: str) -> bytes | None:
    """The stored ``sess`` of ``sid`` as bytes, or ``None``."""
    found = row(store, sid)
    if found is None:
        return None
    value = found[0]
    return value if isinstance(value, bytes) else value.encode("utf-8")


def remaining(store: SQLStore, sid: str) -> float | None:
    """Seconds until the row of ``sid`` expires, or ``None`` if it is gone or
    expired.
    """
    found = row(store, sid)
    if found is None:
        return None
    left = (found[1] - utcnow()).total_seconds()
    return left if left > 0 else None
