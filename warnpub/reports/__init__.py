"""Coverage-and-time reports: who a warning reached, how soon, and whether the clocks were kept.

- :mod:`~warnpub.reports.query`   the SQL (grouped by the database; SQLite and PostgreSQL)
- :mod:`~warnpub.reports.timing`  milestones, percentiles per tier, chart curves
- :mod:`~warnpub.reports.clocks`  the county's clocks and targets, met or missed
- :mod:`~warnpub.reports.build`   one report from one read snapshot
- :mod:`~warnpub.reports.render_text`, :mod:`~warnpub.reports.render_csv`,
  :mod:`~warnpub.reports.charts`, :mod:`~warnpub.reports.render_html`  its forms

See docs/reports.md for what every number means.
"""

from warnpub.reports.build import build_report
from warnpub.reports.model import Report

__all__ = ["Report", "build_report"]
