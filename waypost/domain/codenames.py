"""Code names: derived from a display name (the Kentico "Identifiers" field), then fixed."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container

CODE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.]{0,99}$")
MAX_LENGTH = 100


def derive_code_name(name: str, taken: Container[str] = ()) -> str:
    """Lower case, accents dropped, runs of anything else turned into one underscore.

    ``"Loan calculator usage"`` gives ``loan_calculator_usage``; if that is taken, the first
    free of ``loan_calculator_usage_2``, ``_3``, ... is used.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:MAX_LENGTH] or "activity"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = base[: MAX_LENGTH - len(suffix)] + suffix
    return candidate


def is_valid_code_name(code_name: str) -> bool:
    return CODE_NAME.match(code_name) is not None
