"""Reading replies and making links: the parts that need no database."""

from __future__ import annotations

import pytest

from warnpub.lastkm import links
from warnpub.lastkm.codes import Reply, new_code, parse_reply


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("4821", Reply(code="4821")),
        (" 4821 ", Reply(code="4821")),
        ("４８２１", Reply(code="4821")),  # full-width digits, as Chinese input methods type
        ("4821 2 5", Reply(code="4821", numbers=(2, 5))),
        ("4821,2,5", Reply(code="4821", numbers=(2, 5))),
        ("4821，2、5", Reply(code="4821", numbers=(2, 5))),
        ("4821 2 2 5", Reply(code="4821", numbers=(2, 5))),
        ("2 5", Reply(numbers=(2, 5))),
        ("3", Reply(numbers=(3,))),
        ("收到", Reply(confirms=True)),
        ("OK", Reply(confirms=True)),
        ("1", Reply(confirms=True)),
        ("确认4821", Reply(code="4821")),
        ("4821收到", Reply(code="4821")),
        ("", Reply(understood=False)),
        ("请问是什么情况？", Reply(understood=False)),
        ("4821 0", Reply(understood=False)),
        ("4821 1000", Reply(understood=False)),
        ("12345", Reply(understood=False)),
    ],
)
def test_replies_are_read_as_people_type_them(text, reply):
    assert parse_reply(text) == reply


def test_codes_are_four_digits_and_not_taken():
    taken = {str(n) for n in range(1000, 5000)}
    for _ in range(200):
        code = new_code(taken)
        assert len(code) == 4 and code not in taken and code[0] != "0"


def test_links_verify_only_with_their_key_and_id():
    key, other = "ab" * 32, "cd" * 32
    token = links.token(key, 987654)
    delivery_id, sig = links.split(token)  # type: ignore[misc]
    assert delivery_id == 987654 and links.verify(key, delivery_id, sig)
    assert not links.verify(other, delivery_id, sig)
    assert not links.verify(key, delivery_id + 1, sig)
    for bad in ("", "abc", "zz.short", "!!.aaaaaaaaaaaa", "1" * 13 + ".aaaaaaaaaaaa"):
        assert links.split(bad) is None
    assert len(links.url("https://warn.liyang.example", key, 10**9)) < 60
