"""``warnpub drill run``: one drill end to end — submit, approve, send, wait, report.

It runs in this process, like ``warnpub serve``: the API (gateway receipts and voice-call
outcomes come back to it), the dispatcher and the timers, against the configured database,
for as long as the drill takes. So it is run *instead of* ``warnpub serve`` on that host and
port, not beside it (a second dispatcher on the same database would share the work; the
receipts would go to whichever process holds the port). The drill goes out over the
configured channels; ``--simulators`` swaps them for the built-in ones (the SMS and voice
gateway simulator on loopback, loudspeaker groups on an embedded MQTT broker, and village
contacts who acknowledge by reply SMS and report their visits — the ``relay`` channel — see
warnpub/lastkm/contact_sim.py), for training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from warnpub.cli.common import add_unmasked, database, record_unmasked, run, split_list
from warnpub.config import Settings
from warnpub.drills.run import (
    approve_drill,
    check_audience,
    last_kilometre,
    last_kilometre_lines,
    report_text,
    submit_drill,
    summary_lines,
    wait_for_end,
)
from warnpub.problems import invalid


def register(sub: Any) -> None:
    d = sub.add_parser("drill", help="drills (CAP status Exercise) over the real channels")
    dsub = d.add_subparsers(dest="drill_command", metavar="COMMAND", required=True)
    p = dsub.add_parser(
        "run",
        help="run one drill end to end and print its report",
        description=(
            "Submit a drill (CAP status Exercise) for an area as the agency covering it, approve "
            "it (two approvers when its level needs four eyes), send it over the configured "
            "channels — the API, dispatcher and timers run in this process, so stop `warnpub "
            "serve` first — wait until it completes or --wait runs out, then print the drill "
            "report. Every message says 演练 / DRILL. See docs/drills.md."
        ),
    )
    p.add_argument("--area", required=True, metavar="CODE", help="12-digit division code")
    p.add_argument(
        "--audience",
        choices=("area", "consent", "list"),
        help="who is reached: everyone in the area, people with drill consent, or --people "
        "(default: [drills] audience)",
    )
    p.add_argument(
        "--people", type=split_list, default=[], metavar="EXT,…", help="roster ids (--audience list)"
    )
    p.add_argument(
        "--level", choices=("red", "orange", "yellow", "blue"), help="default: [drills] level"
    )
    p.add_argument("--agency", metavar="CODE", help="submit as this agency (default: the first covering the area)")
    p.add_argument(
        "--approvers",
        type=split_list,
        default=[],
        metavar="USER,…",
        help="operators who approve (default: the first operator, plus a supervisor when needed)",
    )
    p.add_argument(
        "--wait", type=float, metavar="SECONDS", help="wait at most this long (default: [drills] wait_s)"
    )
    p.add_argument("--port", type=int, help="listen port (default from [server] port; 0: any)")
    p.add_argument(
        "--simulators",
        action="store_true",
        help="send through the built-in simulators instead of the configured channels: SMS and "
        "voice gateway, loudspeaker groups, and village contacts who acknowledge and report visits",
    )
    p.add_argument("--html", type=Path, metavar="FILE", help="also write the report page")
    p.add_argument("--csv", type=Path, metavar="DIR", help="also write the report's CSV files")
    add_unmasked(p)
    p.set_defaults(handler=drill_run)


def drill_run(args: argparse.Namespace, settings: Settings) -> int:
    audience = check_audience(args.audience, args.people)
    if args.html is not None and args.html.is_dir():
        raise invalid(f"--html: {args.html} is a directory; name a file")
    if args.csv is not None and args.csv.exists() and not args.csv.is_dir():
        raise invalid(f"--csv: {args.csv} exists and is not a directory")
    if not args.simulators and not any(settings.channels.values()):
        raise invalid(
            "no channels are configured ([[channels.sms]] …), so the drill could reach nobody; "
            "configure them, or pass --simulators to use the built-in simulators"
        )
    settings = settings.model_copy(deep=True)
    wait_s = args.wait if args.wait is not None else settings.drills.wait_s
    port = args.port if args.port is not None else settings.server.port

    async def drill_body(base: str) -> int:
        async with database(settings) as db:
            drill = await submit_drill(
                db, settings, area=args.area, audience=audience, level=args.level, agency=args.agency
            )
            await approve_drill(db, settings, drill, args.approvers or None, base=base)
            print(f"drill {drill.warning_id} approved; sending (waiting up to {wait_s:g} s)", flush=True)
            state = await wait_for_end(db, drill, wait_s)
            if args.unmasked:
                await record_unmasked(db, "drill run", f"warning:{drill.warning_id}")
            text, written = await report_text(
                db, settings, drill, html=args.html, csv_dir=args.csv,
                privacy="full" if args.unmasked else "export",
            )
            lastkm = last_kilometre_lines(await last_kilometre(db, drill.warning_id))
        print("\n".join(summary_lines(drill)))
        if state != "completed":
            print(f"  (still {state} after {wait_s:g} s: the report below is what happened so far)")
        print()
        sys.stdout.write(text)
        if lastkm:
            print("\nThe last kilometre (docs/last-kilometre.md):")
            print("\n".join(lastkm))
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        return 0

    async def body() -> int:
        from warnpub.cli.running import serve_until_stopped

        result: list[int] = []

        async def after_start(base: str) -> None:
            result.append(await drill_body(base))

        if not args.simulators:
            async with database(settings):  # the schema is current, before anything starts
                pass
            await serve_until_stopped(settings, settings.server.host, port, after_start, stop_at_once=True)
            return result[0] if result else 1
        return await _with_simulators(settings, port, after_start, result)

    return run(body)


async def _with_simulators(settings: Settings, port: int, after_start: Any, result: list[int]) -> int:
    """The demo's simulators in this process: SMS and voice gateway, speaker groups on MQTT,
    village contacts answering the SMS the gateway gets (every one of them answers)."""
    from warnpub.cli.demo import (
        _demo_channels,
        _free_port,
        _start_simulator,
        point_simulator_at,
        start_contacts,
    )
    from warnpub.cli.running import serve_until_stopped
    from warnpub.embedded_broker import embedded_broker
    from warnpub.speakersim import SimOptions, SpeakerSim

    async with database(settings):
        pass
    sim_url, sim = await _start_simulator()
    bind_port = port or _free_port(settings.server.host)
    base = f"http://{settings.server.host}:{bind_port}"
    contacts = await start_contacts(sim_url)
    try:
        async with embedded_broker() as (mqtt_host, mqtt_port):
            speakers = SpeakerSim(SimOptions(host=mqtt_host, port=mqtt_port, delay_s=0.2))
            await speakers.start()
            try:
                settings.channels = _demo_channels(sim_url, base, mqtt_host, mqtt_port)

                async def started(base: str) -> None:
                    await point_simulator_at(sim_url, base)
                    await after_start(base)

                await serve_until_stopped(
                    settings, settings.server.host, bind_port, started, stop_at_once=True
                )
            finally:
                await speakers.stop()
    finally:
        await contacts.stop()
        await sim.cleanup()
    return result[0] if result else 1
