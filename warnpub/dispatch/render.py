"""Turning a claimed delivery into a channel Message.

One :class:`~warnpub.render.view.WarningView` is kept per warning; it caches each rendering per
(channel, language), so a million deliveries of one warning render a handful of texts.
"""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.channels.base import Message
from warnpub.config import Settings
from warnpub.dispatch.outbox import Claimed
from warnpub.render.partner import partner_rendered
from warnpub.render.templates import Rendered, render
from warnpub.render.view import WarningView
from warnpub.storage.tables import WarningRecord

VIEWS_KEPT = 64


class MessageRenderer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._views: OrderedDict[str, WarningView] = OrderedDict()

    async def view(self, session: AsyncSession, warning_id: str) -> WarningView:
        view = self._views.get(warning_id)
        if view is None:
            warning = await session.get(WarningRecord, warning_id)
            if warning is None:
                raise LookupError(f"warning {warning_id} is gone")
            view = self._views[warning_id] = WarningView.from_record(warning, self.settings)
            while len(self._views) > VIEWS_KEPT:
                self._views.popitem(last=False)
        return view

    async def rendered(self, session: AsyncSession, row: Claimed) -> Rendered:
        view = await self.view(session, row.warning_id)
        if row.channel == "webhook":
            # A partner gets the warning envelope (CAP and JSON), not a text for people.
            return partner_rendered(view, self.settings)
        return render(row.channel, view, row.language)

    async def message(self, session: AsyncSession, row: Claimed, address: str) -> Message:
        view = await self.view(session, row.warning_id)
        rendered = await self.rendered(session, row)
        ends = [i.expires for i in view.alert.infos if i.expires is not None]
        return Message(
            delivery_id=row.id,
            address=address,
            text=rendered.text,
            subject=rendered.subject or "",
            html=rendered.html,
            language=row.language,
            priority=row.priority,
            idempotency_key=f"wp-{row.id}",
            expires_at=max(ends) if ends else None,
            # Channels mark drills and tests in their own way (e.g. the speaker's drill flag).
            metadata={"status": view.alert.status, "warning_id": row.warning_id},
        )
