"""Who may do what: admin keys and UI sessions, roles and their areas, CSRF tokens and the login
throttle, shared by the admin API and the admin UI (docs/architecture.md)."""
