"""Logs are JSON lines with phone numbers and e-mail addresses masked."""

from __future__ import annotations

import json
import logging

from warnpub.logs import JsonFormatter, mask


def test_mask_hides_numbers_and_mail_but_not_codes_or_dates():
    text = mask(
        "call +8613800138000 or 13912345678 about 320481101200 on 2026-11-28, zhang.san@example.cn"
    )
    assert "13800138000" not in text and "13912345678" not in text and "zhang.san" not in text
    assert (
        "8000" in text and "320481101200" in text and "2026-11-28" in text and "@example.cn" in text
    )


def test_json_formatter_masks_message_and_extras():
    record = logging.LogRecord(
        "warnpub.test", logging.INFO, __file__, 1, "sent to %s", ("+8613800138000",), None
    )
    record.recipient = {"phone": "13912345678", "email": "li.si@example.cn"}
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"].endswith("8000") and "13800138000" not in line["msg"]
    assert "13912345678" not in json.dumps(line) and "li.si" not in json.dumps(line)
    assert line["level"] == "INFO" and line["logger"] == "warnpub.test"
