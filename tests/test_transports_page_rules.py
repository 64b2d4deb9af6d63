"""The rules of what pages may log: waypost/transports/page_rules.py."""

from __future__ import annotations

import asyncio
import uuid
from typing import cast

from waypost.hub import Hub
from waypost.pipeline.catalog import Snapshot
from waypost.pipeline.prepare import erased
from waypost.transports.page_rules import page_rules


def test_an_erased_persons_activity_stays_kept_nowhere() -> None:
    """An activity refused because it names an erased person is kept nowhere: a type that is
    not a page's turned it into a kept 404 with its payload (the erased person's data)."""
    item = erased(b'{"type": "server_only", "fields": {"str::email": "gone@example.com"}}', "x")
    snapshot = cast(Snapshot, type("S", (), {"types": {}})())
    hub = cast(Hub, None)  # not reached: the item is answered as it is
    out = asyncio.run(page_rules(hub, item, snapshot, uuid.uuid4(), "192.0.2.1"))
    assert out is item
    assert out.keep is False
    assert out.status == 403
