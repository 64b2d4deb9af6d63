"""``make bench``: Waypost's ingest measured against a bare ASGI baseline and raw SQLite.

Run it with ``python -m bench`` from the repository root; docs/performance.md explains what it
measures and how to read the results.
"""
