"""The drill benchmark's peers in a process of their own: the gateway simulator and the
simulated village contacts (bench/drill.py starts it; not meant to be run by hand).

The gateway and the contacts are other systems and other people, not the engine: running
them beside the engine on the same event loop would charge their work (answering 1,000 SMS
a second, sending receipts, polling and replying) to the engine's measured times.

Protocol, one JSON object per line:

- stdout, first line: ``{"sim_url": "http://127.0.0.1:PORT"}`` once the simulator listens;
- stdin, one line: the contact simulator's options (``ContactSimOptions`` fields; ``phones``
  as a list) and ``"control"``: the knobs to POST to the simulator's ``/control`` first;
- stdout: ``{"contacts": "started"}``;
- stdin closed (or the line ``stop``): the contacts stop, stdout gets ``{"stats": {…}}``
  and the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any

import aiohttp
from aiohttp import web

from warnpub.gatewaysim.app import create_sim_app
from warnpub.lastkm.contact_sim import ContactSim, ContactSimOptions


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main(secret: str, receipt_delay_ms: int) -> None:
    runner = web.AppRunner(
        create_sim_app({"secret": secret, "receipt_delay_ms": receipt_delay_ms}), access_log=None
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sim_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    _say({"sim_url": sim_url})
    contacts: ContactSim | None = None
    try:
        line = await _read_line()
        if not line.strip() or line.strip() == "stop":
            return
        options = json.loads(line)
        control = options.pop("control", {})
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{sim_url}/control", json=control) as answer,
        ):
            if answer.status != 200:
                raise SystemExit(f"the simulator refused /control: {await answer.text()}")
        options["phones"] = set(options["phones"]) if options.get("phones") is not None else None
        contacts = ContactSim(ContactSimOptions(sim_url, **options))
        await contacts.start()
        _say({"contacts": "started"})
        while (line := await _read_line()) and line.strip() != "stop":
            pass
    finally:
        if contacts is not None:
            await contacts.stop()
            async with aiohttp.ClientSession() as http, http.get(f"{sim_url}/stats?numbers=0") as r:
                gateway = await r.json()
            stats = asdict(contacts.stats)
            stats["inbound_forwarded"] = gateway["inbound_forwarded"]
            stats["inbound_lost"] = gateway["inbound_lost"]
            _say({"stats": stats})
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--receipt-delay-ms", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.secret, args.receipt_delay_ms))
