"""Reply codes and the replies people send.

Every warning that asks for acknowledgements gets a four-digit reply code, unique among the
warnings in force. A reply is read leniently, as people type on a phone keypad:

=======================  ==================================================================
reply                    meaning
=======================  ==================================================================
``4821``                 acknowledged warning 4821
``4821 2 5``             acknowledged, and the contact's people 2 and 5 were told in person
``2 5`` / ``2，5``       people 2 and 5 told in person (the contact's open visit list)
``收到`` / ``ok`` / ``1``  acknowledged (the one warning that waits for this person's answer)
anything else            not understood: a polite answer says what to send
=======================  ==================================================================

Full-width digits and punctuation (as Chinese input methods type them) are read as ASCII.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field

CODE_DIGITS = 4
MAX_NUMBER = 999
_FULLWIDTH = str.maketrans("０１２３４５６７８９，、．。　", "0123456789,,.. ")
_CONFIRM_WORDS = ("收到", "确认", "已收到", "好", "好的", "ok", "okay", "yes", "y", "是", "1")
_NUMBER = re.compile(r"\d+")
_SEPARATORS = re.compile(r"[\s,;.#*+\-/]+")


def new_code(taken: Collection[str]) -> str:
    """A random four-digit code (no leading zero: some phones drop it) not in ``taken``."""
    low, high = 10 ** (CODE_DIGITS - 1), 10**CODE_DIGITS
    if len(taken) >= (high - low) // 2:
        raise RuntimeError("too many warnings in force to give each its own reply code")
    while True:
        code = str(low + secrets.randbelow(high - low))
        if code not in taken:
            return code


@dataclass(frozen=True)
class Reply:
    """What a reply says: a code, the numbers of people reached, or a plain confirmation."""

    code: str | None = None
    numbers: tuple[int, ...] = field(default_factory=tuple)
    confirms: bool = False  # "收到", "ok", …: acknowledges without a code
    understood: bool = True


def parse_reply(text: str) -> Reply:
    plain = text.translate(_FULLWIDTH).strip().lower()
    if not plain:
        return Reply(understood=False)
    if plain in _CONFIRM_WORDS:
        return Reply(confirms=True)
    # Only digits and separators: a code and/or numbers. Anything else is not understood.
    if _SEPARATORS.sub("", plain).isdigit():
        tokens = [t for t in _SEPARATORS.split(plain) if t]
        code = None
        if tokens and len(tokens[0]) == CODE_DIGITS:
            code = tokens.pop(0)
        numbers = tuple(int(t) for t in tokens)
        if any(n < 1 or n > MAX_NUMBER for n in numbers):
            return Reply(understood=False)
        if code is None and not numbers:
            return Reply(understood=False)
        return Reply(code=code, numbers=tuple(dict.fromkeys(numbers)))
    # A code written inside words ("确认4821", "4821收到"): acknowledges that warning.
    found = [t for t in _NUMBER.findall(plain) if len(t) == CODE_DIGITS]
    if len(found) == 1 and any(w in plain for w in _CONFIRM_WORDS[:3]):
        return Reply(code=found[0])
    return Reply(understood=False)
