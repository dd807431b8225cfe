"""The XroadVnpt header signature, pure functions (no HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.axis.errors import AxisAuthError
from gateway.axis.vdxp_auth import (
    format_timestamp,
    hash_file,
    hash_file_matches,
    parse_timestamp,
    sign_headers,
    signed_params,
    verify_headers,
)

NOW = datetime(2024, 3, 1, 7, 5, 9, 42_000, tzinfo=UTC)  # 14:05:09.042 in Vietnam
SECRETS = {"sys-a": "s3cret"}


def test_timestamp_is_vietnam_wall_clock_with_four_digit_millis():
    assert format_timestamp(NOW) == "01032024T140509+0042"
    assert parse_timestamp("01032024T140509+0042") == NOW


@pytest.mark.parametrize("bad", ["2024-03-01T14:05:09", "01032024T140509+1000", "01032024T140509"])
def test_timestamp_rejects_other_shapes(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_sign_headers_matches_the_sdk_construction():
    headers = sign_headers({"docId": "R-1"}, "sys-a", "s3cret", NOW)
    assert headers["XroadVnpt-systemid"] == "sys-a"
    assert headers["XroadVnpt-docId"] == "R-1"
    assert headers["XroadVnpt-sign-header-key"] == "systemid;timestamp;docId"
    signed = json.loads(headers["XroadVnpt-sign-header"])
    assert signed == {
        "XroadVnpt-systemid": "sys-a",
        "XroadVnpt-timestamp": "01032024T140509+0042",
        "XroadVnpt-docId": "R-1",
    }
    assert " " not in headers["XroadVnpt-sign-header"]  # compact JSON
    expected = hmac.new(b"s3cret", headers["XroadVnpt-sign-header"].encode(), hashlib.sha256)
    assert headers["XroadVnpt-hash-header"] == expected.hexdigest()
    assert headers["XroadVnpt-version"] == "3.0.201608"


def test_verify_accepts_a_signed_request_and_returns_the_system_id():
    headers = sign_headers({"docId": "R-1", "status": "done"}, "sys-a", "s3cret", NOW)
    assert verify_headers(headers, SECRETS.get, NOW + timedelta(seconds=30)) == "sys-a"
    assert signed_params(headers)["status"] == "done"


def test_verify_uses_the_json_exactly_as_received_whatever_the_key_order():
    signed = {"XroadVnpt-timestamp": "01032024T140509+0042", "XroadVnpt-systemid": "sys-a"}
    raw = json.dumps(signed, separators=(",", ":"))
    headers = {
        **signed,
        "XroadVnpt-sign-header-key": "timestamp;systemid",
        "XroadVnpt-sign-header": raw,
        "XroadVnpt-hash-header": hmac.new(b"s3cret", raw.encode(), hashlib.sha256).hexdigest(),
    }
    assert verify_headers(headers, SECRETS.get, NOW) == "sys-a"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h: h.update({"XroadVnpt-docId": "R-2"}), "signature_mismatch"),
        (lambda h: h.update({"XroadVnpt-status": "done"}), "unsigned_parameter"),
        (lambda h: h.pop("XroadVnpt-hash-header"), "missing_signature"),
        (lambda h: h.update({"XroadVnpt-sign-header": "{not json"}), "malformed_signature"),
        (lambda h: h.update({"XroadVnpt-sign-header-key": "systemid"}), "malformed_signature"),
        (lambda h: h.update({"XroadVnpt-hash-header": "0" * 64}), "bad_signature"),
    ],
)
def test_verify_rejects_tampering(mutate, code):
    headers = sign_headers({"docId": "R-1"}, "sys-a", "s3cret", NOW)
    mutate(headers)
    with pytest.raises(AxisAuthError) as info:
        verify_headers(headers, SECRETS.get, NOW)
    assert info.value.code == code


def test_verify_rejects_wrong_secret_unknown_system_and_skew():
    wrong = sign_headers({}, "sys-a", "not-the-secret", NOW)
    with pytest.raises(AxisAuthError) as info:
        verify_headers(wrong, SECRETS.get, NOW)
    assert info.value.code == "bad_signature"
    stranger = sign_headers({}, "sys-x", "s3cret", NOW)
    with pytest.raises(AxisAuthError) as info:
        verify_headers(stranger, SECRETS.get, NOW)
    assert info.value.code == "unknown_system"
    ok = sign_headers({}, "sys-a", "s3cret", NOW)
    for skew in (timedelta(minutes=6), -timedelta(minutes=6)):
        with pytest.raises(AxisAuthError) as info:
            verify_headers(ok, SECRETS.get, NOW + skew, max_skew=timedelta(minutes=5))
        assert info.value.code == "stale_timestamp"


def test_sign_refuses_reserved_or_signer_parameters():
    for name in ("systemid", "timestamp", "sign-header", "a;b"):
        with pytest.raises(ValueError):
            sign_headers({name: "x"}, "sys-a", "s3cret", NOW)


def test_hash_file_sdk_form_drops_leading_zeros_of_each_byte():
    data = b"edxml bytes"
    digest = hashlib.sha256(data).digest()
    assert hash_file(data, sdk_compatible=False) == digest.hex()
    assert hash_file(data) == "".join(format(b, "x") for b in digest)
    assert hash_file_matches(data, hash_file(data))
    assert hash_file_matches(data, digest.hex().upper())
    assert not hash_file_matches(b"other", hash_file(data))


def test_sign_refuses_header_injection():
    with pytest.raises(ValueError):
        sign_headers({"description": "a\r\nX-Evil: 1"}, "sys-a", "s3cret", NOW)
