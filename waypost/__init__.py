"""Waypost: a self-hosted hub for custom activity tracking."""
