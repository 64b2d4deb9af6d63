"""Statements compiled once per database and run many rows at a time through the driver.

SQLAlchemy's ``executemany`` converts every parameter of every row through its type, with
several layers of Python around each: on a statement a busy loop runs with hundreds of rows a
second (the webhook dispatcher's record of answers), that work costs more CPU than the
database spends on the rows. A :class:`Prepared` statement is compiled for each dialect once;
each run converts the parameters with the same bind processors SQLAlchemy would use and hands
the rows to the driver's ``executemany`` (``Connection.exec_driver_sql``), so what reaches the
database is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positional: bool
    # Each parameter's name, converter and value when a row does not give one.
    params: tuple[tuple[str, Processor, Any], ...]


class Prepared:
    """``statement`` (a Core insert, update or delete without RETURNING), ready to run.

    Each row gives every parameter the statement has, but for values fixed in it: an insert
    without ``values()`` writes every column of its table, and a column a row leaves out is
    written NULL, not given its default."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, conn: Connection) -> _Compiled:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        with self._lock:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            names = compiled.positiontup if compiled.positional else list(compiled.binds)
            defaults = compiled.params
            params = []
            for name in names or ():
                bind = compiled.binds[name]
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                params.append((name, process, defaults.get(name)))
            found = _Compiled(compiled.string, bool(compiled.positional), tuple(params))
            self._compiled[dialect.name] = found
        return found

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row of ``rows``, in ``conn``'s transaction."""
        if not rows:
            return
        compiled = self._for(conn)
        converted: list[Any] = []
        for row in rows:
            values = []
            for name, process, default in compiled.params:
                value = row.get(name, default)
                values.append(
                    process(value) if process is not None and value is not None else value
                )
            if compiled.positional:
                converted.append(tuple(values))
            else:
                converted.append(dict(zip((p[0] for p in compiled.params), values, strict=True)))
        conn.exec_driver_sql(compiled.sql, converted)


class Compiled:
    """A SELECT compiled once for a dialect, to run many times with a few parameters given
    each time (an export's keyset page): no SQLAlchemy compilation, nor conversion of the
    other parameters, per run. ``given`` parameters take the driver's own values (as the
    driver returned them), the others keep the statement's values, converted once."""

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, given: Sequence[str] = ()
    ) -> None:
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        self.names: list[str] = list(
            (compiled.positiontup or []) if compiled.positional else compiled.binds
        )
        self._fixed: dict[str, Any] = {}
        values = compiled.params
        for name in self.names:
            if name in given:
                continue
            value = values.get(name)
            # A list expanded for IN gives its items the list's name and _1, _2...
            bind = compiled.binds[name if name in compiled.binds else name.rsplit("_", 1)[0]]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._fixed[name] = (
                process(value) if process is not None and value is not None else value
            )

    def params(self, **given: Any) -> Any:
        """The driver's parameters: a tuple for a positional dialect, else a dict."""
        values = {**self._fixed, **given}
        if self.positional:
            return tuple(values[name] for name in self.names)
        return values

    def execute(self, conn: Connection, **given: Any) -> Any:
        """The driver's result of a run on ``conn`` (rows of the driver's own values)."""
        return conn.exec_driver_sql(self.sql, self.params(**given))
