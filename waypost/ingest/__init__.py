"""The ingest path: decode, authenticate, validate, limit, consent, then the group-commit writer.

It runs as bare ASGI, beside the admin API's framework, so that the per-request cost stays low.
"""
