"""Who sees what of the people in a report's unreached list.

Three levels, chosen by who asks and where the list goes:

- ``operator`` (the console and ``GET …/report``, signed-in operators only): full names of the
  people and their village contacts — the duty officer must know whom to call or visit —
  phone numbers to their last four digits, e-mail addresses to their first character.
- ``export`` (everything the command line prints or writes: ``warnpub report`` text, JSON,
  CSV and HTML, ``warnpub drill run`` and its after-action files, ``warnpub visits``): files
  travel (mail attachments, shared drives), so names keep their first character (张**) and
  phone numbers their last four digits.
- ``full`` (``--unmasked`` on those commands): names and phone numbers in full, for the duty
  officer working an incident at the server. Whoever runs the command can read the database
  anyway; each unmasked export is recorded in the audit log (``export.unmasked``).

Device names (a village's loudspeaker, a notice board) are places, not people: never masked.
A forgotten person (``warnpub audience forget``) is listed as ``(forgotten)`` with its needs.
"""

from __future__ import annotations

from typing import Literal

from warnpub.logs import mask, mask_name

Privacy = Literal["operator", "export", "full"]
OPERATOR: Privacy = "operator"
EXPORT: Privacy = "export"
FULL: Privacy = "full"
LEVELS: tuple[Privacy, ...] = (OPERATOR, EXPORT, FULL)
FORGOTTEN = "(forgotten)"


def person_name(name: str | None, privacy: Privacy) -> str:
    if not name:
        return ""
    if privacy == FULL:
        return name
    if privacy == EXPORT:
        return mask_name(name)
    # Contact points typed into a name field are masked all the same.
    return mask(name)


def phone(number: str | None, privacy: Privacy) -> str:
    """All but the last four digits hidden (whatever the number looks like), unless ``full``."""
    if not number:
        return ""
    if privacy == FULL:
        return number
    return "*" * max(0, len(number) - 4) + number[-4:]


def error_text(text: str, privacy: Privacy) -> str:
    return (text if privacy == FULL else mask(text))[:300]
