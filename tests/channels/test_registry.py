"""Channel adapters from the ``warnpub.channels`` entry points; instances from settings.channels."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from warnpub.channels.base import Channel, ChannelError, Limits
from warnpub.channels.registry import adapters, build_channels, load_factory
from warnpub.channels.sms_http import HttpJsonSms
from warnpub.config import Settings

GW = {"adapter": "http_json", "url": "http://127.0.0.1:9090/sms"}


def settings(channels: dict[str, Any]) -> Settings:
    return Settings(channels=channels)


def test_http_json_is_installed_as_an_entry_point():
    assert "http_json" in adapters()
    assert load_factory("http_json") is HttpJsonSms


def test_builds_every_configured_instance_in_order():
    built = build_channels(
        settings(
            {
                "sms": [
                    {"name": "a", **GW, "weight": 3},
                    {"name": "b", **GW, "batch_url": "http://127.0.0.1:9090/sms/batch"},
                ]
            }
        )
    )
    a, b = built["sms"]
    assert isinstance(a, HttpJsonSms) and isinstance(a, Channel)
    assert (a.name, a.weight, b.name, b.limits.max_batch) == ("a", 3, "b", 100)


def test_nothing_configured():
    assert build_channels(settings({})) == {}
    assert build_channels(settings({"sms": []})) == {"sms": []}


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (
            {"sms": [{"name": "a", "adapter": "carrier-pigeon"}]},
            "channels.sms[0] (name 'a', adapter 'carrier-pigeon'): key adapter: unknown adapter 'carrier-pigeon'; installed adapters:",
        ),
        (
            {"sms": [{"name": "a", **GW}, {"name": "a", **GW}]},
            "channels.sms[1] (name 'a', adapter 'http_json'): key name: 'a' is used twice",
        ),
        (
            {"sms": [{"name": "a", "adapter": "http_json"}]},
            "channels.sms[0] (name 'a', adapter 'http_json'): key url: this key is required",
        ),
        (
            {"sms": [{"name": "a", **GW, "timeout_s": 0}]},
            "channels.sms[0] (name 'a', adapter 'http_json'): key timeout_s:",
        ),
        ({"sms": [{**GW}]}, "channels.sms[0]: key name: give each instance a name"),
        ({"sms": [{"name": "a"}]}, "channels.sms[0] (name 'a'): key adapter: name the adapter"),
        ({"email": [{"name": "a", **GW}]}, "'http_json' serves 'sms' channels, not 'email'"),
        ({"pager": [{"name": "a", **GW}]}, "channels.pager: unknown channel kind"),
    ],
)
def test_bad_configuration_names_instance_and_key(channels, expected):
    with pytest.raises(ChannelError) as err:
        build_channels(settings(channels))
    assert expected in str(err.value)


def test_entry_that_is_not_a_table():
    unchecked = Settings.model_construct(channels={"sms": ["a"]})
    with pytest.raises(ChannelError, match=r"channels.sms\[0\]: each instance must be a table"):
        build_channels(unchecked)


def test_same_name_under_different_kinds_is_allowed():
    class Mail:
        kind: ClassVar[str] = "email"

        def __init__(self, name: str, config: dict[str, Any]) -> None:
            self.name, self.limits, self.weight = name, Limits(), 1.0

        async def start(self) -> None: ...

        async def close(self) -> None: ...

        async def send(self, messages):
            return []

    built = build_channels(
        settings({"sms": [{"name": "x", **GW}], "email": [{"name": "x", "adapter": "mail"}]}),
        factories={"http_json": HttpJsonSms, "mail": Mail},
    )
    assert [c.name for c in built["sms"] + built["email"]] == ["x", "x"]


def test_explicit_factories_and_protocol_check():
    class NotAChannel:
        kind: ClassVar[str] = "sms"

        def __init__(self, name: str, config: dict[str, Any]) -> None:
            self.name = name

    with pytest.raises(ChannelError, match="does not implement the Channel protocol"):
        build_channels(settings({"sms": [{"name": "a", "adapter": "x"}]}), {"x": NotAChannel})
    with pytest.raises(ChannelError, match="unknown adapter 'y'; known: x"):
        build_channels(settings({"sms": [{"name": "a", "adapter": "y"}]}), {"x": NotAChannel})


def test_broken_adapter_module_is_named(monkeypatch):
    from importlib.metadata import EntryPoint

    from warnpub.channels import registry

    broken = EntryPoint("broken", "warnpub.channels.no_such_module:Thing", registry.GROUP)
    monkeypatch.setattr(registry, "adapters", lambda: {"broken": broken})
    with pytest.raises(ChannelError) as err:
        build_channels(settings({"sms": [{"name": "a", "adapter": "broken"}]}))
    text = str(err.value)
    assert "adapter 'broken' (warnpub.channels.no_such_module:Thing) could not be loaded" in text
    assert "ModuleNotFoundError" in text


def test_documented_examples_build():
    import tomllib
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "channels.md").read_text("utf-8")
    blocks = [b.split("```")[0] for b in doc.split("```toml")[1:]]
    built = [
        build_channels(settings(tomllib.loads(b)["channels"]))
        for b in blocks
        if "adapter" in b and "webhook" not in b
    ]
    sms = {c.name: c for b in built for c in b.get("sms", [])}
    assert {"gateway-a", "gateway-b", "county-gateway", "sim"} <= set(sms)
    assert sms["county-gateway"].limits.max_batch == 200 and sms["county-gateway"].callback_secret
