"""The way into storage for every activity: the catalog, prepare and the group-commit writer.
It knows no wire format (docs/architecture.md)."""
