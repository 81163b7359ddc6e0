"""Reading what a board was shown: the order of warnings, server-sent events."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp

_ARTICLE = re.compile(r'<article class="warning[^"]*" data-warning="([^"]+)"')


def shown_ids(html: str) -> list[str]:
    """The warning ids on a board page or list fragment, in the order shown."""
    return _ARTICLE.findall(html)


async def next_event(
    response: aiohttp.ClientResponse, timeout: float = 15.0, skip: tuple[str, ...] = ("ping",)
) -> tuple[str, dict[str, Any]]:
    """The next server-sent event (name, JSON data), skipping the names in ``skip``."""
    event, data = "", []
    async with asyncio.timeout(timeout):
        while True:
            raw = await response.content.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if event and event not in skip:
                    return event, json.loads("\n".join(data))
                event, data = "", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
