"""Record-level functions on a connection, shared by the pipeline's writer and the services:
contacts, consent agreements (docs/architecture.md)."""
