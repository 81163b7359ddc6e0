"""Durations and percentiles in words, and the [reports] settings refusing bad values."""

from __future__ import annotations

import pytest

from warnpub.config import load_settings
from warnpub.problems import Problem
from warnpub.reports.timing import chart_ranks, rank_for
from warnpub.reports.units import duration, percent


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "-"),
        (0, "0 s"),
        (2.5, "2.5 s"),
        (42, "42 s"),
        (59.6, "1 min 00 s"),
        (432, "7 min 12 s"),
        (-60, "-1 min 00 s"),
        (3 * 3600 + 5 * 60, "3 h 05 min"),
        (3 * 86400 + 4 * 3600, "3 d 04 h"),
    ],
)
def test_duration(seconds, words):
    assert duration(seconds) == words


def test_percent():
    assert percent(None) == "-" and percent(0.96) == "96.0 %" and percent(1 / 3) == "33.3 %"


def test_ranks():
    # ⌈p·n/100⌉: 50 % of 10 is the 5th, 90 % of 10 the 9th, 99 % of 10 the 10th.
    assert [rank_for(p, 10) for p in (50, 90, 99)] == [5, 9, 10]
    assert [rank_for(p, 1) for p in (50, 90, 99)] == [1, 1, 1]
    assert rank_for(50, 0) is None
    assert [rank_for(p, 1_000_000) for p in (50, 90, 99)] == [500_000, 900_000, 990_000]
    assert chart_ranks(0, 100) == set()
    assert chart_ranks(3, 100) == {1, 2, 3}
    ranks = chart_ranks(1_000_000, 100)
    assert len(ranks) == 101 and min(ranks) == 1 and max(ranks) == 1_000_000


def test_defaults():
    cfg = load_settings(environ={}).reports
    assert cfg.major_levels == ["red", "orange"]
    assert (cfg.authoritative_minutes, cfg.authoritative_limit_minutes) == (180, 300)
    assert [t.name for t in cfg.time_targets] == ["reach the public", "special needs first"]
    assert cfg.time_targets[0].minutes == 10 and cfg.time_targets[0].milestone == "delivered_90"


@pytest.mark.parametrize(
    ("toml", "field", "words"),
    [
        ('display_timezone = "Mars/Olympus"', "reports.display_timezone", "time zone"),
        ("authoritative_limit_minutes = 60", "reports", "must not be less"),
        (
            'time_targets = [{ name = "x", milestone = "approved", group = "special_needs", minutes = 5 }]',
            "reports.time_targets.0",
            "delivered_50/90/99 only",
        ),
        (
            'time_targets = [{ name = "x", milestone = "delivered_90", group = "cats", minutes = 5 }]',
            "reports.time_targets.0.group",
            "special_needs",
        ),
        (
            'coverage_targets = [{ name = "x", percent = 120 }]',
            "reports.coverage_targets.0.percent",
            "100",
        ),
        (
            'time_targets = [{ name = "x", milestone = "lunch", minutes = 5 }]',
            "milestone",
            "approved",
        ),
    ],
)
def test_bad_settings_name_the_key(tmp_path, toml, field, words):
    site = tmp_path / "site.toml"
    site.write_text(f"[reports]\n{toml}\n", encoding="utf-8")
    with pytest.raises(Problem) as e:
        load_settings(site, environ={})
    assert any(field in err.field and words in err.message for err in e.value.errors), (
        e.value.errors
    )


def test_site_file_sets_targets(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(
        '[reports]\nmajor_levels = ["red"]\n\n[[reports.time_targets]]\n'
        'name = "public in 5"\nmilestone = "delivered_90"\nminutes = 5\nlevels = ["red"]\n',
        encoding="utf-8",
    )
    cfg = load_settings(site, environ={}).reports
    assert cfg.major_levels == ["red"]
    assert [(t.name, t.minutes, t.levels) for t in cfg.time_targets] == [
        ("public in 5", 5, ["red"])
    ]


def test_documented_section_is_the_defaults():
    """The commented [reports] section of config/warnpub.toml, uncommented, is valid and
    equals the built-in defaults (so the documentation cannot drift from the code)."""
    import re
    import tomllib

    from warnpub.config import ReportsConfig, default_config_text

    lines = default_config_text().splitlines()
    start = lines.index("# [reports]")
    toml: list[str] = []
    for line in lines[start:]:
        match = re.match(r"^# (\[.*\]|[a-z_]+ = .*)$", line)
        if match is None:
            continue  # prose and blank lines
        content = match.group(1)
        if content.startswith("[") and "reports" not in content:
            break  # the next section
        toml.append(content)
    doc = tomllib.loads("\n".join(toml))["reports"]
    assert len(doc["time_targets"]) == 2 and len(doc["coverage_targets"]) == 2
    assert ReportsConfig.model_validate(doc) == ReportsConfig()
