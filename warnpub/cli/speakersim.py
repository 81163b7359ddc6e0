"""``warnpub speaker-sim``: simulated loudspeaker groups on an MQTT broker, until stopped."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from warnpub.channels.speaker_wire import DEFAULT_PREFIX
from warnpub.cli.common import run
from warnpub.config import Settings
from warnpub.logs import setup as setup_logging
from warnpub.problems import Problem
from warnpub.speakersim import SimOptions, SpeakerSim, SpeakerSimError, parse_codes

PASSWORD_ENV = "WARNPUB_SPEAKER_SIM_PASSWORD"  # noqa: S105 (a variable name)


def register(sub: Any) -> None:
    s = sub.add_parser(
        "speaker-sim",
        help="simulate village loudspeaker groups on an MQTT broker (acknowledge, fail, stay silent)",
        description=(
            "Subscribes to <topic-prefix>/+/play and answers each play command on "
            "<address>/ack: played after --delay-s, failed for --fail groups, nothing for "
            "--silent groups. Prints one line per command. See docs/channels.md (Loudspeakers)."
        ),
    )
    s.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    s.add_argument("--username", help="broker user name")
    s.add_argument("--password", help=f"broker password (or set {PASSWORD_ENV})")
    s.add_argument(
        "--topic-prefix",
        default=DEFAULT_PREFIX,
        help=f"the groups' topic prefix (default {DEFAULT_PREFIX})",
    )
    s.add_argument(
        "--delay-s", type=float, default=1.0, help="seconds from command to 'played' (default 1)"
    )
    s.add_argument("--silent", metavar="CODE,...", help="groups that never answer")
    s.add_argument(
        "--silent-rate",
        type=float,
        default=0.0,
        help="share of the other groups that never answer, chosen once per group (0 to 1)",
    )
    s.add_argument("--fail", metavar="CODE,...", help="groups that answer 'failed'")
    s.add_argument("--seed", type=int, help="seed for --silent-rate")
    s.set_defaults(handler=speaker_sim)


def speaker_sim(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.logging.level, settings.logging.format)
    options = SimOptions(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password or os.environ.get(PASSWORD_ENV) or None,
        topic_prefix=args.topic_prefix,
        delay_s=args.delay_s,
        silent=parse_codes(args.silent),
        silent_rate=args.silent_rate,
        fail=parse_codes(args.fail),
        seed=args.seed,
    )

    async def body() -> int:
        try:
            sim = SpeakerSim(options, on_event=lambda line: print(line, flush=True))
            await sim.start()
        except SpeakerSimError as exc:
            raise Problem(400, "Cannot start the speaker simulator", str(exc)) from None
        print(
            f"speaker-sim on mqtt://{args.host}:{args.port} answering {args.topic_prefix}/+/play",
            flush=True,
        )
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        try:
            await stopped.wait()
        finally:
            await sim.stop()
        return 0

    return run(body)
