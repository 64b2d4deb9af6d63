"""The docs keep up with the code: every setting and every error code is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from waypost.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The codes DESIGN 2 names as stable, whether or not a route produces them yet.
STABLE_CODES = {
    "invalid_json",
    "invalid_field",
    "unknown_field",
    "field_type_mismatch",
    "missing_field",
    "activity_type_not_found",
    "activity_type_disabled",
    "contact_not_found",
    "consent_required",
    "rate_limited",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "unsupported_media_type",
    "conflict",
    "storage_unavailable",
    "internal_error",
}

# Calls that carry an error code, and the position of the code among their arguments.
CODE_ARGUMENT = {"ApiError": 1, "not_found": 1, "invalid": 2, "FieldValueError": 2}


def _documented_codes() -> set[str]:
    text = (DOCS / "errors.md").read_text()
    return set(re.findall(r"^\| `([a-z_]+)` \| \d{3} \|", text, flags=re.MULTILINE))


def _codes_in_source() -> dict[str, str]:
    """Every error code given as a literal to the calls above, with where it is."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "waypost").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            candidates: list[ast.expr] = [kw.value for kw in node.keywords if kw.arg == "code"]
            position = CODE_ARGUMENT.get(name or "")
            if position is not None and len(node.args) > position:
                candidates.append(node.args[position])
            for value in candidates:
                if (
                    isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and re.fullmatch(r"[a-z]+(_[a-z]+)*", value.value)
                ):
                    found.setdefault(value.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("name", sorted(Settings.__struct_fields__))
def test_every_setting_is_documented(name: str) -> None:
    variable = f"{PREFIX}{name.upper()}"
    text = (DOCS / "configuration.md").read_text()
    assert f"| `{variable}` |" in text, f"{variable} has no row in docs/configuration.md"


def test_configuration_documents_no_setting_that_does_not_exist() -> None:
    text = (DOCS / "configuration.md").read_text()
    table = text.split("## Variables of the commands")[0]
    rows = set(re.findall(r"^\| `WAYPOST_([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert {row.lower() for row in rows} <= set(Settings.__struct_fields__)


def test_every_stable_code_is_documented() -> None:
    assert STABLE_CODES - _documented_codes() == set()


def test_every_code_the_code_uses_is_documented() -> None:
    documented = _documented_codes()
    used = _codes_in_source()
    assert used, "no error codes found; the scan is broken"
    missing = {code: where for code, where in used.items() if code not in documented}
    assert missing == {}, f"error codes missing from docs/errors.md: {missing}"
