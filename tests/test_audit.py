"""The hash-chained audit log: intact chains verify; altered, removed or truncated ones do not."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text

from warnpub.audit.log import append, verify
from warnpub.storage.tables import AuditEntry

pytestmark = pytest.mark.postgres


async def write(db, n: int) -> None:
    for i in range(n):
        async with db.session() as s:
            await append(s, "operator:duty1", "warning.approved", f"warning:{i}", level="red", n=i)


async def check(db):
    async with db.session() as s:
        return await verify(s)


async def test_intact_chain_verifies(db):
    await write(db, 5)
    result = await check(db)
    assert result.ok and result.entries == 5


async def test_altered_entry_is_named(db):
    await write(db, 5)
    async with db.session() as s:
        await s.execute(text("UPDATE audit_log SET actor = 'operator:mallory' WHERE seq = 3"))
    result = await check(db)
    assert not result.ok and result.first_bad_seq == 3 and "altered" in result.reason


async def test_removed_entry_is_named(db):
    await write(db, 5)
    async with db.session() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    result = await check(db)
    assert not result.ok and result.first_bad_seq == 2 and "removed" in result.reason


async def test_removed_tail_is_noticed(db):
    await write(db, 5)
    async with db.session() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq >= 4))
    result = await check(db)
    assert not result.ok and result.first_bad_seq == 4


async def test_rolled_back_change_leaves_no_entry(db):
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await append(s, "cli", "agency.added", "agency:X")
            raise RuntimeError("crash after the write, before commit")
    assert (await check(db)).entries == 0
    await write(db, 1)
    assert (await check(db)).ok
