"""HMAC signatures on callbacks: what is accepted, and a clear 401 for everything else."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from warnpub.callbacks.signing import HEADER, sign, signature, verify
from warnpub.problems import Problem

SECRET = "whsec-test"
BODY = b'{"receipts":[{"id":"sim-1","reference":"7","status":"delivered"}]}'
NOW = 1_767_225_600


def refused(header: str | None, body: bytes = BODY, now: float = NOW, secret=SECRET) -> Problem:
    with pytest.raises(Problem) as err:
        verify(secret, header, body, now)
    assert err.value.status == 401
    return err.value


def test_good_signature_is_accepted_and_matches_the_documented_scheme():
    header = sign(SECRET, BODY, NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify(SECRET, header, BODY, NOW) == NOW
    assert verify(SECRET.encode(), header, BODY, NOW + 299) == NOW  # within the tolerance
    assert verify(SECRET, f" t={NOW} , v1={expected} ", BODY, NOW) == NOW


def test_bad_signature():
    header = sign("another-secret", BODY, NOW)
    assert "does not match" in refused(header).detail
    assert refused(header).kind == "bad-signature"


def test_missing_header():
    assert "header is missing" in refused(None).detail
    assert "header is missing" in refused("  ").detail


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("garbage", "is not key=value"),
        (f"t={NOW}", "v1=<hex hmac> is missing"),
        ("v1=" + "a" * 64, "t=<unix seconds> is missing"),
        (f"t=soon,v1={'a' * 64}", "whole Unix seconds"),
        (f"t={NOW},t={NOW},v1={'a' * 64}", "t must appear once"),
        (f"t={NOW},v1=xyz", "64 lower-case hex digits"),
        (f"t={NOW},v1={'A' * 64}", "64 lower-case hex digits"),
        (f"t=-{NOW},v1={'a' * 64}", "whole Unix seconds"),
    ],
)
def test_malformed_header(header, reason):
    detail = refused(header).detail
    assert "malformed" in detail and reason in detail


def test_stale_timestamp():
    header = sign(SECRET, BODY, NOW - 301)
    detail = refused(header).detail
    assert "301 s old" in detail and "replay" in detail


def test_future_timestamp():
    detail = refused(sign(SECRET, BODY, NOW + 400)).detail
    assert "in the future" in detail


def test_replay_with_another_body():
    header = sign(SECRET, BODY, NOW)
    other = BODY.replace(b"delivered", b"failed")
    assert "does not match" in refused(header, other).detail


def test_timestamp_is_covered_by_the_signature():
    good = sign(SECRET, BODY, NOW)
    moved = good.replace(f"t={NOW}", f"t={NOW + 10}")
    assert "does not match" in refused(moved).detail


def test_no_secret_configured_refuses_everything():
    assert "no callback_secret" in refused(sign(SECRET, BODY, NOW), secret="").detail
    assert "no callback_secret" in refused(sign(SECRET, BODY, NOW), secret=[]).detail
    with pytest.raises(ValueError):
        sign("", BODY, NOW)


def test_secret_rotation():
    header = sign(["new", "old"], BODY, NOW)
    assert header.count("v1=") == 2
    assert verify("old", header, BODY, NOW) == NOW
    assert verify(["new", "older"], sign("new", BODY, NOW), BODY, NOW) == NOW
    assert "does not match" in refused(header, secret="other").detail


def test_unknown_schemes_are_ignored():
    header = f"t={NOW},v0=abc,v1={signature(SECRET, BODY, NOW)}"
    assert verify(SECRET, header, BODY, NOW) == NOW


def test_header_name():
    assert HEADER == "X-Warnpub-Signature"
