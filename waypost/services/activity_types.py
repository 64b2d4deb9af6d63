"""Activity types: definitions with typed fields, enabled and client-side switches, limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.domain.codenames import derive_code_name, is_valid_code_name
from waypost.domain.conditions import dependencies, parse_condition
from waypost.domain.fields import FieldRuleError, FieldSpec, check_field_change, check_fields
from waypost.error_words import quoted
from waypost.errors import ApiError, conflict, invalid, not_found
from waypost.ids import new_id, utcnow
from waypost.pagination import Page, cursor_id, page_by_id
from waypost.records.activity_type_numbers import issue_number
from waypost.services.activity_type_shapes import (
    MAX_RATE_LIMIT,
    MAX_RATE_WINDOW,
    ActivityType,
    ActivityTypeCreate,
    ActivityTypeQuery,
    ActivityTypeUpdate,
    FieldViolationCount,
    RateLimit,
    RateLimits,
)
from waypost.settings import Settings
from waypost.store import Store, announce
from waypost.store.schema import (
    activities,
    activity_type_fields,
    activity_types,
    contact_groups,
    field_violations,
)
from waypost.store.type_fields import load_type_fields


def _field_error(exc: FieldRuleError, status: int = 400) -> ApiError:
    return ApiError(status, "conflict" if status == 409 else "invalid_field", str(exc), exc.field)


class ActivityTypeService:
    """Activity types on the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.max_fields = settings.max_fields_per_type

    # -- reading -------------------------------------------------------------------------

    def list_page(self, query: ActivityTypeQuery) -> Page[ActivityType]:
        stmt = sa.select(activity_types).order_by(activity_types.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(activity_types.c.id > after)
        if query.enabled is not None:
            stmt = stmt.where(activity_types.c.enabled == query.enabled)
        if query.client_side is not None:
            stmt = stmt.where(activity_types.c.client_side == query.client_side)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
            types = self._hydrate(conn, rows)
        return page_by_id(types, query.limit, lambda t: t.id)

    def get(self, type_id: uuid.UUID) -> ActivityType:
        with self.store.read() as conn:
            return self.get_in(conn, type_id)

    def violations(self, type_id: uuid.UUID) -> list[FieldViolationCount]:
        with self.store.read() as conn:
            self.get_in(conn, type_id)
            rows = conn.execute(
                sa.select(field_violations)
                .where(field_violations.c.type_id == type_id)
                .order_by(field_violations.c.count.desc(), field_violations.c.field)
            ).all()
        return [FieldViolationCount(r.field, r.code, r[3], r.last_seen_at) for r in rows]

    def get_by_code(self, code_name: str) -> ActivityType:
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(activity_types).where(activity_types.c.code_name == code_name)
            ).first()
            if row is None:
                raise not_found("activity type", "activity_type_not_found")
            return self._hydrate(conn, [row])[0]

    def get_in(self, conn: Connection, type_id: uuid.UUID) -> ActivityType:
        row = conn.execute(sa.select(activity_types).where(activity_types.c.id == type_id)).first()
        if row is None:
            raise not_found("activity type", "activity_type_not_found")
        return self._hydrate(conn, [row])[0]

    def all(self) -> list[ActivityType]:
        with self.store.read() as conn:
            rows = conn.execute(sa.select(activity_types).order_by(activity_types.c.id)).all()
            return self._hydrate(conn, rows)

    def _hydrate(self, conn: Connection, rows: Sequence[sa.Row[Any]]) -> list[ActivityType]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        fields = load_type_fields(conn, ids)
        used = set(
            conn.execute(
                sa.select(activity_types.c.id).where(
                    activity_types.c.id.in_(ids),
                    sa.exists().where(activities.c.type_id == activity_types.c.id),
                )
            ).scalars()
        )
        result = []
        for row in rows:
            m = row._mapping
            limits = _stored_limits(m["rate_limits"])
            result.append(
                ActivityType(
                    id=m["id"],
                    code_name=m["code_name"],
                    name=m["name"],
                    description=m["description"],
                    enabled=m["enabled"],
                    client_side=m["client_side"],
                    builtin=m["builtin"],
                    fields=fields.get(m["id"], []),
                    aliases=list(m["aliases"]),
                    rate_limits=limits,
                    retention_days=m["retention_days"],
                    unknown_fields=m["unknown_fields"],
                    draft=m["draft"],
                    number=m["number"],
                    code_name_locked=m["id"] in used,
                    created_at=m["created_at"],
                    updated_at=m["updated_at"],
                )
            )
        return result

    # -- writing -------------------------------------------------------------------------

    def create(self, body: ActivityTypeCreate) -> ActivityType:
        self._check_fields(body.fields)
        with _unique_race(), self.store.write() as conn:
            taken = conn.execute(sa.select(activity_types.c.code_name, activity_types.c.aliases))
            code_names: set[str] = set()
            aliases: set[str] = set()
            for row in taken:
                code_names.add(row.code_name)
                aliases.update(row.aliases)
            if body.code_name is None:
                # An alias of another type names that type, so a derived code name avoids it.
                code_name = derive_code_name(body.name, code_names | aliases)
            else:
                code_name = self._valid_code_name(body.code_name)
                if code_name in code_names:
                    raise conflict(
                        f"An activity type with code name {quoted(code_name)} exists already.",
                        "code_name",
                    )
            self._guard_name(conn, body.name)
            self._guard_aliases(conn, body.aliases, None, code_name)
            type_id = new_id()
            now = utcnow()
            conn.execute(
                activity_types.insert().values(
                    id=type_id,
                    code_name=code_name,
                    name=body.name,
                    description=body.description,
                    enabled=body.enabled,
                    client_side=body.client_side,
                    builtin=False,
                    aliases=body.aliases,
                    rate_limits=_limits_json(body.rate_limits),
                    retention_days=body.retention_days,
                    unknown_fields=body.unknown_fields,
                    number=issue_number(conn, body.number),
                    created_at=now,
                    updated_at=now,
                )
            )
            self._write_fields(conn, type_id, body.fields)
            announce(conn, "activity_type", type_id)
            return self.get_in(conn, type_id)

    def update(self, type_id: uuid.UUID, body: ActivityTypeUpdate) -> ActivityType:
        with _unique_race(), self.store.write() as conn:
            current = self.get_in(conn, type_id)
            values: dict[str, object] = {}
            if body.code_name is not msgspec.UNSET and body.code_name != current.code_name:
                values["code_name"] = self._new_code_name(conn, current, body.code_name)
            if body.name is not msgspec.UNSET and body.name != current.name:
                self._guard_name(conn, body.name)
                values["name"] = body.name
            for name in (
                "description",
                "enabled",
                "client_side",
                "retention_days",
                "unknown_fields",
                "draft",
            ):
                value = getattr(body, name)
                if value is not msgspec.UNSET:
                    values[name] = value
            if body.rate_limits is not msgspec.UNSET:
                values["rate_limits"] = _limits_json(body.rate_limits)
            if body.aliases is not msgspec.UNSET or "code_name" in values:
                # A new code name may not be another type's alias, nor new aliases its names.
                aliases = current.aliases if body.aliases is msgspec.UNSET else body.aliases
                code = str(values.get("code_name", current.code_name))
                self._guard_aliases(conn, aliases, type_id, code)
                values["aliases"] = aliases
            if body.fields is not msgspec.UNSET:
                self._check_fields(body.fields)
                if current.code_name_locked:
                    try:
                        check_field_change(current.fields, body.fields)
                    except FieldRuleError as exc:
                        raise _field_error(exc, 409) from None
                self._write_fields(conn, type_id, body.fields)
            values["updated_at"] = utcnow()
            conn.execute(
                activity_types.update().where(activity_types.c.id == type_id).values(**values)
            )
            announce(conn, "activity_type", type_id)
            return self.get_in(conn, type_id)

    def set_enabled(self, type_id: uuid.UUID, enabled: bool) -> ActivityType:
        return self.update(type_id, ActivityTypeUpdate(enabled=enabled))

    def delete(self, type_id: uuid.UUID) -> None:
        with _in_use_race(), self.store.write() as conn:
            current = self.get_in(conn, type_id)
            if current.builtin:
                raise conflict(
                    f"{current.code_name!r} is built in and cannot be deleted; disable it instead."
                )
            if current.code_name_locked:
                raise conflict(
                    f"Activities of type {current.code_name!r} exist, so it cannot be deleted; "
                    "disable it instead."
                )
            _refuse_if_grouped(conn, current.code_name, "deleted")
            conn.execute(activity_types.delete().where(activity_types.c.id == type_id))
            announce(conn, "activity_type", type_id)

    # -- rules ---------------------------------------------------------------------------

    def _check_fields(self, fields: list[FieldSpec]) -> None:
        if len(fields) > self.max_fields:
            raise ApiError(
                413,
                "payload_too_large",
                f"An activity type has at most {self.max_fields} fields (got {len(fields)}).",
                "fields",
            )
        try:
            check_fields(fields)
        except FieldRuleError as exc:
            raise _field_error(exc) from None

    def _valid_code_name(self, code_name: str) -> str:
        if not is_valid_code_name(code_name):
            raise invalid(
                f"Code name {quoted(code_name)} may hold lower-case letters, digits, '_' and '.', "
                "starting with a letter or digit.",
                "code_name",
            )
        return code_name

    def _new_code_name(self, conn: Connection, current: ActivityType, code_name: str) -> str:
        if current.builtin:
            raise conflict(
                f"The code name of built-in type {current.code_name!r} is fixed.", "code_name"
            )
        if current.code_name_locked:
            raise conflict(
                f"The code name {current.code_name!r} is fixed: activities of this type exist.",
                "code_name",
            )
        code_name = self._valid_code_name(code_name)
        if code_name != current.code_name:
            _refuse_if_grouped(conn, current.code_name, "renamed")
        taken = conn.execute(
            sa.select(activity_types.c.id).where(activity_types.c.code_name == code_name)
        ).first()
        if taken is not None:
            raise conflict(
                f"An activity type with code name {quoted(code_name)} exists already.", "code_name"
            )
        return code_name

    def _guard_name(self, conn: Connection, name: str) -> None:
        taken = conn.execute(
            sa.select(activity_types.c.id).where(activity_types.c.name == name)
        ).first()
        if taken is not None:
            raise conflict(f"An activity type named {quoted(name)} exists already.", "name")

    def _guard_aliases(
        self, conn: Connection, aliases: list[str], type_id: uuid.UUID | None, code_name: str
    ) -> None:
        if len(set(aliases)) != len(aliases):
            raise invalid("An alias is listed twice.", "aliases")
        rows = conn.execute(
            sa.select(activity_types.c.id, activity_types.c.code_name, activity_types.c.aliases)
        ).all()
        for row in rows:
            if row.id == type_id:
                continue
            for alias in aliases:
                if alias == row.code_name or alias in row.aliases:
                    raise conflict(
                        f"Alias {quoted(alias)} already names activity type {row.code_name!r}.",
                        "aliases",
                    )
            if code_name in row.aliases:
                raise conflict(
                    f"Code name {quoted(code_name)} is an alias of activity type "
                    f"{row.code_name!r}.",
                    "code_name",
                )

    def _write_fields(self, conn: Connection, type_id: uuid.UUID, fields: list[FieldSpec]) -> None:
        conn.execute(activity_type_fields.delete().where(activity_type_fields.c.type_id == type_id))
        if fields:
            conn.execute(
                activity_type_fields.insert(),
                [
                    {
                        "id": new_id(),
                        "type_id": type_id,
                        "position": i,
                        "name": spec.name,
                        "data_type": spec.type,
                        "required": spec.required,
                        "is_primary": spec.primary,
                        "description": spec.description,
                        "max_length": spec.max_length,
                    }
                    for i, spec in enumerate(fields)
                ],
            )


@contextmanager
def _unique_race() -> Iterator[None]:
    # Another request may take a name or code name between our check and our write; the
    # unique index then refuses the row, and that is the same conflict.
    try:
        yield
    except IntegrityError as exc:
        field = "code_name" if "code_name" in str(exc.orig) else "name"
        raise conflict(f"An activity type with that {field} exists already.", field) from None


@contextmanager
def _in_use_race() -> Iterator[None]:
    # An activity stored between our check and the delete keeps the type (foreign key).
    try:
        yield
    except IntegrityError:
        raise conflict("Activities of this type exist, so it cannot be deleted.") from None


def _stored_limits(stored: object) -> RateLimits:
    """A type's rate limits as stored; a limit stored before the bounds held is read as the
    largest one allowed, so that the type can still be read and changed."""
    if stored is None:
        return RateLimits()
    if isinstance(stored, dict):
        stored = {
            key: {
                "limit": min(value["limit"], MAX_RATE_LIMIT),
                "window_seconds": min(value["window_seconds"], MAX_RATE_WINDOW),
            }
            if isinstance(value, dict) and {"limit", "window_seconds"} <= set(value)
            else value
            for key, value in stored.items()
        }
    return msgspec.convert(stored, RateLimits)


def _limits_json(limits: RateLimits | None) -> object:
    return None if limits is None else msgspec.to_builtins(limits)


def _refuse_if_grouped(conn: Connection, code_name: str, what: str) -> None:
    """Contact groups name types by code name: one they name may not vanish under them."""
    names = [
        row.name
        for row in conn.execute(sa.select(contact_groups.c.name, contact_groups.c.condition))
        if code_name in dependencies(parse_condition(row.condition)).types
    ]
    if names:
        raise conflict(
            f"The contact groups {', '.join(sorted(names))} use {quoted(code_name)}, so it "
            f"cannot be {what}; change their conditions first."
        )


# The shapes, for the modules that import them from here with the service.
__all__ = [
    "ActivityType",
    "ActivityTypeCreate",
    "ActivityTypeQuery",
    "ActivityTypeService",
    "ActivityTypeUpdate",
    "FieldViolationCount",
    "RateLimit",
    "RateLimits",
]
