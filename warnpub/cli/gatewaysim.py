"""``warnpub gateway-sim``: run the HTTP SMS gateway simulator on loopback until stopped."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from aiohttp import web

from warnpub.cli.common import run
from warnpub.config import Settings
from warnpub.gatewaysim import SimConfigError, create_sim_app
from warnpub.logs import setup as setup_logging
from warnpub.problems import Problem

SECRET_ENV = "WARNPUB_GATEWAY_SIM_SECRET"  # noqa: S105 (a variable name)


def register(sub: Any) -> None:
    g = sub.add_parser(
        "gateway-sim",
        help="run a real HTTP SMS gateway simulator (records messages, posts receipts, injects faults)",
        description=(
            "An SMS gateway on HTTP that speaks the http_json adapter's default dialect: "
            "POST /sms, POST /sms/batch; faults via POST /control; counts via GET /stats. "
            "See docs/channels.md."
        ),
    )
    g.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    g.add_argument("--port", type=int, default=9090, help="listen port (0: any free port)")
    g.add_argument("--callback-url", metavar="URL", help="where delivery receipts are POSTed")
    g.add_argument("--inbound-url", metavar="URL", help="where POST /inbound replies are forwarded")
    g.add_argument(
        "--secret",
        help=f"shared secret that signs callbacks (or set {SECRET_ENV}); unsigned when absent",
    )
    g.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    g.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    g.add_argument(
        "--throttle-per-s",
        type=float,
        default=0.0,
        help="accepted messages per sliding second; beyond it 429 + Retry-After (0: off)",
    )
    g.add_argument(
        "--receipt-delay-ms", type=float, default=0.0, help="acceptance to receipt callback"
    )
    g.add_argument(
        "--receipts",
        choices=["deliver", "fail", "none"],
        default="deliver",
        help="what the receipts report (default deliver)",
    )
    g.add_argument("--auth-header", help="require this request header (with --auth-value)")
    g.add_argument("--auth-value", help="the value --auth-header must carry")
    g.add_argument("--seed", type=int, help="seed for reproducible error injection")
    g.set_defaults(handler=gateway_sim)


def gateway_sim(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.logging.level, settings.logging.format)
    options: dict[str, Any] = {
        "callback_url": args.callback_url,
        "inbound_url": args.inbound_url,
        "secret": args.secret or os.environ.get(SECRET_ENV) or None,
        "error_rate": args.error_rate,
        "latency_ms": args.latency_ms,
        "throttle_per_s": args.throttle_per_s,
        "receipt_delay_ms": args.receipt_delay_ms,
        "receipts": args.receipts,
        "auth_header": args.auth_header,
        "auth_value": args.auth_value,
        "seed": args.seed,
    }
    try:
        app = create_sim_app(options)
    except SimConfigError as exc:
        raise Problem(400, "Bad option", str(exc).replace("_", "-")) from None

    async def body() -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, args.host, args.port, backlog=1024)
            try:
                await site.start()
            except OSError as exc:
                raise Problem(
                    400, "Cannot listen", f"{args.host}:{args.port} is not available: {exc}"
                ) from None
            port = runner.addresses[0][1] if runner.addresses else args.port
            print(f"gateway-sim listening on http://{args.host}:{port}", flush=True)
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stopped.set)
            await stopped.wait()
        finally:
            await runner.cleanup()
        return 0

    return run(body)
