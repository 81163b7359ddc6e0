"""The loudspeaker settings and wire helpers: mistakes are refused with the key to fix, and
round references are told apart from delivery references."""

from __future__ import annotations

from pathlib import Path

import pytest

from warnpub.channels.base import ChannelError, Receipt, Status
from warnpub.channels.speaker_mqtt import MqttSpeaker
from warnpub.channels.speaker_wire import delivery_id_of, round_of, round_reference
from warnpub.config import load_settings
from warnpub.dispatch.broadcasts import split_rounds
from warnpub.problems import Problem


def test_defaults_rebroadcast_red_and_orange_only():
    s = load_settings(environ={})
    assert s.speakers.rebroadcast_every_s == {"red": 1800.0, "orange": 3600.0}
    assert s.speakers.max_rounds == 0
    assert MqttSpeaker("x", {}).ack_retries == 2


def test_a_site_file_replaces_the_intervals(tmp_path: Path):
    site = tmp_path / "site.toml"
    site.write_text("[speakers]\nrebroadcast_every_s = { yellow = 600 }\nmax_rounds = 4\n")
    s = load_settings(site, environ={})
    assert s.speakers.rebroadcast_every_s == {"yellow": 600.0}
    assert s.speakers.max_rounds == 4


@pytest.mark.parametrize(
    ("toml", "field", "says"),
    [
        (
            "rebroadcast_every_s = { purple = 60 }",
            "speakers.rebroadcast_every_s.purple.[key]",
            "red",
        ),
        ("rebroadcast_every_s = { red = 0.5 }", "speakers.rebroadcast_every_s", "at least 1"),
        ("max_rounds = -1", "speakers.max_rounds", "greater than or equal to 0"),
        ("every = 60", "speakers.every", "Extra inputs"),
    ],
)
def test_bad_speaker_settings_are_refused(tmp_path: Path, toml: str, field: str, says: str):
    site = tmp_path / "site.toml"
    site.write_text(f"[speakers]\n{toml}\n")
    with pytest.raises(Problem) as caught:
        load_settings(site, environ={})
    errors = {e.field: e.message for e in caught.value.errors}
    assert field in errors, errors
    assert says in errors[field]


@pytest.mark.parametrize("value", [-1, 21, "two"])
def test_ack_retries_out_of_range_is_refused(value: object):
    with pytest.raises(ChannelError, match="key ack_retries"):
        MqttSpeaker("county", {"ack_retries": value})


def test_round_references():
    assert round_reference(1042, 2) == "wp-1042-r2"
    assert round_of("wp-1042-r2") == (1042, 2)
    assert round_of("wp-1042") is None
    assert round_of("wp-1042-r1") is None, "round 1 is the delivery's own reference"
    assert round_of("wp-x-r2") is None
    assert delivery_id_of("wp-1042-r2") is None, "a round ack never names the delivery"
    with pytest.raises(ValueError, match="from 2"):
        round_reference(1042, 1)


def test_round_acks_are_kept_apart_from_delivery_receipts():
    rounds, others = split_rounds(
        [
            Receipt(Status.DELIVERED, provider_ref="wp-7-r3", delivery_id=7),
            Receipt(Status.DELIVERED, provider_ref="wp-7", delivery_id=7),
            Receipt(Status.PERMANENT, provider_ref=None, delivery_id=8),
        ]
    )
    assert [r.provider_ref for r in rounds] == ["wp-7-r3"]
    assert [r.provider_ref for r in others] == ["wp-7", None]
