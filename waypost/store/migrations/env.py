"""Alembic environment: migrations run on the engine handed over by waypost.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from waypost.store.schema import metadata

engine = context.config.attributes["engine"]
assert isinstance(engine, Engine)

with engine.connect() as connection:
    # SQLite cannot alter most things in place; batch mode copies the table instead.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
