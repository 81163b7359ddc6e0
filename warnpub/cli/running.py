"""Commands that run the service: ``serve``, ``worker`` and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from warnpub.cli.common import database, run
from warnpub.config import Settings
from warnpub.gc_tuning import settle as settle_heap
from warnpub.logs import setup as setup_logging

log = logging.getLogger("warnpub.cli")


def register(sub: Any) -> None:
    s = sub.add_parser(
        "serve", help="run the API and the timers (SQLite or PostgreSQL from the config)"
    )
    s.add_argument("--host", help="listen address (default from [server] host)")
    s.add_argument("--port", type=int, help="listen port (default from [server] port)")
    s.add_argument(
        "--no-dispatch",
        action="store_true",
        help="API (and review timers) only; run `warnpub worker` elsewhere to send",
    )
    s.set_defaults(handler=serve)
    w = sub.add_parser(
        "worker", help="dispatch and timers only, no API (several may run against PostgreSQL)"
    )
    w.set_defaults(handler=worker)
    d = sub.add_parser(
        "demo", help="set up a demo county on SQLite, submit sample warnings, and serve it"
    )
    d.add_argument(
        "--database", default="var/demo.db", help="SQLite file for the demo (recreated each run)"
    )
    d.add_argument("--port", type=int, help="listen port (default from [server] port)")
    d.add_argument(
        "--no-serve",
        action="store_true",
        help="set up, submit, wait for the green-channel warning to be delivered, print, then exit",
    )
    d.add_argument(
        "--people", type=int, default=20_000, help="synthetic population (default 20,000)"
    )
    d.set_defaults(handler=demo)


async def serve_until_stopped(
    settings: Settings,
    host: str,
    port: int,
    after_start: Callable[[str], Awaitable[None]] | None = None,
    *,
    stop_at_once: bool = False,
    dispatch: bool = True,
) -> None:
    """Serve until SIGINT or SIGTERM; then stop taking requests, finish, close the database."""
    # The application is imported when it is served, not for every `warnpub …` command.
    from warnpub.api.app import RUNNER, create_app
    from warnpub.channels.registry import build_channels
    from warnpub.dispatch.dispatcher import Dispatcher

    async with database(settings) as db:
        dispatcher = Dispatcher(db, settings, build_channels(settings)) if dispatch else None
        app = create_app(settings, db, dispatcher=dispatcher)
        timers = app.get(RUNNER)
        if dispatcher is not None and timers is not None:
            dispatcher.timer_pokes.append(timers.poke)  # timers due now, heard by NOTIFY
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1] if runner.addresses else port  # port 0: the OS chose
        settle_heap()  # what start-up made lives as long as the process (gc_tuning)
        base = f"http://{host}:{bound_port}"
        try:
            print(
                f"warnpub listening on {base}  (API description: {base}/api/v1/openapi.json)",
                flush=True,
            )
            if after_start is not None:
                await after_start(base)
            if not stop_at_once:
                await wait_for_stop()
        finally:
            if timers is not None:
                await timers.aclose()  # claimed timers not fired go back at once
            await runner.cleanup()  # the dispatcher stops: unsent rows go back at once


def serve(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.logging.level, settings.logging.format)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port

    async def body() -> int:
        await serve_until_stopped(settings, host, port, dispatch=not args.no_dispatch)
        return 0

    return run(body)


async def wait_for_stop() -> None:
    """Until SIGINT or SIGTERM."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch and timers without the API; SIGTERM stops claiming, finishes what is in flight."""
    from warnpub.channels.registry import build_channels
    from warnpub.dispatch.dispatcher import Dispatcher
    from warnpub.review.timers import HANDLERS
    from warnpub.timers.runner import TimerRunner

    setup_logging(settings.logging.level, settings.logging.format)

    async def body() -> int:
        async with database(settings) as db:
            dispatcher = Dispatcher(db, settings, build_channels(settings))
            timers = TimerRunner(
                db,
                HANDLERS,
                tick_s=settings.timers.tick_seconds,
                lease_s=settings.timers.lease_seconds,
            )
            dispatcher.timer_pokes.append(timers.poke)  # timers due now, heard by NOTIFY
            await dispatcher.start()
            timers.start()
            settle_heap()
            print(f"warnpub worker {dispatcher.owner} running", flush=True)
            try:
                await wait_for_stop()
            finally:
                # Stop claiming; rows claimed but not sent, and timers claimed but not fired,
                # go back at once; calls in flight finish; then leave the workers table.
                await timers.aclose()
                await dispatcher.stop()
            log.info("worker stopped", extra={"owner": dispatcher.owner})
        return 0

    return run(body)


def demo(args: argparse.Namespace, settings: Settings) -> int:
    from warnpub.cli.demo import demo as run_demo

    return run_demo(args, settings)
