"""Settings shared by the property tests in this folder.

CI runs a modest number of examples per property (each file stays well under 20 s). For a long
run, set WARNPUB_FUZZ_LONG=1: every property then runs LONG_FACTOR times as many examples, e.g.

    WARNPUB_FUZZ_LONG=1 .venv/bin/pytest tests/security/test_properties_*.py

No example database is kept (runs leave nothing behind in the checkout), and a run is random:
a failure prints the seed and the shrunk example to reproduce it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG = os.environ.get("WARNPUB_FUZZ_LONG") == "1"
LONG_FACTOR = 25


def examples(n: int) -> settings:
    """@examples(n): n examples in CI, n × LONG_FACTOR with WARNPUB_FUZZ_LONG=1."""
    return settings(
        max_examples=n * LONG_FACTOR if LONG else n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
