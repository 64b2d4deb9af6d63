"""The ``waypost`` command, through click's runner, on a temporary SQLite file (and PostgreSQL)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from click.testing import CliRunner, Result

from waypost import servers
from waypost.cli import main
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.settings import load_settings
from waypost.store import migrate

if TYPE_CHECKING:
    from tests.server_support import ServedWaypost, free_port
else:
    from server_support import ServedWaypost, free_port

KEY = re.compile(r"\bwp[atp]_[A-Za-z0-9_-]{43}\b")
Invoke = Callable[..., Result]


def make_invoke(database_url: str) -> Invoke:
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": database_url})

    def invoke(*args: str, code: int = 0, **env: str) -> Result:
        result = runner.invoke(main, list(args), env=env or None, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    return invoke


@pytest.fixture
def new_db_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def db_url(new_db_url: str, sqlite_template: Path) -> str:
    """A migrated SQLite file without data (a copy: migrating from scratch takes a while)."""
    shutil.copy(sqlite_template, new_db_url.removeprefix("sqlite:///"))
    return new_db_url


@pytest.fixture
def invoke(db_url: str) -> Invoke:
    return make_invoke(db_url)


@pytest.fixture
def hub_of(new_db_url: str) -> Iterator[Callable[[], Hub]]:
    """The hub on the CLI's database, to check what the commands did."""
    hubs: list[Hub] = []

    def make() -> Hub:
        hubs.append(Hub(load_settings({"WAYPOST_DATABASE_URL": new_db_url})))
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.close()


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


ALL_COMMANDS = list(commands(main))


def test_the_command_tree_has_what_the_issue_asks() -> None:
    assert {
        ("serve",),
        ("migrate",),
        ("keys", "create"),
        ("keys", "list"),
        ("keys", "disable"),
        ("keys", "enable"),
        ("keys", "delete"),
        ("users", "set-password"),
        ("types", "create"),
        ("types", "list"),
        ("types", "enable"),
        ("types", "disable"),
        ("channels", "create"),
        ("channels", "list"),
    } <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "waypost")
def test_help_on_every_command(new_db_url: str, path: tuple[str, ...]) -> None:
    invoke = make_invoke(new_db_url)
    for flag in ("--help", "-h"):
        result = invoke(*path, flag)
        assert result.stdout.startswith("Usage:")
        assert len(result.stdout.splitlines()) > 3
    # Help needs no database.
    assert not Path(new_db_url.removeprefix("sqlite:///")).exists()


def test_version(invoke: Invoke) -> None:
    assert re.search(r"\d+\.\d+", invoke("--version").stdout)


def test_a_bad_setting_is_an_error_that_names_it(invoke: Invoke) -> None:
    result = invoke("keys", "list", code=1, WAYPOST_PORT="eighty")
    assert "Error: WAYPOST_PORT" in result.output
    # The command line was right: no usage text.
    assert "Usage:" not in result.output


def test_migrate(new_db_url: str) -> None:
    invoke, db_url = make_invoke(new_db_url), new_db_url
    head = migrate.head_revision()
    assert f"revision {head}" in invoke("migrate").stdout
    engine = sa.create_engine(db_url)
    try:
        assert "activity_types" in sa.inspect(engine).get_table_names()
        assert "revision base" in invoke("migrate", "--downgrade", "--revision", "base").stdout
        assert sa.inspect(engine).get_table_names() == ["alembic_version"]
        assert f"revision {head}" in invoke("migrate").stdout
        assert "activity_types" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


# -- keys -------------------------------------------------------------------------------------


def test_keys_create_admin_prints_only_the_key(invoke: Invoke, hub_of: Callable[[], Hub]) -> None:
    result = invoke("keys", "create", "--access", "admin")
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    assert key.startswith("wpa_")
    assert KEY.fullmatch(key)
    assert "not shown again" in result.stderr
    principal = hub_of().keys.authenticate_admin(f"Bearer {key}")
    assert principal.access == "admin"
    assert principal.channel_id is None


def test_keys_create_json(invoke: Invoke) -> None:
    created = json.loads(invoke("keys", "create", "--access", "admin", "--json").stdout)
    assert created["key"].startswith("wpa_")
    assert created["prefix"] == created["key"][:8]


def test_keys_for_channels(invoke: Invoke) -> None:
    web = json.loads(
        invoke("channels", "create", "--name", "Web", "--kind", "website", "--json").stdout
    )
    tracking = invoke("keys", "create", "--access", "tracking", "--channel", web["id"]).stdout
    assert tracking.startswith("wpt_")
    publishable = invoke("keys", "create", "--access", "publishable", "--channel", web["id"]).stdout
    assert publishable.startswith("wpp_")
    refused = invoke("keys", "create", "--access", "tracking", code=1)
    assert "channel" in refused.stderr
    assert "Traceback" not in refused.output
    assert invoke("keys", "create", "--access", "owner", code=2).stdout == ""


def test_keys_list_never_shows_a_key(invoke: Invoke) -> None:
    keys = [
        invoke("keys", "create", "--access", "admin", "--name", f"k{i}").stdout.strip()
        for i in range(2)
    ]
    listed = invoke("keys", "list").stdout
    for key in keys:
        assert key not in listed
        assert f"{key[:8]}…{key[-4:]}" in listed
    as_json = invoke("keys", "list", "--json").stdout
    items = json.loads(as_json)
    assert len(items) == 2
    assert all("key" not in item for item in items)
    assert all(key not in as_json for key in keys)


def test_keys_disable(invoke: Invoke, hub_of: Callable[[], Hub]) -> None:
    created = json.loads(invoke("keys", "create", "--access", "admin", "--json").stdout)
    result = invoke("keys", "disable", created["id"])
    assert "Disabled" in result.stdout
    assert created["key"] not in result.output
    with pytest.raises(ApiError) as caught:
        hub_of().keys.authenticate_admin(f"Bearer {created['key']}")
    assert caught.value.status == 403
    listed = json.loads(invoke("keys", "list", "--json").stdout)
    assert [k["enabled"] for k in listed] == [False]
    unknown = invoke("keys", "disable", "00000000-0000-0000-0000-000000000001", code=1)
    assert "Traceback" not in unknown.output
    invoke("keys", "disable", "not-a-uuid", code=2)


def test_keys_enable_and_delete(invoke: Invoke, hub_of: Callable[[], Hub]) -> None:
    created = json.loads(invoke("keys", "create", "--access", "admin", "--json").stdout)
    invoke("keys", "disable", created["id"])
    enabled = invoke("keys", "enable", created["id"])
    assert f"Enabled admin key {created['prefix']}…{created['last_four']}." in enabled.stdout
    assert hub_of().keys.authenticate_admin(f"Bearer {created['key']}").access == "admin"
    deleted = invoke("keys", "delete", created["id"])
    assert f"Deleted admin key {created['prefix']}…{created['last_four']}." in deleted.stdout
    assert created["key"] not in deleted.output
    assert json.loads(invoke("keys", "list", "--json").stdout) == []
    with pytest.raises(ApiError) as caught:
        hub_of().keys.authenticate_admin(f"Bearer {created['key']}")
    assert caught.value.status == 401
    for command in ("enable", "delete"):
        unknown = invoke("keys", command, created["id"], code=1)
        assert "No API key has that identifier" in unknown.output
        assert "Traceback" not in unknown.output


# -- activity types -----------------------------------------------------------------------------


def test_types_create_list_enable_disable(invoke: Invoke, hub_of: Callable[[], Hub]) -> None:
    result = invoke(
        "types",
        "create",
        "--name",
        "Loan calculator usage",
        "--description",
        "Used the loan calculator",
        "--field",
        "amount:decimal:primary",
        "--field",
        "term:integer:required",
        "--client-side",
    )
    assert "loan_calculator_usage" in result.stdout
    made = hub_of().types.get_by_code("loan_calculator_usage")
    assert [(f.name, f.type, f.required, f.primary) for f in made.fields] == [
        ("amount", "decimal", False, True),
        ("term", "integer", True, False),
    ]
    assert made.client_side is True
    assert made.description == "Used the loan calculator"

    listed = invoke("types", "list").stdout
    for code_name in ("pagevisit", "click", "datainput", "loan_calculator_usage"):
        assert code_name in listed
    # Fields as --field takes them, with their markers.
    assert "amount:decimal:primary, term:integer:required" in listed
    as_json = json.loads(invoke("types", "list", "--json").stdout)
    assert {t["code_name"] for t in as_json} == {
        "pagevisit",
        "click",
        "datainput",
        "loan_calculator_usage",
    }

    assert "Disabled" in invoke("types", "disable", "loan_calculator_usage").stdout
    assert hub_of().types.get(made.id).enabled is False
    assert "Enabled" in invoke("types", "enable", str(made.id)).stdout
    assert hub_of().types.get(made.id).enabled is True
    invoke("types", "disable", "click")
    assert hub_of().types.get_by_code("click").enabled is False


def test_types_create_options(invoke: Invoke, hub_of: Callable[[], Hub]) -> None:
    created = json.loads(
        invoke(
            "types", "create", "--name", "Signup", "--code-name", "sign.up", "--disabled", "--json"
        ).stdout
    )
    assert created["code_name"] == "sign.up"
    assert created["enabled"] is False
    assert hub_of().types.get_by_code("sign.up").enabled is False


@pytest.mark.parametrize(
    "args",
    [
        ("--name", "X", "--field", "amount"),
        ("--name", "X", "--field", "amount:money"),
        ("--name", "X", "--field", "amount:decimal:important"),
        ("--name", ""),
    ],
)
def test_types_create_refuses_bad_input(invoke: Invoke, args: tuple[str, ...]) -> None:
    result = invoke("types", "create", *args, code=2)
    assert "Traceback" not in result.output
    assert "Error" in result.output


def test_types_errors_are_clean(invoke: Invoke) -> None:
    invoke("types", "create", "--name", "Twice")
    again = invoke("types", "create", "--name", "Twice", code=1)
    assert "exists already" in again.stderr
    unknown = invoke("types", "enable", "no_such_type", code=1)
    assert "No activity type" in unknown.stderr
    two_primaries = invoke(
        "types",
        "create",
        "--name",
        "P",
        "--field",
        "a:text:primary",
        "--field",
        "b:text:primary",
        code=1,
    )
    assert "primary" in two_primaries.stderr


# -- channels -----------------------------------------------------------------------------------


def test_channels_create_and_list(invoke: Invoke, hub_of: Callable[[], Hub]) -> None:
    result = invoke(
        "channels",
        "create",
        "--name",
        "Bank site",
        "--kind",
        "website",
        "--origin",
        "https://Bank.example/",
        "--origin",
        "http://localhost:3000",
        "--language",
        "cs",
    )
    channel_id = result.stdout.strip().rsplit(" ", 1)[-1]
    invoke("channels", "create", "--name", "App", "--kind", "headless")
    stored = hub_of().channels.get(uuid.UUID(channel_id))
    assert stored.allowed_origins == ["https://bank.example", "http://localhost:3000"]
    assert stored.default_language == "cs"
    listed = invoke("channels", "list").stdout
    assert "Bank site" in listed
    assert "https://bank.example" in listed
    assert "App" in listed
    names = {c["name"] for c in json.loads(invoke("channels", "list", "--json").stdout)}
    assert names == {"Bank site", "App"}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--name", "W", "--kind", "website", "--origin", "not an origin"), 1),
        (("--name", "W", "--kind", "website", "--language", "english"), 1),
        (("--name", "W", "--kind", "app"), 2),
        (("--name", "", "--kind", "website"), 2),
    ],
)
def test_channels_create_refuses_bad_input(
    invoke: Invoke, args: tuple[str, ...], code: int
) -> None:
    result = invoke("channels", "create", *args, code=code)
    assert "Traceback" not in result.output
    assert "Error" in result.output


# -- serve ------------------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The servers `serve` would run, which do not start here: app, host and port of each."""
    calls: list[dict[str, Any]] = []

    def run(configs: list[uvicorn.Config], **kwargs: Any) -> None:
        for config in configs:
            calls.append({"app": config.app, "host": config.host, "port": config.port})

    monkeypatch.setattr(servers, "serve_together", run)
    return calls


def test_serve_bootstraps_an_empty_database_once(
    new_db_url: str, served: list[dict[str, Any]], hub_of: Callable[[], Hub]
) -> None:
    invoke = make_invoke(new_db_url)
    assert not Path(new_db_url.removeprefix("sqlite:///")).exists()
    first = invoke("serve", "--port", "8123")
    assert len(served) == 1
    assert served[0]["host"] == "127.0.0.1"
    assert served[0]["port"] == 8123
    out = first.stdout
    assert "http://127.0.0.1:8123" in out
    assert "http://127.0.0.1:8123/api/docs" in out
    keys = KEY.findall(out)
    assert sorted(k[:4] for k in keys) == ["wpa_", "wpp_", "wpt_"]
    hub = hub_of()
    [admin] = [k for k in keys if k.startswith("wpa_")]
    assert hub.keys.authenticate_admin(f"Bearer {admin}").access == "admin"
    [tracking] = [k for k in keys if k.startswith("wpt_")]
    principal = hub.keys.authenticate(f"Bearer {tracking}")
    assert principal.access == "tracking"
    assert principal.channel_id is not None
    assert hub.channels.get(principal.channel_id).kind == "headless"
    kinds = sorted(c.kind for c in hub.channels.list_page(ListQuery()).data)
    assert kinds == ["headless", "website"]

    second = invoke("serve", "--host", "0.0.0.0", "--port", "8124")  # noqa: S104
    assert len(served) == 2
    assert served[1]["host"] == "0.0.0.0"  # noqa: S104
    assert KEY.findall(second.output) == []
    assert "http://127.0.0.1:8124" in second.stdout
    # Where the keys went, and how to make one.
    assert "keys were shown on its first run only" in second.stdout
    assert "waypost keys create --access tracking --channel" in second.stdout
    assert "http://127.0.0.1:8124/admin/keys/new" in second.stdout
    assert "first run only" not in first.stdout
    assert len(hub.channels.list_page(ListQuery()).data) == 2


@pytest.mark.parametrize("demo", [False, True])
def test_a_port_in_use_stops_serve_before_anything_is_made(
    new_db_url: str, served: list[dict[str, Any]], demo: bool
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        invoke = make_invoke(new_db_url)
        args = ["serve", "--demo", "--demo-port", str(port)] if demo else ["serve"]
        result = invoke(*args, code=1, WAYPOST_PORT=str(free_port() if demo else port))
    assert served == []
    assert KEY.findall(result.output) == []
    assert f"Cannot listen on 127.0.0.1:{port}" in result.output
    how = "WAYPOST_DEMO_PORT or --demo-port" if demo else "WAYPOST_PORT or --port"
    assert how in result.output
    assert not Path(new_db_url.removeprefix("sqlite:///")).exists()


def test_serve_with_a_public_url_on_a_path(
    invoke: Invoke, served: list[dict[str, Any]], hub_of: Callable[[], Hub]
) -> None:
    # On a free port: the check that the port is free runs before the (stubbed) server.
    port = str(free_port())
    result = invoke("serve", WAYPOST_PUBLIC_URL="https://example.com/waypost/", WAYPOST_PORT=port)
    assert "https://example.com/waypost/api/docs" in result.stdout
    assert len(served) == 1
    channels = hub_of().channels.list_page(ListQuery()).data
    [website] = [c for c in channels if c.kind == "website"]
    assert website.allowed_origins == ["https://example.com"]


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_cli_on_both_databases(database_url: str, served: list[dict[str, Any]]) -> None:
    invoke = make_invoke(database_url)
    invoke("migrate")
    first = invoke("serve", WAYPOST_PORT=str(free_port()))
    assert len(KEY.findall(first.stdout)) == 3
    key = invoke("keys", "create", "--access", "admin").stdout.strip()
    assert key.startswith("wpa_")
    invoke("types", "create", "--name", "Order paid", "--field", "amount:decimal:primary")
    assert "order_paid" in invoke("types", "list").stdout
    listed = invoke("keys", "list").stdout
    assert key not in listed
    assert len(json.loads(invoke("keys", "list", "--json").stdout)) == 4


def test_serve_prints_the_database_without_its_password(
    database_url: str, served: list[dict[str, Any]]
) -> None:
    """The start-up lines go to the server's log: the database's password is not in them."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "postgresql":
        # The test server trusts local connections: any password gets in.
        url = url.set(username=url.username or "postgres", password="s3cret-Pw")
    invoke = make_invoke(url.render_as_string(hide_password=False))
    out = invoke("serve", WAYPOST_PORT=str(free_port())).stdout
    [line] = [line for line in out.splitlines() if "Database:" in line]
    assert "s3cret" not in out
    assert url.render_as_string(hide_password=True) in line


# -- a real server ------------------------------------------------------------------------------


def test_serve_in_a_real_process(tmp_path: Path) -> None:
    with ServedWaypost(tmp_path, f"sqlite:///{tmp_path / 'served.db'}") as server:
        server.start()
        base = server.url
        output = server.output()
        [admin] = [k for k in KEY.findall(output) if k.startswith("wpa_")]
        headers = {"Authorization": f"Bearer {admin}"}
        created = httpx.post(
            f"{base}/api/activity-types",
            json={
                "name": "Loan calculator usage",
                "fields": [{"name": "amount", "type": "decimal"}],
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        assert created.json()["code_name"] == "loan_calculator_usage"
        got = httpx.get(f"{base}/api/activity-types/{created.json()['id']}", headers=headers)
        assert got.json()["fields"][0]["type"] == "decimal"
        assert httpx.get(f"{base}/api/activity-types").status_code == 401
    output = server.output()
    # The key is printed once, at start, and never logged with a request.
    assert output.count(admin) == 1


# -- messages in words ----------------------------------------------------------------------

CLI_MESSAGES = [
    (
        ("keys", "create", "--access", "tracking"),
        1,
        "A tracking key belongs to a channel: give --channel with a channel's id "
        "(`waypost channels list` lists them).",
    ),
    (
        (
            "keys",
            "create",
            "--access",
            "admin",
            "--channel",
            "01a2076a-8c3e-7000-8000-000000000000",
        ),
        1,
        "An admin key has no channel: leave out --channel.",
    ),
    (
        (
            "keys",
            "create",
            "--access",
            "publishable",
            "--channel",
            "01a2076a-8c3e-7000-8000-000000000000",
        ),
        1,
        "No channel has that id; `waypost channels list` lists them.",
    ),
    (
        ("types", "create", "--name", "Quote", "--field", "amount:float"),
        2,
        "'amount:float': 'float' is not a field type; use one of text, integer, decimal, "
        "boolean, datetime, url, email, phone.",
    ),
    (
        ("channels", "create", "--name", "x" * 201, "--kind", "website"),
        2,
        "name holds at most 200 characters.",
    ),
    (
        ("users", "password", "--email", "nobody@example.com", "--password", "long enough one"),
        1,
        "No user has that email; check it against `waypost users list`.",
    ),
]


@pytest.mark.parametrize(("args", "code", "message"), CLI_MESSAGES)
def test_errors_say_what_to_do(
    invoke: Invoke, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke(*args, code=code)
    assert message in " ".join(result.stderr.split())
    assert "`$" not in result.stderr
    assert "Traceback" not in result.output
