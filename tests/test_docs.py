"""The docs keep up with the code: every setting and every error code is documented, and the
Python SDK's examples run as written."""

from __future__ import annotations

import ast
import builtins
import importlib.util
import re
import shlex
import symtable
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest

from waypost.settings import PREFIX, Settings
from waypost_sdk import Client

if TYPE_CHECKING:
    from tests.sdk_support import WaypostServer, running_server
else:
    from sdk_support import WaypostServer, running_server

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The codes docs/errors.md names as stable, whether or not a route produces them yet.
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


# -- the Python SDK's examples ----------------------------------------------------------------


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(), flags=re.MULTILINE | re.DOTALL)


SDK_EXAMPLES = python_blocks(DOCS / "python-sdk.md")


def undefined_names(source: str) -> set[str]:
    """Names the code reads that it neither defines nor imports, and that are not built in."""
    module = symtable.symtable(source, "<example>", "exec")
    defined = {s.get_name() for s in module.get_symbols() if s.is_assigned() or s.is_imported()}
    read: set[str] = set()
    tables = [module]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        for symbol in table.get_symbols():
            is_module = table is module
            if symbol.is_referenced() and (is_module or symbol.is_global()):
                read.add(symbol.get_name())
    return read - defined - set(dir(builtins))


def test_undefined_names_are_found() -> None:
    assert undefined_names("x = Decimal('1')\ndef f(a: Dropped) -> None:\n    spool.append(a)") == {
        "Decimal",
        "Dropped",
        "spool",
    }
    assert (
        undefined_names("from decimal import Decimal\nx = [Decimal(i) for i in range(2)]") == set()
    )


def test_the_python_sdk_page_has_examples() -> None:
    assert len(SDK_EXAMPLES) >= 8


@pytest.mark.parametrize("number", range(len(SDK_EXAMPLES)))
def test_each_python_sdk_example_compiles_and_defines_what_it_uses(number: int) -> None:
    source = SDK_EXAMPLES[number]
    compile(source, f"docs/python-sdk.md example {number + 1}", "exec")
    assert undefined_names(source) == set(), source


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    return modules


# The examples that need no web framework (nor the reader's own modules, such as "bank") run
# for real.
RUNNABLE = [
    source
    for source in SDK_EXAMPLES
    if all(importlib.util.find_spec(module) for module in imported_modules(source))
]


@pytest.fixture(scope="module")
def demo_waypost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    """A Waypost with what the demo site creates and the examples use."""
    with running_server(tmp_path_factory.mktemp("docs")) as server, server.admin() as admin:
        answer = admin.post(
            "/api/consents", json={"code_name": "TrackingConsent", "display_name": "Tracking"}
        )
        assert answer.status_code == 201, answer.text
        server.create_type(
            "Loan calculator usage",
            [{"name": "amount", "type": "decimal", "primary": True}],
            code_name="custom_loan_calculator",
        )
        yield server


def run_example(source: str, server: WaypostServer, **placeholders: str) -> dict[str, Any]:
    """Run an example with the server's address, tracking key and channel in place of the
    page's; its clients are closed (so that what they queued is sent) before it returns."""
    for placeholder, value in {
        "https://waypost.example.com": server.url,
        "wpt_...": server.tracking_key,
        "a3f4bc8b-6d84-454f-8215-cbec70bfaadd": server.channel,
        **placeholders,
    }.items():
        source = source.replace(placeholder, value)
    names: dict[str, Any] = {"__name__": "example"}
    try:
        exec(compile(source, "example", "exec"), names)  # noqa: S102
    finally:
        for value in names.values():
            if isinstance(value, Client):
                value.close(timeout=10)
    return names


@pytest.mark.slow
def test_the_python_sdk_examples_that_need_no_framework_run(demo_waypost: WaypostServer) -> None:
    assert len(RUNNABLE) >= 4
    first = run_example(RUNNABLE[0], demo_waypost)
    contact = first["contact"]
    client = first["client"]
    assert client.stats.delivered == 3, client.stats
    logged = demo_waypost.activities(contact)
    assert [a["type"] for a in logged] == ["custom_loan_calculator"] * 2 + ["pagevisit"]
    assert logged[0]["fields"] == {"amount": "129000.90"}
    assert logged[0]["title"] == "Loan calculator usage (20 years)"
    with httpx.Client(base_url=demo_waypost.url) as http:
        agreed = http.get(
            f"/tracking/contacts/{contact}/consents/TrackingConsent",
            headers={"Authorization": f"Bearer {demo_waypost.tracking_key}"},
        )
    assert agreed.json()["isAgreed"] is True, agreed.text
    for source in RUNNABLE[1:]:
        names = run_example(
            source, demo_waypost, **{"01a2083e-2812-737d-beae-7a028f831437": contact}
        )
        for value in names.values():
            if isinstance(value, Client):
                assert sum(value.stats.dropped.values()) == 0, (source, value.stats)
    # The background job's activity, logged for the contact it named.
    assert len(demo_waypost.activities(contact)) == 4


# -- curl examples ---------------------------------------------------------------------------

SHELL_BLOCK = re.compile(r"```(?:sh|bash)\n(.*?)```", re.S)
HOSTS = ("http://127.0.0.1:8000", "https://track.example.com", "$BASE")


def curl_commands(path: Path) -> list[str]:
    """The curl commands of a page's shell blocks, continuation lines joined, in order."""
    found: list[str] = []
    for block in SHELL_BLOCK.findall(path.read_text()):
        command = ""
        for line in block.replace("\\\n", " ").splitlines():
            command = f"{command}\n{line}" if command else line.strip()
            try:
                shlex.split(command)
            except ValueError:  # a quote still open: the command goes on
                continue
            if command.startswith("curl ") and "$NEXT" not in command:
                found.append(command)
            command = ""
    return found


def test_curl_examples_are_found() -> None:
    assert len(curl_commands(DOCS / "admin-api.md")) >= 5
    assert curl_commands(DOCS / "activity-fields.md")


def run_curl(client: Any, command: str, values: dict[str, str]) -> Any:
    for name, value in values.items():
        command = command.replace(f"${name}", value)
    words = shlex.split(command)[1:]
    method, url, headers, data = "GET", "", {}, None
    while words:
        word = words.pop(0)
        if word == "-X":
            method = words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data = words.pop(0)
            method = "POST" if method == "GET" else method
        elif not word.startswith("-"):
            url = word
    for host in HOSTS:
        url = url.removeprefix(host)
    return client.request(method, url, headers=headers, content=data)


@pytest.mark.parametrize(
    "page", ["README.md", "docs/admin-api.md", "docs/activity-fields.md", "docs/reports.md"]
)
def test_curl_examples_run_against_a_server_with_the_demo(hub: Any, client: Any, page: str) -> None:
    """Each page's curl examples, in order, on a first run's database with the demo's data,
    as after `make run`: none conflicts with what is already there."""
    from waypost.bootstrap import bootstrap
    from waypost.demo.data import prepare_demo

    first = bootstrap(hub)
    assert first is not None
    prepare_demo(hub, ["http://127.0.0.1:8001"])
    values = {
        "ADMIN": first.admin_key.key,
        "TRACKING": first.tracking_key.key,
        "CHANNEL": str(first.headless.id),
    }
    for command in curl_commands(ROOT / page):
        if "$CONTACT" in command and "CONTACT" not in values:
            made = client.post(
                "/tracking/contacts", headers={"Authorization": f"Bearer {values['TRACKING']}"}
            )
            values["CONTACT"] = made.json()["contact"]
        answer = run_curl(client, command, values)
        assert answer.status_code < 400, f"{command}\n{answer.status_code} {answer.text}"


def test_the_license_is_the_apache_license_the_package_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()


def section(path: Path, title: str) -> str:
    text = path.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize(
    ("title", "struct"),
    [
        ("Channels", "waypost.services.channels:ChannelCreate"),
        ("Activity types", "waypost.services.activity_types:ActivityTypeCreate"),
    ],
)
def test_every_property_is_in_its_resource_table(title: str, struct: str) -> None:
    module, _, name = struct.partition(":")
    info = msgspec.inspect.type_info(getattr(importlib.import_module(module), name))
    assert isinstance(info, msgspec.inspect.StructType)
    table = section(DOCS / "admin-api.md", title)
    missing = [f.encode_name for f in info.fields if f"| `{f.encode_name}` |" not in table]
    assert missing == []


HUB_CALL = re.compile(r"\bhub\.([a-z_]+)\.([a-z_]+)\(")


def test_the_docs_call_only_services_that_exist(hub: Any) -> None:
    calls = {
        (service, method)
        for path in [*DOCS.glob("*.md"), ROOT / "README.md"]
        for block in re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)
        for service, method in HUB_CALL.findall(block)
    }
    assert calls
    missing = sorted(
        f"hub.{service}.{method}"
        for service, method in calls
        if not callable(getattr(getattr(hub, service, None), method, None))
    )
    assert missing == []
