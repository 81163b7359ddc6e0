"""``warnpub demo-data``: a synthetic population over Liyang's real towns, for demos and benchmarks."""

from __future__ import annotations

import argparse
from time import perf_counter
from typing import Any

from warnpub.audiences.demo_data import DEFAULT_VILLAGES_PER_TOWN, DemoOptions, generate
from warnpub.cli.common import run, transaction
from warnpub.config import Settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo-data",
        help="generate synthetic villages, people and devices over Liyang's towns (docs/demo-data.md)",
        description=(
            "Generate, deterministically from --seed, synthetic villages (marked synthetic) under "
            "Liyang's real towns, a population with realistic shares of needs, village contacts "
            "and town duty officers, and a loudspeaker group and notice board per village. "
            "Phone numbers are +86 1700 followed by a sequence number: never send them to a "
            "real SMS gateway."
        ),
    )
    p.add_argument("--people", type=int, required=True, metavar="N", help="how many people")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--villages-per-town",
        type=int,
        default=DEFAULT_VILLAGES_PER_TOWN,
        metavar="K",
        help=f"synthetic villages and communities per town (default {DEFAULT_VILLAGES_PER_TOWN})",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="delete earlier demo data first (synthetic villages and the people and devices in them)",
    )
    p.set_defaults(handler=demo_data)


def demo_data(args: argparse.Namespace, settings: Settings) -> int:
    options = DemoOptions(
        people=args.people,
        seed=args.seed,
        villages_per_town=args.villages_per_town,
        replace=args.replace,
    )

    async def body() -> int:
        started = perf_counter()
        async with transaction(settings) as session:
            summary = await generate(session, options)
        summary.seconds = perf_counter() - started  # including the commit
        print("\n".join(summary.lines()))
        return 0

    return run(body)
