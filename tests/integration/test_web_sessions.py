"""The database session store behind the panel, on both backends: expiry, renewal,
deletion, and expired sessions purged."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mailward.app import Services
from mailward.db.models import WebSession, utcnow
from mailward.web.sessions import DatabaseStore


async def test_store_expires_renews_and_purges(directory: Services) -> None:
    store = DatabaseStore(directory.db)
    await store.set("a", b"first", expires_in=60)
    await store.set("a", "second", expires_in=timedelta(seconds=60))  # replaces
    assert await store.get("a") == b"second"
    assert 55 <= (await store.expires_in("a") or 0) <= 60
    await store.get("a", renew_for=3600)
    assert (await store.expires_in("a") or 0) > 3000
    await store.set("b", b"other", expires_in=60)
    await store.delete("b")
    assert not await store.exists("b")

    await store.set("old", b"gone", expires_in=60)
    async with directory.db.session() as session:  # make it expired
        await session.execute(update(WebSession).where(WebSession.key == "old")
                              .values(expires_at=utcnow() - timedelta(minutes=1)))
        await session.commit()
    await store.set("stale", b"x", expires_in=-1)
    assert await store.get("stale") is None  # expired: gone on read
    await store.delete_expired()
    async with directory.db.session() as session:
        keys = list(await session.scalars(select(WebSession.key).order_by(WebSession.key)))
    assert keys == ["a"]
    await store.delete_all()
    assert not await store.exists("a")


async def test_namespaces_keep_stores_on_one_table_apart(directory: Services) -> None:
    sessions, limits = DatabaseStore(directory.db), DatabaseStore(directory.db, "limits:")
    odd = DatabaseStore(directory.db, "a_%:")  # LIKE wildcards in a namespace are literal
    await sessions.set("k", b"session", expires_in=60)
    await limits.set("k", b"counter", expires_in=60)
    await odd.set("k", b"odd", expires_in=60)
    assert (await sessions.get("k"), await limits.get("k")) == (b"session", b"counter")
    assert await limits.expires_in("k") is not None
    await limits.delete_all()
    assert not await limits.exists("k")
    assert await sessions.get("k") == b"session" and await odd.get("k") == b"odd"
    await DatabaseStore(directory.db, "%").delete_all()  # not a LIKE pattern: deletes none
    assert await sessions.get("k") == b"session" and await odd.get("k") == b"odd"
