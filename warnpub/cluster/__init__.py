"""Scale-out on PostgreSQL: worker membership and gateway rate shares (registry, shares,
node), wake-ups by LISTEN/NOTIFY (notify) and lease heartbeats (leases). See
docs/operations.md. On SQLite none of it runs: one process does everything."""
