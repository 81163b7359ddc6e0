"""Validating one channel instance's configuration: every adapter's ``parse_config``.

A mistake becomes a :class:`~warnpub.channels.base.ChannelError` that names every key to fix
(``key timeout_s: Input should be greater than 0; key colour: unknown key for the …
adapter``), so ``warnpub serve`` refuses to start with a message an operator can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from warnpub.channels.base import ChannelError

M = TypeVar("M", bound=BaseModel)


def validate_instance(
    model: type[M], config: Mapping[str, Any], adapter: str, doc: str = "docs/channels.md"
) -> M:
    """``config`` (one ``[[channels.<kind>]]`` entry, its ``name`` and ``adapter`` aside) as
    ``model``; :class:`ChannelError` naming every key to fix."""
    data = {k: v for k, v in config.items() if k not in ("name", "adapter")}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False):
            key = ".".join(str(p) for p in err["loc"]) or "(instance)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key for the {adapter} adapter (see {doc})"
            elif err["type"] == "missing":
                msg = "this key is required"
            problems.append(f"key {key}: {msg}")
        raise ChannelError("; ".join(problems)) from None
