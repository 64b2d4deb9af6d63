"""The import graph: layers point one way and no modules import each other (docs/architecture.md).

Every ``import`` in ``waypost/`` is read with ``ast``, wherever it stands (module level, inside a
function, under ``TYPE_CHECKING``): an import that only a function or a type checker runs is a
dependency all the same.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "waypost"

# Lowest first. A module may import from its own layer and from the layers below it, never from
# one above. Names are module prefixes; the longest prefix that matches a module decides.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "waypost.domain",
            "waypost.ids",
            "waypost.errors",
            "waypost.error_words",
            "waypost.settings",
            "waypost.clock",
            "waypost.clientip",
            "waypost.pagination",
            "waypost.logs",
            "waypost.metrics",
            "waypost.ratelimit",
            "waypost.openapi_types",
        ),
    ),
    ("store", ("waypost.store",)),
    ("records", ("waypost.records",)),
    ("pipeline", ("waypost.pipeline",)),
    ("services", ("waypost.services",)),
    ("hub", ("waypost.hub", "waypost.bootstrap")),
    ("access", ("waypost.access",)),
    ("transports", ("waypost.transports",)),
    ("api", ("waypost.api",)),
    ("admin", ("waypost.admin",)),
    ("demo", ("waypost.demo",)),
    ("servers", ("waypost.connections", "waypost.servers", "waypost.ops", "waypost.app")),
    (
        "cli",
        (
            "waypost.cli",
            "waypost.console",
            "waypost.setup_commands",
            "waypost.user_commands",
            "waypost.data_commands",
            "waypost.import_commands",
        ),
    ),
]
# The SDK is a client library: it stands apart and imports nothing of the server.
APART = ("waypost.sdk",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path) -> Iterator[str]:
    """Every waypost module ``name`` imports (``from a import b`` counts as ``a.b`` when that is
    a module, else ``a``)."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in known else base


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for target in imports_of(name, path):
            if target.startswith("waypost") and target != name:
                # A package import means its __init__; keep only modules of the tree.
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                if target in known and target != name:
                    targets.add(target)
        edges[name] = targets
    return edges


def back_up_imports(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for source, targets in sorted(edges.items()):
        if source.startswith(APART) or source == "waypost":
            continue
        low = layer_of(source)
        for target in sorted(targets):
            high = layer_of(target)
            if target.startswith(APART):
                continue
            if low is None or high is None:
                continue
            if high > low:
                found.append(
                    f"{source} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]}), "
                    "a layer above it"
                )
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [
        name
        for name in modules()
        if name != "waypost" and not name.startswith(APART) and layer_of(name) is None
    ]
    assert unplaced == [], "give these modules a layer in LAYERS (docs/architecture.md)"


def test_no_import_runs_back_up_a_layer() -> None:
    assert back_up_imports(graph()) == []


def test_no_two_modules_import_each_other() -> None:
    assert cycles(graph()) == []


def test_transports_know_nothing_of_storage() -> None:
    """The transports decode wire formats and hand items to the pipeline; SQL and the store are
    below the pipeline and the services."""
    edges = graph()
    leaks = [
        f"{source} imports {target}"
        for source, targets in edges.items()
        if source.startswith("waypost.transports")
        for target in targets
        if target.startswith(("waypost.store", "waypost.records"))
    ]
    assert leaks == []


def test_the_sdk_imports_nothing_of_the_server() -> None:
    edges = graph()
    leaks = [
        f"{source} imports {target}"
        for source, targets in edges.items()
        if source.startswith(APART)
        for target in targets
        if not target.startswith(APART)
    ]
    assert leaks == []


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("waypost.domain.titles", "waypost.store.schema", True),
        ("waypost.pipeline.writer", "waypost.transports.tracking", True),
        ("waypost.transports.tracking", "waypost.pipeline.writer", False),
        ("waypost.services.groups", "waypost.records.contacts", False),
    ],
)
def test_the_check_finds_an_import_that_runs_back_up(
    source: str, target: str, expected: bool
) -> None:
    assert bool(back_up_imports({source: {target}})) is expected


def test_the_check_finds_a_cycle() -> None:
    edges = {"waypost.a": {"waypost.b"}, "waypost.b": {"waypost.c"}, "waypost.c": {"waypost.a"}}
    assert cycles({**edges, "waypost.d": {"waypost.a"}}) == [
        ["waypost.a", "waypost.b", "waypost.c"]
    ]
