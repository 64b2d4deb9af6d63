"""Per-contact rate-limit keys, and how they follow a merge of contacts.

A type's per-contact limit counts a contact's activities in a sliding window. When a contact is
merged into another (an identify with an identity hash, a Segment identify or alias), the
activities it logged in the window count for the surviving contact from then on: logging in
must not give a visitor a fresh window of every type's limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from waypost.pipeline.catalog import Snapshot
from waypost.ratelimit import RateLimiter


def contact_limit_key(type_id: uuid.UUID, contact: uuid.UUID) -> str:
    """The limiter key of one type's per-contact limit for one contact."""
    return f"{type_id}:c:{contact}"


def contact_limit_moves(
    snapshot: Snapshot, merges: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> list[tuple[str, str, float]]:
    """The limiter moves of ``(source, target)`` merges, for every type with such a limit."""
    windows = {
        kind.id: kind.per_contact.window_seconds
        for kind in snapshot.types.values()
        if kind.per_contact is not None
    }
    return [
        (contact_limit_key(type_id, source), contact_limit_key(type_id, target), window)
        for source, target in merges
        for type_id, window in windows.items()
    ]


async def follow_merges(
    limiter: RateLimiter, snapshot: Snapshot, merges: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """Add the merged contacts' per-contact counts to the contacts they were merged into."""
    moves = contact_limit_moves(snapshot, merges)
    if moves:
        await limiter.merge(moves)
