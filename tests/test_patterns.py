"""Every regular expression of the package runs in linear time on hostile input.

A pattern that can match one text in many ways backtracks quadratically (or worse) when the
match fails, and holds the GIL while it does: one request then stalls every other. The test
finds the patterns itself (every compiled pattern at module level, and no pattern anywhere
else), so a new one cannot escape it.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import time
from pathlib import Path

import pytest

import waypost

SIZE = 100_000
# How many times slower than a Python loop over the same input a pattern may be. A linear
# pattern is well under 1x; a quadratic one on 100 KB is thousands of times over.
MAX_RATIO = 50
PREFIXES = (
    "",
    "a@",
    "a@b",
    "a@b.",
    "/admin/",
    "str:cm:",
    " - at `$",
    "Object contains unknown field `",
    "en-",
    "a-1-",
    "\\",
    '"',
    "{",
)
FILLS = (
    *("a", "0", ".", "@", " ", "-", "_", ":", "\\", "`", ",", "\n", "/", '"'),
    *("a.", "\\u0000", '\\"'),
)
SUFFIXES = ("", "!", "@", "\n")
FUNCTIONS = ("compile", "match", "search", "fullmatch", "sub", "subn", "split", "findall")


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(waypost.__path__, "waypost.")
        if ".migrations" not in info.name
    ]


def package_patterns() -> dict[str, re.Pattern[str] | re.Pattern[bytes]]:
    """Every compiled pattern the package's modules hold, by the name that defines it."""
    found: dict[int, tuple[str, re.Pattern[str] | re.Pattern[bytes]]] = {}
    for name in _modules():
        for attr, value in vars(importlib.import_module(name)).items():
            if isinstance(value, re.Pattern):
                found.setdefault(id(value), (f"{name}.{attr}", value))
    return dict(found.values())


PATTERNS = package_patterns()


def _linear_scan(text: str | bytes) -> float:
    start = time.perf_counter()
    count = 0
    for _ in text:
        count += 1
    assert count == len(text)
    return time.perf_counter() - start


def _inputs(kind: type[str] | type[bytes], size: int) -> list[str | bytes]:
    texts: list[str | bytes] = []
    for prefix in PREFIXES:
        for fill in FILLS:
            for suffix in SUFFIXES:
                text = prefix + fill * ((size - len(prefix)) // len(fill)) + suffix
                texts.append(text.encode() if kind is bytes else text)
    return texts


def test_the_package_patterns_are_found() -> None:
    # The email pattern and the NUL scanner of the error module are among them; if none were
    # found, the test below would pass without testing anything.
    assert "waypost.domain.contact_fields.EMAIL" in PATTERNS
    assert "waypost.errors._AT" in PATTERNS
    assert len(PATTERNS) >= 15


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_no_pattern_ends_with_a_dollar(name: str) -> None:
    """``$`` also matches before a final newline, so ``CODE_NAME.match("loan\\n")`` passed
    (and stored a code name ending in a newline); ``\\Z`` is the end of the text."""
    source = PATTERNS[name].pattern
    ending = "$" if isinstance(source, str) else b"$"
    assert not source.endswith(ending), f"{name} ends with $; use \\Z"  # type: ignore[arg-type]


def test_no_pattern_is_compiled_outside_module_level() -> None:
    """A pattern written inline in a function (re.sub(r"...", ...)) would escape the registry
    above; only module-level ``NAME = re.compile(...)`` is allowed."""
    root = Path(waypost.__file__).parent
    offenders: list[str] = []
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {
            id(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.func.attr in FUNCTIONS
                and not (node.func.attr == "compile" and id(node) in top_level)
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


def _run(pattern: re.Pattern[str] | re.Pattern[bytes], text: str | bytes) -> float:
    start = time.perf_counter()
    pattern.search(text)  # type: ignore[arg-type]
    pattern.fullmatch(text)  # type: ignore[arg-type]
    return time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_is_linear_on_hostile_input(name: str) -> None:
    pattern = PATTERNS[name]
    kind = str if isinstance(pattern.pattern, str) else bytes
    # Small inputs first: a quadratic pattern fails there in milliseconds instead of taking
    # minutes on the full size.
    for size in (SIZE // 100, SIZE // 10, SIZE):
        texts = _inputs(kind, size)
        baseline = min(_linear_scan(texts[0]) for _ in range(5))
        for text in texts:
            elapsed = _run(pattern, text)
            if elapsed > MAX_RATIO * baseline:  # the machine may have been busy: measure again
                elapsed = min(elapsed, _run(pattern, text), _run(pattern, text))
            ratio = elapsed / baseline
            assert ratio < MAX_RATIO, f"{ratio:.0f}x a linear scan on {text[:40]!r}... ({size})"
