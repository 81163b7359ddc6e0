"""Rendering: a warning as SMS, e-mail, loudspeaker script and notice board text, per language.

- :mod:`warnpub.render.sms_parts`: exact SMS counting (GSM-7 / UCS-2) and cutting to fit.
- :mod:`warnpub.render.view`: :class:`WarningView` (one per warning) and the info-block choice.
- :mod:`warnpub.render.templates`: the sandboxed Jinja2 templates; :func:`render`, :func:`sms_preview`.
- :mod:`warnpub.render.words`, :mod:`warnpub.render.speech`: shared words; text for the ear.
"""

from warnpub.render.sms_parts import SmsCount, count, fit, split
from warnpub.render.templates import Rendered, render, render_warning, sms_preview
from warnpub.render.view import WarningView, choose_info

__all__ = [
    "Rendered",
    "SmsCount",
    "WarningView",
    "choose_info",
    "count",
    "fit",
    "render",
    "render_warning",
    "sms_preview",
    "split",
]
