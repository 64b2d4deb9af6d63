"""The Python SDK as its own distribution (docs/python-sdk.md): its wheel, installed alone into
a virtual environment of its own (``make sdk`` makes ``.venv-sdk``), holds the SDK and httpx
and nothing of the server, imports no module of the server, and logs to a running Waypost.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.sdk_support import WaypostServer, running_server
else:
    from sdk_support import WaypostServer, running_server

ROOT = Path(__file__).resolve().parent.parent
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
# The server's own dependencies (pyproject.toml): none may come with the SDK.
SERVER_ONLY = {
    "waypost",
    "starlette",
    "msgspec",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg-binary",
    "uvicorn",
    "click",
    "uuid-utils",
    "pycountry",
    "phonenumbers",
    "redis",
    "jinja2",
    "argon2-cffi",
}
# httpx and what it brings; pip and setuptools come with any virtual environment.
ALLOWED = {
    "waypost-sdk",
    "httpx",
    "httpcore",
    "h11",
    "idna",
    "certifi",
    "anyio",
    "sniffio",
    "typing-extensions",
    "exceptiongroup",
    "pip",
    "setuptools",
}


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    if not SDK_PYTHON.exists():
        message = f"missing {SDK_PYTHON} (make sdk builds the SDK's wheel and installs it there)"
        if os.environ.get("WAYPOST_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return SDK_PYTHON


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    with running_server(tmp_path_factory.mktemp("waypost")) as running:
        yield running


def run(python: Path, source: str) -> str:
    done = subprocess.run(
        [str(python), "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",  # not the checkout: the installed wheel, not the source tree
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_brings_httpx_and_nothing_of_the_server(sdk_python: Path) -> None:
    listed = run(
        sdk_python,
        """
        import importlib.metadata, json
        names = (d.metadata["Name"] for d in importlib.metadata.distributions())
        print(json.dumps(sorted(n.lower().replace("_", "-") for n in names)))
        """,
    )
    installed = set(json.loads(listed))
    assert "waypost-sdk" in installed
    assert installed & SERVER_ONLY == set()
    assert installed <= ALLOWED, installed - ALLOWED


def test_importing_it_loads_no_module_of_the_server(sdk_python: Path) -> None:
    loaded = run(
        sdk_python,
        """
        import json, sys
        import waypost_sdk
        from waypost_sdk import ActivityLogger, Client, WaypostASGIMiddleware
        print(json.dumps([waypost_sdk.__file__, sorted(m.partition(".")[0] for m in sys.modules)]))
        """,
    )
    where, modules = json.loads(loaded)
    assert ".venv-sdk" in where
    assert "/sdk/src/" not in where
    server = {name.replace("-", "_") for name in SERVER_ONLY}
    assert server & set(modules) == set()


def test_it_logs_to_a_running_waypost(sdk_python: Path, server: WaypostServer) -> None:
    value = f"from-the-wheel-{uuid.uuid4().hex[:8]}"
    contact = run(
        sdk_python,
        f"""
        from waypost_sdk import Client

        with Client({server.url!r}, {server.tracking_key!r}, {server.channel!r}) as client:
            contact = client.create_contact()
            client.log(contact, "click", value={value!r})
            assert client.flush(20)
        print(contact)
        """,
    ).strip()
    assert [a["value"] for a in server.activities(contact)] == [value]
