"""The logged-in user's own account: changing the password."""

from __future__ import annotations

from starlette.responses import Response

from waypost.admin.views import Page, View
from waypost.errors import ApiError, invalid

NAV = None


def change_password(page: Page) -> Response:
    form = page.form
    if page.request.method == "GET":
        return page.render("account/password.html", error=None)
    try:
        if form.raw("new_password") != form.raw("new_password_again"):
            raise invalid("The two new passwords differ; type the same one twice.", "new_password")
        page.hub.users.change_password(
            page.session.user.id,
            form.raw("current_password"),
            form.raw("new_password"),
            keep_session=page.session.token_hash,
        )
    except ApiError as exc:
        if exc.field == "password":  # the service's rule, told at this form's field
            exc = ApiError(exc.status, exc.code, exc.message, "new_password")
        return page.render("account/password.html", exc.status, error=exc)
    return page.redirect(
        "/admin",
        "Changed your password. Your other sessions have ended; this one goes on.",
    )


VIEWS = [
    View("/admin/password", change_password, "account", ("GET", "POST"), write=True),
]
