"""Child processes for end-to-end cluster tests: `warnpub …` commands started with their output
in a log file each, watched while the test waits, and always stopped at the end (SIGTERM, then
SIGKILL) — whatever the test did to them meanwhile."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Named `python -m warnpub …` children; :meth:`stop_all` in a ``finally`` ends them."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # Processes the test ended on purpose: (name, signal) — their exit is expected.
        self.ended: dict[str, int] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        assert name not in self.procs, f"{name} started twice"
        with self.log(name).open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "warnpub", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def output(self, name: str, tail: int = 4000) -> str:
        path = self.log(name)
        text = path.read_text(errors="replace") if path.exists() else "(no output file)"
        return text if len(text) <= tail else "…" + text[-tail:]

    def check(self, *names: str) -> None:
        """Fail, with its output, if a process the test did not end has exited."""
        for name in names or tuple(self.procs):
            proc = self.procs[name]
            if name not in self.ended and proc.poll() is not None:
                raise AssertionError(
                    f"{name} (pid {proc.pid}) exited with {proc.returncode} unexpectedly; "
                    f"its output:\n{self.output(name)}"
                )

    def signal(self, name: str, sig: int) -> None:
        self.ended[name] = sig
        self.procs[name].send_signal(sig)

    async def wait(self, name: str, timeout: float) -> int:
        proc = self.procs[name]
        try:
            return await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{name} (pid {proc.pid}) did not exit within {timeout} s of signal "
                f"{self.ended.get(name)}; its output:\n{self.output(name)}"
            ) from None

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM to every child still running, then SIGKILL to those that did not go."""
        running = [p for p in self.procs.values() if p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def report(self) -> str:
        """Every child's exit status and the tail of its output (for a failed test)."""
        parts = []
        for name, proc in self.procs.items():
            parts.append(
                f"===== {name} (pid {proc.pid}, exit {proc.poll()}, "
                f"signalled {self.ended.get(name)}) =====\n{self.output(name, 3000)}"
            )
        return "\n".join(parts)


async def wait_until(
    check: Callable[[], Awaitable[Any]],
    what: str,
    timeout: float,
    procs: Processes | None = None,
    every: float = 0.1,
) -> Any:
    """Poll ``check`` until it returns something true; meanwhile fail at once if a child died."""
    deadline = time.monotonic() + timeout
    while True:
        if procs is not None:
            procs.check()
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} (last: {found!r})")
        await asyncio.sleep(every)


async def wait_http(url: str, procs: Processes, name: str, timeout: float = 60) -> None:
    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as r:
                return r.status == 200
        except (aiohttp.ClientError, OSError):
            return False

    await wait_until(up, f"{name} answers {url}", timeout, procs, every=0.2)


async def wait_line(procs: Processes, name: str, text: str, timeout: float = 60) -> None:
    async def printed() -> bool:
        return text in procs.output(name, tail=1 << 20)

    await wait_until(printed, f"{name} prints {text!r}", timeout, procs, every=0.1)
