"""The operator console: server-rendered pages under /console/ (docs/console.md).

Modules, one job each: words (zh/en), security (cookies, CSRF), session (who is signed in),
pages (rendering, the ``page`` decorator), lookups (shared reads), signin, queue (review queue,
escalations), plan_cache (the queue's plan counts), warning (the warning page and its review
forms), update (send an update / final report), progress (live counts, SSE), report (coverage
report page), drills (drill reports list), uploads (rosters kept between dry run and confirm), audience
(import, people, areas), admin (agencies, operators, audit log).
"""

from __future__ import annotations

from warnpub.console import (  # noqa: F401 (each module registers its routes)
    admin,
    audience,
    drills,
    progress,
    queue,
    report,
    signin,
    update,
    warning,
)
from warnpub.console.routes import routes

__all__ = ["routes"]
