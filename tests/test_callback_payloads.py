"""SMS receipts and inbound replies parsed from gateway JSON, with 400/422 errors that say where."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from warnpub.callbacks.sms_receipts import (
    InboundFormat,
    ReceiptFormat,
    delivery_id_of,
    parse_inbound,
    parse_receipts,
)
from warnpub.channels.base import Status
from warnpub.problems import Problem


def test_receipts_in_every_accepted_shape():
    item = {"id": "sim-1", "reference": "42", "status": "delivered", "at": "2026-05-01T08:00:03Z"}
    for payload in ({"receipts": [item]}, [item], item, json.dumps(item).encode()):
        (receipt,) = parse_receipts(payload)
        assert receipt.status is Status.DELIVERED and receipt.provider_ref == "sim-1"
        assert receipt.delivery_id == 42
        assert receipt.at == datetime(2026, 5, 1, 8, 0, 3, tzinfo=UTC)


def test_failed_and_intermediate_receipts():
    receipts = parse_receipts(
        {
            "receipts": [
                {"id": "a", "status": "UNDELIV", "error": "handset +8613800138000 off"},
                {"id": "b", "status": "enroute"},
                {"reference": "7", "status": "expired", "at": 1767225600},
            ]
        }
    )
    assert [r.status for r in receipts] == [Status.PERMANENT, Status.PERMANENT]
    assert "13800138000" not in receipts[0].error and receipts[0].error.endswith("off")
    assert receipts[1].error == "expired" and receipts[1].provider_ref is None
    assert receipts[1].delivery_id == 7 and receipts[1].at.year == 2026


def test_reference_names_the_delivery():
    receipts = parse_receipts(
        [
            {"reference": "wp-1042", "status": "delivered"},
            {"id": "x", "reference": "d-9", "status": "delivered"},
            {"id": "y", "reference": "wp-", "status": "delivered"},
        ]
    )
    assert [r.delivery_id for r in receipts] == [1042, None, None]
    assert delivery_id_of("17") == 17 and delivery_id_of("wp-17") == 17
    assert delivery_id_of("wp-1e3") is None and delivery_id_of("１７") is None


def test_receipt_errors_name_each_item_and_field():
    with pytest.raises(Problem) as err:
        parse_receipts(
            {
                "receipts": [
                    {"id": "ok", "status": "delivered"},
                    {"id": "a"},
                    {"id": "b", "status": "lost-in-space"},
                    {"reference": "not-a-number", "status": "delivered"},
                    {"id": "c", "status": "delivered", "at": "yesterday"},
                    "text",
                    {"id": ["x"], "status": "delivered"},
                ]
            }
        )
    problem = err.value
    assert problem.status == 422
    fields = {e.field: e.message for e in problem.errors}
    assert fields["receipts[1].status"] == "this field is required"
    assert "unknown status 'lost-in-space'" in fields["receipts[2].status"]
    assert "give id" in fields["receipts[3]"]
    assert "ISO 8601" in fields["receipts[4].at"]
    assert "JSON object" in fields["receipts[5]"]
    assert fields["receipts[6].id"] == "give a string"
    assert "receipts[0]" not in str(fields)


@pytest.mark.parametrize(
    ("payload", "status", "text"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        ({"receipts": []}, 422, "no receipts"),
        ({"receipts": {"id": "a"}}, 422, "must be a list"),
        ("42", 422, "JSON object or array"),
    ],
)
def test_unreadable_receipt_bodies(payload, status, text):
    with pytest.raises(Problem) as err:
        parse_receipts(payload)
    assert err.value.status == status and text in err.value.detail


def test_gateway_specific_receipt_fields():
    fmt = ReceiptFormat(list_field="reports", id="msgid", status="stat", reference="cid")
    (receipt,) = parse_receipts({"reports": [{"msgid": "m1", "stat": "DELIVRD"}]}, fmt)
    assert receipt.status is Status.DELIVERED and receipt.provider_ref == "m1"


def test_inbound_messages_are_normalised_to_e164():
    messages = parse_inbound(
        {
            "messages": [
                {"id": "mo-1", "from": "+8613800138000", "to": "10690000", "text": "1"},
                {"from": "13800138001", "text": " 收到 ", "at": "2026-05-01T08:01:00+08:00"},
                {"from": "8613800138002", "text": ""},
            ]
        }
    )
    assert [m.sender for m in messages] == ["+8613800138000", "+8613800138001", "+8613800138002"]
    assert messages[0].provider_ref == "mo-1" and messages[0].recipient == "10690000"
    assert messages[1].text == "收到" and messages[1].at == datetime(2026, 5, 1, 0, 1, tzinfo=UTC)
    assert messages[2].text == ""


def test_inbound_errors():
    with pytest.raises(Problem) as err:
        parse_inbound([{"from": "12", "text": "1"}, {"text": "1"}, {"from": "+8613800138000"}])
    fields = {e.field: e.message for e in err.value.errors}
    assert err.value.status == 422
    assert "not a valid phone number" in fields["messages[0].from"]
    assert fields["messages[1].from"] == "this field is required"
    assert fields["messages[2].text"] == "this field is required"


def test_inbound_region_and_format():
    fmt = InboundFormat(list_field="mo", sender="msisdn", text="content")
    (message,) = parse_inbound({"mo": [{"msisdn": "2025550123", "content": "ok"}]}, "US", fmt)
    assert message.sender == "+12025550123"
