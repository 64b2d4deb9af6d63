"""The admin API under /api: operations, routing and the OpenAPI document."""
