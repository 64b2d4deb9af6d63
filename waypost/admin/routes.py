"""The admin UI's routes: the login pages, every registered page, and its static files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from waypost.admin.pages import nav_items, views
from waypost.admin.pages.login import login_routes
from waypost.admin.rendering import STATIC, STATIC_PATH, shared_renderer
from waypost.admin.views import AdminUI, Page, View, build_view
from waypost.errors import ApiError

if TYPE_CHECKING:
    from waypost.hub import Hub


def admin_routes(hub: Hub) -> list[BaseRoute]:
    """Everything under ``/admin``, for the application's route list."""
    ui = AdminUI(hub, shared_renderer(), nav_items())
    routes: list[BaseRoute] = [*login_routes(ui)]
    routes += [build_view(ui, view) for view in views()]
    routes.append(Mount(STATIC_PATH, StaticFiles(directory=STATIC), name="admin-static"))
    # Last: any other address under /admin is a page that does not exist.
    routes.append(build_view(ui, View("/admin/{rest:path}", not_found, "dashboard")))
    return routes


def not_found(page: Page) -> Response:
    raise ApiError(404, "not_found", "There is no page at this address.")
