"""The ingest route table: what it dispatches is what the OpenAPI document lists, aliases
included, and a route is one entry."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import cast

import pytest

from waypost.app import api_document
from waypost.hub import Hub
from waypost.transports.browser import BrowserApp
from waypost.transports.frame import Answer, IngestRequest
from waypost.transports.marketo import MarketoApp
from waypost.transports.posthog import PostHogApp
from waypost.transports.router import IngestRouter
from waypost.transports.routes import (
    BROWSER,
    INGEST_ROUTES,
    MARKETO,
    POSTHOG,
    SEGMENT,
    SNOWPLOW,
    TRACKING,
    IngestRoute,
)
from waypost.transports.segment import SegmentApp
from waypost.transports.snowplow import SnowplowApp
from waypost.transports.tracking import TrackingApp

INGEST_TAGS = {SEGMENT, TRACKING, BROWSER, POSTHOG, SNOWPLOW, MARKETO}
VALUE = re.compile(r"{[a-z_]+}")


def fake_hub() -> Hub:
    return cast(
        Hub,
        SimpleNamespace(settings=None, catalog=None, writer=None, rate_limiter=None),
    )


@pytest.fixture(scope="module")
def router() -> IngestRouter:
    return IngestRouter(fake_hub())


def documented_ingest_routes() -> set[tuple[str, str]]:
    """The operations of the served document under the ingest routes' tags."""
    return {
        (method.upper(), path)
        for path, item in api_document()["paths"].items()
        for method, operation in item.items()
        if set(operation["tags"]) & INGEST_TAGS
    }


def test_the_document_lists_exactly_the_routes_dispatched(router: IngestRouter) -> None:
    declared = {(route.method, route.path) for route in INGEST_ROUTES}
    aliases = {(route.method, alias) for route in INGEST_ROUTES for alias in route.aliases}
    assert documented_ingest_routes() == declared
    assert router.served == declared | aliases


def test_every_route_served_dispatches_to_its_endpoint(router: IngestRouter) -> None:
    for method, path in router.served:
        concrete = VALUE.sub("x", path)
        found = router.find(concrete)
        assert found is not None, path
        transport, methods = found
        if methods is None:
            methods, params = transport.paths.match(concrete, transport.unquote_paths)
            assert params == {name[1:-1]: "x" for name in VALUE.findall(path)}
        assert methods is not None, path
        assert method in methods, path


def test_literal_paths_are_one_lookup(router: IngestRouter) -> None:
    transport, methods = router.exact["/tracking/activities"]
    assert isinstance(transport, TrackingApp)
    assert set(methods) == {"POST"}
    assert router.find("/tracking/activities") is router.exact["/tracking/activities"]


def test_tracking_routes_answer_under_kentico_tracking_too(router: IngestRouter) -> None:
    for route in INGEST_ROUTES:
        if route.transport is TrackingApp:
            kentico = route.path.replace("/tracking/", "/Kentico.Tracking/", 1)
            assert (route.method, kentico) in router.served


def test_segment_short_forms(router: IngestRouter) -> None:
    for short, kind in [("b", "batch"), ("import", "batch"), ("t", "track"), ("a", "alias")]:
        found = router.find(f"/v1/{short}")
        assert found is not None
        transport, methods = found
        assert isinstance(transport, SegmentApp)
        assert methods == router.exact[f"/v1/{kind}"][1]


def test_paths_under_a_prefix_belong_to_its_transport(router: IngestRouter) -> None:
    for path, kind in [
        ("/tracking/nothing", TrackingApp),
        ("/Kentico.Tracking/activities/", TrackingApp),
        ("/browser/nothing", BrowserApp),
        ("/v1/nothing", SegmentApp),
        ("/i/v0/nothing", PostHogApp),
        ("/array/wpp_x/nothing", PostHogApp),
        ("/com.snowplowanalytics.snowplow/nothing", SnowplowApp),
    ]:
        found = router.find(path)
        assert found is not None
        assert isinstance(found[0], kind)
        assert found[1] is None
    for path in ["/tracking", "/trackingx/activities", "/api/channels", "/v2/batch", "/"]:
        assert router.find(path) is None
    # A path of one segment is matched exactly and claims nothing else.
    for path in ["/index.html", "/is", "/ex"]:
        assert router.find(path) is None
    for path, kind in [("/i", SnowplowApp), ("/e", PostHogApp), ("/batch", PostHogApp)]:
        found = router.find(path)
        assert found is not None
        assert isinstance(found[0], kind)
        assert found[1] is not None


def test_each_transport_is_built_once(router: IngestRouter) -> None:
    assert set(router.transports) == {
        TrackingApp,
        BrowserApp,
        SegmentApp,
        PostHogApp,
        SnowplowApp,
        MarketoApp,
    }
    assert router.transport(BrowserApp) is router.transports[BrowserApp]


async def ping(_: TrackingApp, __: IngestRequest) -> Answer:
    return 200, b"", []


def test_a_route_is_one_entry() -> None:
    extra = IngestRoute(
        "GET", "/tracking/ping", TrackingApp, ping, "tracking_ping", "Ping", "T", "tracking"
    )
    router = IngestRouter(fake_hub(), [*INGEST_ROUTES, extra])
    assert ("GET", "/tracking/ping") in router.served
    without = IngestRouter(fake_hub(), [r for r in INGEST_ROUTES if r.path != "/v1/batch"])
    # Gone with its aliases: a path under /v1/ that no route has.
    for path in ("/v1/batch", "/v1/b", "/v1/import"):
        assert without.find(path) == (without.transport(SegmentApp), None)
        assert ("POST", path) not in without.served


def test_a_route_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        IngestRouter(fake_hub(), [*INGEST_ROUTES, INGEST_ROUTES[0]])
    stray = IngestRoute("GET", "/v1/ping", TrackingApp, ping, "ping", "Ping", "T", "tracking")
    with pytest.raises(ValueError, match="two transports"):
        IngestRouter(fake_hub(), [*INGEST_ROUTES, stray])


def test_ingest_operation_ids_are_unique() -> None:
    ids = [route.operation_id for route in INGEST_ROUTES]
    assert len(ids) == len(set(ids))


def test_routes_have_what_the_document_needs() -> None:
    for route in INGEST_ROUTES:
        assert route.summary
        # Snowplow's collector answers an empty body, or an image; the others JSON or a script.
        assert (
            route.response is not None
            or route.transport is SnowplowApp
            or (route.media_type != "application/json")
        )
