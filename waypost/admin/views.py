"""The page pattern of the admin UI: a :class:`View` per route, a :class:`Page` handler gets.

A view declares its path, its area (see :mod:`waypost.access.roles`) and its handler. The
wrapper around every handler does what all pages need, in this order: find the session (else
redirect to the login page), check the role (403), read the form and check its CSRF token on a
POST (403), run the handler in a worker thread (services talk to the database synchronously),
and turn a service's error into an error page. Handlers stay thin: read the form, call a
service, render or redirect.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from waypost.access import csrf
from waypost.access.auth import SESSION_COOKIE, current_session
from waypost.access.roles import Area, can
from waypost.admin.forms import Form, parse_form
from waypost.admin.rendering import SECURITY_HEADERS, Renderer
from waypost.errors import ApiError
from waypost.pagination import every as every
from waypost.services.sessions import Session
from waypost.services.users import Role
from waypost.store import StorageUnavailable

if TYPE_CHECKING:
    from waypost.hub import Hub

FLASH_COOKIE = "waypost_flash"
LOGIN_PATH = "/admin/login"


@dataclass(frozen=True)
class NavItem:
    """An entry of the navigation; shown to the users whose role may read ``area``. Entries of
    the ``settings`` section (the set-up pages: channels, keys, consents, users) are one
    *Settings* entry in the main navigation, and a row of their own on their pages."""

    label: str
    path: str
    area: Area
    order: int
    section: Literal["main", "settings"] = "main"


@dataclass(frozen=True)
class NavLink:
    """A link of the navigation as shown; ``current`` is its aria-current value, or ""."""

    label: str
    path: str
    current: str = ""


@dataclass(frozen=True)
class Navigation:
    """What the layout shows: the main links, and on a settings page the settings' own row."""

    main: list[NavLink]
    settings: list[NavLink]


def is_current(item_path: str, path: str) -> bool:
    return path == item_path or (item_path != "/admin" and path.startswith(item_path + "/"))


def navigation(items: Sequence[NavItem], role: Role | None, path: str) -> Navigation:
    """The navigation ``role`` sees at ``path``. Ten entries do not fit on one line, so the
    settings pages, visited seldom, share one: *Settings*, which leads to the first of them.
    A role that sees one settings page only (a marketer's consents) sees it by its name."""
    seen = [item for item in items if role is not None and can(role, item.area)]

    def link(item: NavItem) -> NavLink:
        return NavLink(item.label, item.path, "page" if is_current(item.path, path) else "")

    main = [link(item) for item in seen if item.section == "main"]
    settings = [link(item) for item in seen if item.section == "settings"]
    if len(settings) <= 1:
        return Navigation(main + settings, [])
    here = any(item.current for item in settings)
    main.append(NavLink("Settings", settings[0].path, "true" if here else ""))
    return Navigation(main, settings if here else [])


@dataclass(frozen=True)
class View:
    """One route of the UI. POSTs need write access to ``area``; GETs need ``write`` only when
    set (a form that only makes sense to someone who may submit it)."""

    path: str
    handler: Callable[[Page], Response]
    area: Area
    methods: Sequence[str] = ("GET",)
    write: bool = False


@dataclass
class AdminUI:
    """What every page shares: the hub, the templates and the navigation."""

    hub: Hub
    renderer: Renderer
    nav: list[NavItem] = field(default_factory=list)

    def page_context(self, request: Request, session: Session | None) -> dict[str, Any]:
        """The names the base layout uses."""
        user = session.user if session else None
        return {
            "user": user,
            "csrf_token": session.csrf_token if session else "",
            "nav": navigation(self.nav, user.role if user else None, request.url.path),
            "flash": unquote(request.cookies.get(FLASH_COOKIE, ""))[:500],
            "can": (lambda area, write=False: bool(user and can(user.role, area, write))),
        }

    def render(
        self,
        request: Request,
        session: Session | None,
        template: str,
        status: int = 200,
        **context: Any,
    ) -> Response:
        values = self.page_context(request, session)
        values.update(context)
        response = self.renderer.response(template, values, status)
        if values["flash"]:
            response.delete_cookie(FLASH_COOKIE, path="/admin")
        return response

    def error_page(
        self, request: Request, session: Session | None, status: int, title: str, message: str
    ) -> Response:
        return self.render(
            request, session, "error.html", status, title=title, message=message, code=status
        )


@dataclass
class Page:
    """What a handler gets: the request, the hub, the logged-in session and the form sent."""

    ui: AdminUI
    request: Request
    session: Session
    form: Form

    @property
    def hub(self) -> Hub:
        return self.ui.hub

    @property
    def user_role(self) -> str:
        return self.session.user.role

    def can(self, area: Area, write: bool = False) -> bool:
        return can(self.session.user.role, area, write)

    @property
    def session_token(self) -> str:
        """The session cookie's token (what :meth:`SessionService.keep_secret` seals with)."""
        return self.request.cookies.get(SESSION_COOKIE, "")

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        return self.ui.render(self.request, self.session, template, status, **context)

    def redirect(self, path: str, flash: str = "") -> Response:
        """303 to ``path`` (after a POST), with a message for the next page to show."""
        response = RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)
        if flash:
            response.set_cookie(
                FLASH_COOKIE,
                quote(flash),
                max_age=60,
                path="/admin",
                httponly=True,
                samesite="lax",
            )
        return response

    def uuid_param(self, name: str, what: str) -> uuid.UUID:
        """A path identifier; anything not a UUID names nothing (404)."""
        try:
            return uuid.UUID(self.request.path_params[name])
        except ValueError:
            raise ApiError(404, "not_found", f"No {what} has that identifier.") from None


def login_redirect(request: Request) -> Response:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(
        f"{LOGIN_PATH}?{urlencode({'next': target})}", status_code=303, headers=SECURITY_HEADERS
    )


def build_view(ui: AdminUI, view: View) -> Route:
    """The Starlette route of a view, wrapped with the session, role and CSRF checks."""
    hub = ui.hub
    limit = hub.settings.max_request_bytes

    async def endpoint(request: Request) -> Response:
        session: Session | None = None
        try:
            session = await run_in_threadpool(current_session, hub, request)
            if session is None:
                return login_redirect(request)
            posting = request.method == "POST"
            if not can(session.user.role, view.area, posting or view.write):
                return ui.error_page(
                    request,
                    session,
                    403,
                    "Not for your role",
                    f"Users with the role {session.user.role} cannot "
                    f"{'change' if posting else 'open'} this page. Ask an admin.",
                )
            form = Form()
            if posting:
                body = await request.body()
                if len(body) > limit:
                    raise ApiError(413, "payload_too_large", f"The form is over {limit} bytes.")
                form = parse_form(body, request.headers.get("content-type", ""))
                if not csrf.tokens_match(session.csrf_token, form.raw(csrf.FIELD)):
                    return csrf_failure(ui, request, session)
            page = Page(ui, request, session, form)
            return await run_in_threadpool(view.handler, page)
        except ApiError as exc:
            title = "Not found" if exc.status == 404 else "Cannot do that"
            return ui.error_page(request, session, exc.status, title, exc.message)
        except StorageUnavailable:
            response = ui.error_page(
                request,
                session,
                503,
                "The database is unavailable",
                "Waypost cannot reach its database right now; nothing was changed. "
                "Try again in a moment.",
            )
            response.headers["Retry-After"] = "1"
            return response

    endpoint.__name__ = view.handler.__name__
    return Route(view.path, endpoint, methods=list(view.methods))


def csrf_failure(ui: AdminUI, request: Request, session: Session | None) -> Response:
    """403: the form did not carry the token of this session."""
    return ui.error_page(
        request,
        session,
        403,
        "This form has expired",
        "The form was not sent from a current Waypost page (its security token does not match "
        "your session), so nothing was changed. This happens after logging in again in another "
        "tab. Go back, reload the page, and send the form again.",
    )
