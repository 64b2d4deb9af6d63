"""The wire formats activities arrive in: the headless tracking API, the browser endpoints and
the Segment-compatible API, over one request frame and one route table. They know nothing of
storage (docs/architecture.md)."""
