"""``ActivityLogger``: Kentico's ``ICustomActivityLogger``, for the current contact."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from waypost_sdk.client import Client
from waypost_sdk.context import current_request

log = logging.getLogger("waypost_sdk")


@dataclass(frozen=True)
class CustomActivityData:
    """What to log with a custom activity, as Kentico's ``CustomActivityData``.

    ``title`` replaces the title Waypost would generate (Kentico's ``ActivityTitle``),
    ``value`` is the activity's value (``ActivityValue``), ``fields`` the values of the
    type's typed fields.
    """

    title: str | None = None
    value: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


class ActivityLogger:
    """Logs custom activities for the current contact of the web request.

    The contact comes from :class:`~waypost_sdk.WaypostASGIMiddleware` or
    :class:`~waypost_sdk.WaypostWSGIMiddleware` (or :func:`~waypost_sdk.use_contact`); the
    request's URL and referrer are logged with the activity. Without a current contact,
    because the visitor's cookie level does not allow tracking or there is no request,
    nothing is logged.

    >>> logger = ActivityLogger(client)
    >>> logger.log("custom_loan_calculator",
    ...            CustomActivityData(title="Loan calculator usage", value="50000"))
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def log(self, activity_type: str, data: CustomActivityData | None = None) -> str | None:
        """Queue an activity of ``activity_type`` (a type's code name) for the current contact.

        Returns the activity's idempotency id, or ``None`` when nothing was queued.
        """
        context = current_request()
        if context is None or context.contact is None:
            log.debug(
                "No current contact (no request, or the visitor's cookie level does not allow "
                "tracking): %s not logged",
                activity_type,
            )
            return None
        data = data if data is not None else CustomActivityData()
        return self.client.log(
            context.contact,
            activity_type,
            value=data.value,
            title=data.title,
            fields=data.fields or None,
            url=context.url,
            referrer=context.referrer,
        )
