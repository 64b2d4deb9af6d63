"""Pure domain rules: no I/O, each with its own tests."""
