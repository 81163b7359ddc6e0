"""Turning a claimed delivery into a channel Message.

One :class:`~warnpub.render.view.WarningView` is kept per warning; it caches each rendering per
(channel, language), so a million deliveries of one warning render a handful of texts.
"""

from __future__ import annotations

import html as html_escape
from collections import OrderedDict
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.channels.base import Message
from warnpub.config import Settings
from warnpub.dispatch.outbox import Claimed
from warnpub.lastkm import links, texts
from warnpub.lastkm.notices import NOTICE
from warnpub.lastkm.tables import AckPlan, Notice
from warnpub.render.partner import partner_rendered
from warnpub.render.templates import Rendered, render
from warnpub.render.view import WarningView
from warnpub.storage.tables import WarningRecord

VIEWS_KEPT = 64
# Channels whose messages carry the reply code and the acknowledgement link (a voice call's
# "press 1" is its own acknowledgement; speakers and boards acknowledge by playing / showing).
ACK_LINE_CHANNELS = frozenset({"sms", "email"})


class MessageRenderer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._views: OrderedDict[str, WarningView] = OrderedDict()
        self._plans: OrderedDict[str, AckPlan | None] = OrderedDict()

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

    async def personal(self, session: AsyncSession, row: Claimed) -> Rendered | None:
        """The text of a row that differs from its warning's shared rendering: a notice, or a
        message that asks for an acknowledgement (reply code and signed link); None when the
        shared rendering is the message."""
        if row.target_kind == NOTICE:
            return await self._notice(session, row)
        if row.ack_required and row.channel in ACK_LINE_CHANNELS:
            plan = await self._plan(session, row.warning_id)
            if plan is not None:
                return self._with_ack(await self.rendered(session, row), plan, row.id)
        return None

    async def _plan(self, session: AsyncSession, warning_id: str) -> AckPlan | None:
        if warning_id not in self._plans:
            self._plans[warning_id] = await session.get(AckPlan, warning_id)
            while len(self._plans) > VIEWS_KEPT:
                self._plans.popitem(last=False)
        return self._plans[warning_id]

    def _with_ack(self, rendered: Rendered, plan: AckPlan, delivery_id: int) -> Rendered:
        url = links.url(self.settings.server.public_url, plan.link_key, delivery_id)
        line = texts.ack_line(plan.reply_code, url, rendered.language)
        html = rendered.html
        if html is not None:
            html += f'<p><strong>{html_escape.escape(line)}</strong></p>'
        return replace(rendered, text=f"{rendered.text}\n{line}", html=html, sms=None)

    async def _notice(self, session: AsyncSession, row: Claimed) -> Rendered:
        notice = await session.get(Notice, row.target_id)
        if notice is None:
            raise LookupError(f"notice {row.target_id} is gone")
        if notice.kind == "reminder":
            # The warning again, marked as a reminder, with the reply code and link.
            shared = await self.rendered(session, row._replace(target_kind="person"))
            prefix = texts.reminder_prefix(shared.language)
            reminded = replace(shared, text=prefix + shared.text, sms=None)
            plan = await self._plan(session, row.warning_id)
            return self._with_ack(reminded, plan, row.id) if plan is not None else reminded
        return Rendered(
            channel=row.channel,
            language=row.language,
            info_language=None,
            text=notice.text,
            subject=notice.subject,
        )

    async def message(self, session: AsyncSession, row: Claimed, address: str) -> Message:
        view = await self.view(session, row.warning_id)
        rendered = await self.personal(session, row) or await self.rendered(session, row)
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
