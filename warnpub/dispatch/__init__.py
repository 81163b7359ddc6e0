"""Dispatch: plan → outbox → per-channel workers → results, receipts, retries, failover."""
