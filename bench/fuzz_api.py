"""Benchmark: fuzz the whole HTTP API from its OpenAPI description, for longer than CI does.

    python bench/fuzz_api.py --examples 100 [--seed 7] [--negative-only | --positive-only]

The same driver as tests/security/test_openapi_fuzz.py (tests/security/fuzzing.py): the real
application on a loopback port over a fresh migrated SQLite database, seeded with agencies,
operators and warnings; schemathesis sends ``--examples`` generated requests per operation,
credential and kind of data (valid, then invalid), and checks each answer: no 5xx, status,
content type and body as documented. Failures (with a curl line each) and the exceptions behind
any 5xx go to stderr; the figures are one JSON object on the last line of stdout:
{"operations", "examples", "failures", "seconds", "crashes", "seed"}. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.security.fuzzing

from schemathesis.generation import GenerationMode

from tests.security.fuzzing import describe, fuzz, live_engine
from warnpub.config import load_settings
from warnpub.storage.migrate import upgrade


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="per operation, credential, mode")
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--positive-only", action="store_true")
    group.add_argument("--negative-only", action="store_true")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if args.positive_only:
        modes = (GenerationMode.POSITIVE,)
    elif args.negative_only:
        modes = (GenerationMode.NEGATIVE,)
    with tempfile.TemporaryDirectory(prefix="warnpub-fuzz-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'warnpub.db'}"
        upgrade(url)
        settings = load_settings(
            environ={
                "WARNPUB_DATABASE_URL": url,
                "WARNPUB_SERVER_PUBLIC_URL": "http://127.0.0.1:8080",
            }
        )
        with live_engine(settings) as engine:
            report = fuzz(engine, max_examples=args.examples, modes=modes, fixed_seed=seed)
    if report.failures or report.crashes:
        print(describe(report), file=sys.stderr)
    print(json.dumps({**report.summary(), "crashes": sum(report.crashes.values()), "seed": seed}))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
