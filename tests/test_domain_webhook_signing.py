"""The Standard Webhooks signature, checked against the ``standardwebhooks`` library (an
independent implementation) and the scheme's published example."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from waypost.domain.webhook_signing import (
    BadSecret,
    message_id,
    secret_key,
    sign,
    signature_header,
    signed_headers,
)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_the_message_id_is_msg_and_the_uuid_in_hex() -> None:
    ident = uuid.UUID("0190d0a4-7a5b-7c3d-8e9f-0123456789ab")
    assert message_id(ident) == "msg_0190d0a47a5b7c3d8e9f0123456789ab"


def test_the_published_example_signature() -> None:
    # The example of the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    assert (
        sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_the_library_verifies_what_is_signed() -> None:
    secret = new_secret()
    body = '{"type": "activity.performed", "data": {"name": "Zoë"}}'
    headers = signed_headers([secret], "msg_abc", int(time.time()), body)
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(body, headers) == {
        "type": "activity.performed",
        "data": {"name": "Zoë"},
    }


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old, other = new_secret(), new_secret(), new_secret()
    body = "{}"
    headers = signed_headers([new, old], "msg_1", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


def test_a_changed_body_id_or_timestamp_does_not_verify() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signed_headers([secret], "msg_1", now, '{"a": 1}')
    for changed in (
        {**headers, "webhook-id": "msg_2"},
        {**headers, "webhook-timestamp": str(now + 1)},
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify('{"a": 1}', changed)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify('{"a": 2}', headers)


def test_the_signature_is_over_the_timestamp_given() -> None:
    secret = new_secret()
    then = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ours = sign(secret, "msg_1", int(then.timestamp()), "{}")
    assert ours == Webhook(secret).sign("msg_1", then, "{}")


@pytest.mark.parametrize(
    "secret", ["", "whsec_", "abc", "whsec_not base64!", "wpt_" + "a" * 40, "whsec_====="]
)
def test_a_bad_secret_is_refused(secret: str) -> None:
    with pytest.raises(BadSecret):
        secret_key(secret)


def test_unpadded_base64_is_a_secret_too() -> None:
    key = os.urandom(31)
    encoded = base64.b64encode(key).decode().rstrip("=")
    assert secret_key("whsec_" + encoded) == key


def test_a_message_needs_a_secret() -> None:
    with pytest.raises(BadSecret):
        signature_header([], "msg_1", 1, "{}")
