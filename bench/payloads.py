"""What the benchmark sends: a custom activity type with two typed fields, logged by a pool
of contacts, one activity per request or 100 per request."""

from __future__ import annotations

import json
import random

from bench.load import RequestPool

PATH = "/tracking/activities"
POOL_SIZE = 64
CONTACTS = 16

ACTIVITY_TYPE = {
    "name": "Loan calculator usage",
    "code_name": "loan_calculator_usage",
    "description": "A visitor used the loan calculator.",
    "fields": [
        {"name": "amount", "type": "decimal", "primary": True},
        {"name": "term_months", "type": "integer"},
    ],
}


def activity(rng: random.Random) -> dict[str, object]:
    """One activity as a client would log it (the rows differ in value, fields and URL)."""
    term = rng.choice((12, 24, 36, 48, 60, 72))
    amount = f"{rng.randrange(1_000, 100_000)}.{rng.randrange(100):02d}"
    return {
        "type": ACTIVITY_TYPE["code_name"],
        "value": f"{term} months",
        "url": f"https://bank.example/loans/calculator?plan={rng.randrange(1000)}",
        "fields": {"amount": amount, "term_months": term},
    }


def pool(
    tracking_key: str, channel: str, contacts: list[str], per_request: int, seed: int
) -> RequestPool:
    """``POOL_SIZE`` request bodies of ``per_request`` activities, spread over ``contacts``."""
    rng = random.Random(seed)  # noqa: S311 - varied test data, not secrets
    bodies = [
        json.dumps(
            {
                "channel": channel,
                "contact": contacts[i % len(contacts)],
                "activities": [activity(rng) for _ in range(per_request)],
            },
            separators=(",", ":"),
        ).encode()
        for i in range(POOL_SIZE)
    ]
    return RequestPool(
        path=PATH,
        headers={"Authorization": f"Bearer {tracking_key}", "Content-Type": "application/json"},
        bodies=bodies,
        activities_per_request=per_request,
    )
