"""The report as one self-contained HTML page (inline CSS and SVG charts; nothing fetched).

The page comes from ``templates/report/report.html.j2`` (package ``warnpub.templates.report``),
autoescaped: names from rosters and agencies are text, never markup. The charts are SVG drawn
by :mod:`warnpub.reports.charts`, whose text matplotlib escapes.
"""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from warnpub import __version__
from warnpub.reports.charts import coverage_by_town, delivery_over_time
from warnpub.reports.model import Report
from warnpub.reports.render_text import BREAKDOWNS
from warnpub.reports.units import duration, local_time, percent


@cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("warnpub.templates", "report"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2")


def render(report: Report, zone: ZoneInfo) -> str:
    origin = "approval" if report.warning.approved_at is not None else "receipt"
    return _template().render(
        r=report,
        w=report.warning,
        generated=local_time(report.generated_at, zone),
        zone=zone.key,
        version=__version__,
        over_time=delivery_over_time(report.series, origin),
        by_town_chart=coverage_by_town(report.by_town),
        breakdowns=[
            (title[0].upper() + title[1:], getattr(report, attr), key)
            for title, attr, key in BREAKDOWNS
        ],
        pct=percent,
        dur=duration,
        when=lambda at: local_time(at, zone),
    )
