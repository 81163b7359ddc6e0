"""The ``warnpub`` command line. Every command has ``--help``; bad input exits non-zero with a reason."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from warnpub import __version__
from warnpub.cli import (
    admin,
    audience,
    board,
    demo_data,
    drill,
    gatewaysim,
    report,
    running,
    speakersim,
    visits,
)
from warnpub.config import Settings, load_settings
from warnpub.logs import mask_secrets
from warnpub.problems import Problem

Command = Callable[[argparse.Namespace, Settings], int]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="warnpub", description="warnpub: early-warning release centre engine."
    )
    p.add_argument("--version", action="version", version=f"warnpub {__version__}")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="site configuration (TOML) laid over the defaults; also WARNPUB_CONFIG",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    running.register(sub)
    admin.register(sub)
    audience.register(sub)
    demo_data.register(sub)
    gatewaysim.register(sub)
    speakersim.register(sub)
    board.register(sub)
    report.register(sub)
    drill.register(sub)
    visits.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Command = args.handler
    try:
        settings = load_settings(args.config)
        return handler(args, settings)
    except Problem as problem:
        # An error never repeats a secret it was given (API keys, tokens, passwords in URLs).
        print(f"error: {mask_secrets(str(problem))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
