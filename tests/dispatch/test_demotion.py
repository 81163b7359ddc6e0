"""Demotion moves work to the other instances of a channel kind; the only instance of its kind
keeps sending when its receipts are late (a county with one SMS gateway must not fall to a
probe now and then)."""

from __future__ import annotations

from tests.dispatch.conftest import sms_config
from warnpub.channels.registry import build_channels
from warnpub.dispatch.dispatcher import Dispatcher


class _Url:
    url = "http://127.0.0.1:9"


def _workers(settings, db, names: list[str]):
    settings.channels = {"sms": [sms_config(_Url(), name) for name in names]}  # type: ignore[arg-type]
    return {w.name: w for w in Dispatcher(db, settings, build_channels(settings)).workers}


async def test_a_demoted_gateway_only_probes_while_another_can_take_its_work(settings, db):
    workers = _workers(settings, db, ["a", "b"])
    workers["a"].health.slow_receipts = True
    assert workers["a"]._probing() and not workers["b"]._probing()


async def test_the_only_gateway_keeps_sending_when_its_receipts_are_late(settings, db):
    workers = _workers(settings, db, ["only"])
    workers["only"].health.slow_receipts = True
    assert workers["only"].health.demoted and not workers["only"]._probing()


async def test_two_demoted_gateways_both_keep_sending(settings, db):
    workers = _workers(settings, db, ["a", "b"])
    for w in workers.values():
        w.health.slow_receipts = True
    assert not workers["a"]._probing() and not workers["b"]._probing()
