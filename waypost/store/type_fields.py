"""The fields of activity types as stored: the one mapping from their rows to FieldSpec, for
every reader (the ingest catalog, the type service, field filters and group conditions)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.fields import FieldSpec
from waypost.store.schema import activity_type_fields


def field_spec(row: sa.Row[Any]) -> FieldSpec:
    """One row of ``activity_type_fields`` as the field it declares."""
    return FieldSpec(
        name=row.name,
        type=row.data_type,
        required=row.required,
        primary=row.is_primary,
        description=row.description,
        max_length=row.max_length,
    )


def load_type_fields(
    conn: Connection, type_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[FieldSpec]]:
    """The fields of the types ``type_ids`` (of every type when None), each type's in their
    declared order; a type without fields has no entry."""
    stmt = sa.select(activity_type_fields).order_by(
        activity_type_fields.c.type_id, activity_type_fields.c.position
    )
    if type_ids is not None:
        stmt = stmt.where(activity_type_fields.c.type_id.in_(type_ids))
    fields: dict[uuid.UUID, list[FieldSpec]] = {}
    for row in conn.execute(stmt):
        fields.setdefault(row.type_id, []).append(field_spec(row))
    return fields
