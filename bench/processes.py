"""The child processes of a benchmark (`warnpub serve`, `warnpub worker`, `warnpub
gateway-sim` …): started with their output in a log file each, checked, stopped."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Every child process of the bench, stopped (TERM, then KILL) by :meth:`stop_all`."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Path:
        """``python -m warnpub ARGS`` as ``name``; returns its log file."""
        out = self.logs / f"{name}.log"
        with out.open("wb") as f:
            self.running[name] = subprocess.Popen(
                [sys.executable, "-m", "warnpub", *args],
                env=env or self.env,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        return out

    def pid(self, name: str) -> int:
        return self.running[name].pid

    def tail(self, name: str, chars: int = 3000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def check(self, name: str) -> None:
        """Raise, with the end of its log, if ``name`` has exited."""
        proc = self.running[name]
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def stop(self, *names: str, timeout: float = 30) -> None:
        procs = [(n, self.running.pop(n)) for n in names if n in self.running]
        for _, proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for _, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self, timeout: float = 30) -> None:
        self.stop(*list(self.running), timeout=timeout)


async def wait_http(url: str, procs: Processes, name: str, limit_s: float = 60) -> None:
    """Until ``url`` answers 200 (``name`` must stay up meanwhile)."""
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            procs.check(name)
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {url} within {limit_s} s")


def sim_config(path: Path, sim_url: str, rate: float, **sms: int | float | str) -> Path:
    """A configuration file for `warnpub serve` / `worker` with one SMS gateway instance,
    ``sim``, at ``warnpub gateway-sim`` on ``sim_url``: ``rate`` messages/s, logging at
    WARNING; ``sms`` adds keys to the instance (``max_batch``, ``callback_secret``, …)."""
    keys = {"concurrency": 8, "timeout_s": 10, **sms}
    lines = [
        "[logging]",
        'level = "WARNING"',
        "",
        "[[channels.sms]]",
        'name = "sim"',
        'adapter = "http_json"',
        f'url = "{sim_url}/sms"',
        f'batch_url = "{sim_url}/sms/batch"',
        f"rate_per_s = {rate}",
        *(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in keys.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
