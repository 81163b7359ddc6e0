"""Helpers for the console's page tests (aiohttp TestClient, no browser)."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from tests.factories import PASSWORD

HOSTILE = "<script>alert(1)</script>\"'&"
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no csrf field"
    return found.group(1)


async def sign_in(client: TestClient, username: str, password: str = PASSWORD):
    """Sign in through the form; returns the POST's response (303 on success)."""
    page = await client.get("/console/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf": token},
        allow_redirects=False,
    )


async def post_form(client: TestClient, page_url: str, action: str, **fields: str):
    """Open ``page_url``, take its csrf token and POST ``fields`` to ``action``."""
    page = await client.get(page_url)
    token = csrf_of(await page.text())
    return await client.post(action, data={"csrf": token, **fields}, allow_redirects=False)
