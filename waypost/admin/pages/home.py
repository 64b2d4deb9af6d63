"""``/admin``: the first page the user's role may open, until a dashboard takes this path.

Listed last in ``MODULES``, so a module registered before it that serves ``/admin`` (the
dashboard) answers instead.
"""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from waypost.admin.views import Page, View

NAV = None


def home(page: Page) -> Response:
    for item in page.ui.nav:
        if page.can(item.area) and item.path != "/admin":
            return RedirectResponse(item.path, status_code=303)
    return page.render("error.html", 403, title="Nothing to show", message="", code=403)


VIEWS = [View("/admin", home, "dashboard"), View("/admin/", home, "dashboard")]
