"""Configuration: defaults, a site file over them, WARNPUB_* variables over both, clear errors."""

from __future__ import annotations

import pytest

from warnpub.config import load_settings, masked, show
from warnpub.problems import Problem


def test_defaults_load_from_the_packaged_file():
    s = load_settings(environ={})
    assert s.database.url.startswith("sqlite+aiosqlite:///")
    assert s.review.two_person_levels == ["red", "orange"]
    assert s.hazard_for("暴雨") == "rainstorm" and s.hazard_for("Rainstorm") == "rainstorm"


def test_env_overrides_nested_keys():
    s = load_settings(
        environ={
            "WARNPUB_DATABASE_URL": "postgresql+asyncpg://u:pw@db/x",
            "WARNPUB_SERVER_PORT": "9001",
            "WARNPUB_REVIEW_TWO_PERSON_LEVELS": '["red"]',
        }
    )
    assert s.database.url == "postgresql+asyncpg://u:pw@db/x" and s.server.port == 9001
    assert s.review.two_person_levels == ["red"]


def test_site_file_replaces_green_channel_rules(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[[review.green_channel]]\nagencies = ["SL"]\nlevels = ["red", "orange"]\n')
    s = load_settings(site, environ={})
    assert [(r.agencies, r.levels) for r in s.review.green_channel] == [(["SL"], ["red", "orange"])]


@pytest.mark.parametrize(
    "env,field",
    [
        ({"WARNPUB_DATABASE_URL": "mysql://x"}, "database.url"),
        ({"WARNPUB_SERVER_PORT": "99999"}, "server.port"),
        ({"WARNPUB_REVIEW_TWO_PERSON_LEVELS": '["purple"]'}, "review.two_person_levels"),
    ],
)
def test_bad_values_name_the_key(env, field):
    with pytest.raises(Problem) as exc:
        load_settings(environ=env)
    assert any(e.field.startswith(field) for e in exc.value.errors)


def test_secrets_and_url_passwords_are_masked():
    s = load_settings(
        environ={
            "WARNPUB_SECURITY_SECRET_KEY": "hunter2hunter2",
            "WARNPUB_DATABASE_URL": "postgresql+asyncpg://warn:topsecret@db/x",
        }
    )
    text = show(s)
    assert "hunter2" not in text and "topsecret" not in text and "warn:***@db/x" in text
    assert masked({"callback_secret": "x", "name": "y"}) == {"callback_secret": "***", "name": "y"}


def test_channel_credentials_are_masked():
    s = load_settings(environ={})
    s.channels = {"sms": [{"name": "a", "auth_value": "Bearer xyz", "callback_secret": "abc", "url": "http://x"}]}
    text = show(s)
    assert "xyz" not in text and "abc" not in text and "http://x" in text
