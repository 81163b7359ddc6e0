"""Every operation of GET /api/v1/openapi.json, fuzzed by schemathesis against the real server on
loopback, with each credential the operation accepts and without one: no 5xx, and every status,
content type and body is one the description documents. The long run is bench/fuzz_api.py."""

from __future__ import annotations

import os

import pytest

from tests.security.fuzzing import describe, fuzz, live_engine
from warnpub.config import Settings

# Few examples per (operation, credential, positive/negative data) keeps CI under a minute;
# WARNPUB_FUZZ_LONG=1 (or bench/fuzz_api.py) runs many more.
EXAMPLES = 60 if os.environ.get("WARNPUB_FUZZ_LONG") == "1" else 4


@pytest.mark.hang_after(600)
def test_every_operation_answers_as_documented(settings: Settings) -> None:
    with live_engine(settings) as engine:
        report = fuzz(engine, max_examples=EXAMPLES)
    print(report.summary())
    assert report.operations >= 50  # every route but the two event streams
    assert report.examples >= report.operations * EXAMPLES
    assert not report.failures, describe(report)
