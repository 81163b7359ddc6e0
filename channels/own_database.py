"""The database a channel whose peer is our own database uses: the dispatcher's, handed over
with ``bind_database`` (warnpub.channels.base.UsesDatabase), or one it opens itself and
closes (notice boards, village contacts' visits)."""

from __future__ import annotations

from collections.abc import Callable

from warnpub.storage.engine import Database


class OwnDatabase:
    _db: Database | None = None
    _own_db: bool = False

    def bind_database(self, db: Database) -> None:
        """Use the dispatcher's database instead of opening one."""
        self._db, self._own_db = db, False

    def _ensure_database(self, opener: Callable[[], Database]) -> Database:
        if self._db is None:
            self._db, self._own_db = opener(), True
        return self._db

    async def close(self) -> None:
        if self._db is not None and self._own_db:
            await self._db.dispose()
            self._db = None
