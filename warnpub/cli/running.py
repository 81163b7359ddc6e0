"""Commands that run the service: ``serve`` and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from warnpub.api.app import create_app
from warnpub.cli.common import database, run
from warnpub.config import Settings
from warnpub.logs import setup as setup_logging


def register(sub: Any) -> None:
    s = sub.add_parser(
        "serve", help="run the API and the timers (SQLite or PostgreSQL from the config)"
    )
    s.add_argument("--host", help="listen address (default from [server] host)")
    s.add_argument("--port", type=int, help="listen port (default from [server] port)")
    s.set_defaults(handler=serve)
    d = sub.add_parser(
        "demo", help="set up a demo county on SQLite, submit sample warnings, and serve it"
    )
    d.add_argument(
        "--database", default="var/demo.db", help="SQLite file for the demo (recreated each run)"
    )
    d.add_argument("--port", type=int, help="listen port (default from [server] port)")
    d.add_argument("--no-serve", action="store_true", help="set up and submit, print, then exit")
    d.set_defaults(handler=demo)


async def serve_until_stopped(
    settings: Settings,
    host: str,
    port: int,
    after_start: Callable[[str], Awaitable[None]] | None = None,
    *,
    stop_at_once: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM; then stop taking requests, finish, close the database."""
    async with database(settings) as db:
        runner = web.AppRunner(create_app(settings, db), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1] if runner.addresses else port  # port 0: the OS chose
        base = f"http://{host}:{bound_port}"
        try:
            print(
                f"warnpub listening on {base}  (API description: {base}/api/v1/openapi.json)",
                flush=True,
            )
            if after_start is not None:
                await after_start(base)
            if not stop_at_once:
                stopped = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stopped.set)
                await stopped.wait()
        finally:
            await runner.cleanup()


def serve(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.logging.level, settings.logging.format)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port

    async def body() -> int:
        await serve_until_stopped(settings, host, port)
        return 0

    return run(body)


def demo(args: argparse.Namespace, settings: Settings) -> int:
    from warnpub.cli.demo import demo as run_demo

    return run_demo(args, settings)
