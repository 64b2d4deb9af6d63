"""Activity titles, in Kentico's formats."""

from __future__ import annotations

BUILTIN_TITLES = {
    "pagevisit": "Page visit '{}'",
    "click": "Clicked '{}'",
    "datainput": "Data input '{}'",
}

MAX_TITLE = 600


def activity_title(
    code_name: str, type_name: str, value: str | None, url: str | None = None
) -> str:
    """``Page visit '<value>'``, ``Clicked '<value>'``, ``Data input '<value>'``; for a custom
    type its name, followed by `` '<value>'`` when a value is given.

    A page visit without a value is titled by its URL.
    """
    template = BUILTIN_TITLES.get(code_name)
    if template is not None:
        shown = value if value is not None else (url or "")
        title = template.format(shown)
    elif value is not None and value != "":
        title = f"{type_name} '{value}'"
    else:
        title = type_name
    return title[:MAX_TITLE]
