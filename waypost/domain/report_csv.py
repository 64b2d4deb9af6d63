"""A report's table as CSV: the header, then one line per row (RFC 4180 quoting, CRLF line
ends, UTF-8 with a byte order mark so that spreadsheets read accents right).

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and a
value a contact typed (a field's text, a page's title) can start with one. Such a text cell is
written with an apostrophe before it (``'=HYPERLINK(...)``), which spreadsheets show as text and
do not run; so are cells that start with a tab or a carriage return, which some read the same
way. Numbers are written as they are, a negative one too (``-12.50`` is a number, not a
formula). See docs/admin-ui.md#reports.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
_DIGITS = frozenset("0123456789")


def is_number(text: str) -> bool:
    """A plain decimal number: an optional minus, digits, optionally a point and digits."""
    body = text[1:] if text.startswith("-") else text
    whole, point, fraction = body.partition(".")
    if not whole or not set(whole) <= _DIGITS:
        return False
    return not point or (bool(fraction) and set(fraction) <= _DIGITS)


def safe_cell(value: str | int | float | None) -> str:
    """A cell's text, with an apostrophe before text a spreadsheet would run as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value.startswith(FORMULA_STARTS) and not is_number(value):
        return "'" + value
    return value


def report_csv(columns: Sequence[str], rows: Sequence[Sequence[str | int | float | None]]) -> str:
    """The table as CSV text: the header line, then the rows."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(c) for c in columns])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


def csv_filename(name: str) -> str:
    """A file name for a report's CSV: its name in lower case without accents, letters and
    digits joined by dashes (``Vklady za den`` -> ``vklady-za-den.csv``)."""
    words: list[str] = []
    current: list[str] = []
    for char in unicodedata.normalize("NFKD", name[:200].lower()):
        if char.isascii() and char.isalnum():
            current.append(char)
        elif unicodedata.combining(char):
            continue
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return ("-".join(words)[:80].strip("-") or "report") + ".csv"
