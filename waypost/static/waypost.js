/* The Waypost browser tracker: see docs/browser-tracking.md. */
