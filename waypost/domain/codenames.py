"""Code names: derived from a display name (the Kentico "Identifiers" field), then fixed."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container

CODE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.]{0,99}\Z")
MAX_LENGTH = 100
_NOT_CODE = re.compile(r"[^a-z0-9]+")

# Letters that Unicode does not decompose into a base letter and an accent.
_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "ø": "o",
        "œ": "oe",
        "đ": "d",
        "ł": "l",
        "þ": "th",
        "ð": "d",
        "\u0131": "i",
    }
)


def derive_code_name(name: str, taken: Container[str] = ()) -> str:
    """Lower case, accents dropped, runs of anything else turned into one underscore.

    ``"Loan calculator usage"`` gives ``loan_calculator_usage``; if that is taken, the first
    free of ``loan_calculator_usage_2``, ``_3``, ... is used.
    """
    letters = unicodedata.normalize("NFKD", name.lower().translate(_LETTERS))
    ascii_name = letters.encode("ascii", "ignore").decode()
    base = _NOT_CODE.sub("_", ascii_name).strip("_")[:MAX_LENGTH].rstrip("_") or "activity"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = base[: MAX_LENGTH - len(suffix)].rstrip("_") + suffix
    return candidate


def is_valid_code_name(code_name: str) -> bool:
    return CODE_NAME.match(code_name) is not None
