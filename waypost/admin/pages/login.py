"""Logging in and out. These two pages work without a session, so they are plain routes."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from waypost.access import csrf
from waypost.access.auth import (
    clear_session_cookie,
    current_session,
    login_allowed,
    login_succeeded,
    secure_cookies,
    set_session_cookie,
)
from waypost.admin.forms import parse_form
from waypost.admin.rendering import SECURITY_HEADERS
from waypost.admin.views import FLASH_COOKIE, LOGIN_PATH, AdminUI, csrf_failure
from waypost.errors import ApiError
from waypost.store import StorageUnavailable

MAX_LOGIN_FORM = 16_384
# Where a login may lead: a page of the UI, never another site (no open redirect).
_SAFE_NEXT = re.compile(r"^/admin(?:[/?#][^\\\s]*)?\Z")


def safe_next(target: str) -> str:
    return target if _SAFE_NEXT.match(target) and not target.startswith("//") else "/admin"


def login_routes(ui: AdminUI) -> list[Route]:
    """``GET/POST /admin/login`` and ``POST /admin/logout``."""
    hub = ui.hub
    settings = hub.settings

    def login_page(
        request: Request,
        token: str,
        target: str,
        email: str = "",
        error: str = "",
        status: int = 200,
    ) -> Response:
        response = ui.render(
            request,
            None,
            "login.html",
            status,
            login_token=token,
            next=target,
            email=email,
            error=error,
        )
        response.set_cookie(
            csrf.LOGIN_COOKIE,
            token,
            max_age=3600,
            path=LOGIN_PATH,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(settings, request),
        )
        return response

    async def login(request: Request) -> Response:
        try:
            if request.method == "GET":
                target = safe_next(request.query_params.get("next", "/admin"))
                if await run_in_threadpool(current_session, hub, request) is not None:
                    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
                return login_page(request, csrf.new_login_token(), target)
            body = await request.body()
            if len(body) > MAX_LOGIN_FORM:
                raise ApiError(413, "payload_too_large", "The login form is too large.")
            form = parse_form(body, request.headers.get("content-type", ""))
            token = request.cookies.get(csrf.LOGIN_COOKIE)
            if not csrf.tokens_match(token, form.raw(csrf.FIELD)):
                return csrf_failure(ui, request, None)
            assert token is not None
            target = safe_next(form.get("next", "/admin"))
            email = form.get("email")
            attempt = await login_allowed(hub, request, email)
            wait = attempt.wait
            if wait:
                response = login_page(
                    request,
                    token,
                    target,
                    email,
                    f"Too many login attempts. Wait {wait} seconds, then try again.",
                    429,
                )
                response.headers["Retry-After"] = str(wait)
                return response
            user = await run_in_threadpool(hub.users.authenticate, email, form.raw("password"))
            if user is None:
                return login_page(
                    request,
                    token,
                    target,
                    email,
                    "The email or the password is wrong, or the user is disabled.",
                    400,
                )
            await login_succeeded(hub, attempt)
            session_token, _ = await run_in_threadpool(hub.sessions.start, user)
        except ApiError as exc:
            return ui.error_page(request, None, exc.status, "Cannot log in", exc.message)
        except StorageUnavailable:
            return ui.error_page(
                request,
                None,
                503,
                "The database is unavailable",
                "Waypost cannot reach its database right now. Try again in a moment.",
            )
        response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        set_session_cookie(response, settings, request, session_token)
        response.delete_cookie(csrf.LOGIN_COOKIE, path=LOGIN_PATH)
        return response

    async def logout(request: Request) -> Response:
        try:
            session = await run_in_threadpool(current_session, hub, request)
            if session is not None:
                form = parse_form(await request.body(), request.headers.get("content-type", ""))
                if not csrf.tokens_match(session.csrf_token, form.raw(csrf.FIELD)):
                    return csrf_failure(ui, request, session)
                await run_in_threadpool(hub.sessions.end, session.token_hash)
        except ApiError as exc:
            return ui.error_page(request, None, exc.status, "Cannot log out", exc.message)
        except StorageUnavailable:
            return ui.error_page(
                request,
                None,
                503,
                "The database is unavailable",
                "Waypost cannot reach its database right now. Try again in a moment.",
            )
        response = RedirectResponse(LOGIN_PATH, status_code=303, headers=SECURITY_HEADERS)
        clear_session_cookie(response, settings, request)
        response.set_cookie(
            FLASH_COOKIE,
            "You%20have%20logged%20out.",
            max_age=60,
            path="/admin",
            httponly=True,
            samesite="lax",
        )
        return response

    return [
        Route(LOGIN_PATH, login, methods=["GET", "POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
    ]
