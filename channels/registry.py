"""Channel adapters found through the entry-point group ``warnpub.channels``, and the configured
instances built from ``settings.channels``.

An adapter is installed by one entry point (``<adapter name> = "module:Factory"``); the factory
is called as ``Factory(instance_name, instance_config)`` and returns a
:class:`~warnpub.channels.base.Channel`. Only the adapters named in the configuration are
imported, so a broken or missing adapter affects only the instances that use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from warnpub.channels.base import Channel, ChannelError, ChannelFactory
from warnpub.config import CHANNEL_KINDS, Settings

GROUP = "warnpub.channels"


def adapters() -> dict[str, EntryPoint]:
    """Installed adapters by name (not imported yet)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_factory(adapter: str) -> ChannelFactory:
    """The factory of one installed adapter; :class:`ChannelError` if it is unknown or broken."""
    found = adapters()
    if adapter not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ChannelError(f"unknown adapter {adapter!r}; installed adapters: {known}")
    try:
        return found[adapter].load()
    except Exception as exc:  # an adapter's import error must name the adapter, not crash
        raise ChannelError(
            f"adapter {adapter!r} ({found[adapter].value}) could not be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def build_channels(
    settings: Settings, factories: Mapping[str, ChannelFactory] | None = None
) -> dict[str, list[Channel]]:
    """Every configured channel instance, by kind, in configuration order (not started yet).

    ``factories`` replaces the entry-point lookup (adapter name → factory), e.g. in tests.
    Raises :class:`ChannelError` naming the instance and the key to fix."""
    built: dict[str, list[Channel]] = {}
    for kind, entries in settings.channels.items():
        if kind not in CHANNEL_KINDS:
            raise ChannelError(
                f"channels.{kind}: unknown channel kind; use one of {', '.join(CHANNEL_KINDS)}"
            )
        seen: set[str] = set()
        built[kind] = []
        for index, entry in enumerate(entries):
            where = f"channels.{kind}[{index}]"
            name, adapter = _identity(where, entry)
            where = f"{where} (name {name!r}, adapter {adapter!r})"
            if name in seen:
                raise ChannelError(
                    f"{where}: key name: {name!r} is used twice among the {kind} channels; "
                    "give each instance its own name"
                )
            seen.add(name)
            try:
                factory = factories[adapter] if factories is not None else load_factory(adapter)
            except KeyError:
                known = ", ".join(sorted(factories or {})) or "none"
                raise ChannelError(
                    f"{where}: key adapter: unknown adapter {adapter!r}; known: {known}"
                ) from None
            except ChannelError as exc:
                raise ChannelError(f"{where}: key adapter: {exc}") from exc
            config = {k: v for k, v in entry.items() if k not in ("name", "adapter")}
            try:
                channel = factory(name, config)
            except ChannelError as exc:
                raise ChannelError(f"{where}: {exc}") from exc
            served = getattr(channel, "kind", None)
            if served != kind:
                raise ChannelError(
                    f"{where}: key adapter: {adapter!r} serves {served!r} channels, not {kind!r}; "
                    f"move this entry under [[channels.{served}]]"
                )
            if not isinstance(channel, Channel):
                raise ChannelError(f"{where}: {adapter!r} does not implement the Channel protocol")
            built[kind].append(channel)
    return built


def _identity(where: str, entry: Any) -> tuple[str, str]:
    if not isinstance(entry, Mapping):
        raise ChannelError(f"{where}: each instance must be a table with name and adapter")
    name, adapter = entry.get("name"), entry.get("adapter")
    if not isinstance(name, str) or not name.strip():
        raise ChannelError(f'{where}: key name: give each instance a name (e.g. "gateway-a")')
    if not isinstance(adapter, str) or not adapter.strip():
        raise ChannelError(
            f'{where} (name {name!r}): key adapter: name the adapter (e.g. "http_json")'
        )
    return name, adapter
