"""Rejected activities: the list with their reasons (filtered by reason, type, channel and
time), one with its payload as it was sent, and replaying them.

Replaying takes two steps. The replay page runs a dry run (the replay, rolled back) and shows
how many would now be stored and why the others would not; its button then replays for real
(a POST with the CSRF token) and the outcome is shown on the next page. One activity, the
filtered set, or every activity of one reason can be replayed this way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import Response

from waypost.admin import listing
from waypost.admin.pages.activities import channel_names
from waypost.admin.views import NavItem, Page, View
from waypost.errors import ApiError
from waypost.services.activities import REJECTION_REASONS, RejectedQuery
from waypost.services.replay import ReplayReport, ReplayRequest

NAV = NavItem("Rejected activities", "/admin/rejected", "rejected", 50)

FILTERS = ("reason", "type", "channel", "since", "until")
# What selects a set to replay; times only narrow one.
SELECTORS = ("id", "reason", "type", "channel")
REPLAY_LIMIT = 1000
REASON_DAYS = 30
# Each reason a rejected activity can have, in words, for the reason filter.
REASON_LABELS = {
    "activity_type_not_found": "Unknown activity type",
    "activity_type_disabled": "Activity type disabled",
    "missing_field": "A required value is missing",
    "invalid_field": "A value is not valid",
    "unknown_field": "A field the type does not have",
    "field_type_mismatch": "A value of the wrong type",
    "contact_not_found": "Unknown contact",
    "consent_required": "No consent to tracking",
    "rate_limited": "Over a rate limit",
    "payload_too_large": "Too large",
}


def reason_label(code: str) -> str:
    """A reason in words with its code, "Over a rate limit (rate_limited)"; an unknown code
    (from an older version) as it is."""
    words = REASON_LABELS.get(code)
    return f"{words} ({code})" if words else code


def replay_split(count: int, replayed: int) -> str:
    """How many of ``count`` rejected activities wait for a replay, and how many a replay
    stored: "2 not replayed, 1 replayed"."""
    return f"{count - replayed:,} not replayed, {replayed:,} replayed"


def rejected_query(params: Mapping[str, str]) -> RejectedQuery:
    """The service's query for a page of the list: 400 for a filter that is not valid."""
    return RejectedQuery(
        limit=listing.limit(params),
        cursor=params.get("cursor") or None,
        reason=listing.text(params, "reason", "Reason"),
        type=listing.text(params, "type", "Activity type"),
        channel=listing.identifier(params, "channel", "Channel"),
        since=listing.when(params, "since", "From"),
        until=listing.when(params, "until", "Until"),
    )


def reason_options(present: Iterable[str], chosen: str) -> list[tuple[str, str]]:
    """The reason filter's choices: any, every reason an activity can be rejected with, and
    any other reason found in the data or asked for in the address (so it stays selected)."""
    options = [("", "Any reason")]
    options += [(code, reason_label(code)) for code in REJECTION_REASONS]
    known = set(REJECTION_REASONS)
    for code in sorted({*present, chosen} - known - {""}):
        options.append((code, code))
    return options


def replay_request(params: Mapping[str, str], dry_run: bool) -> ReplayRequest:
    """What to replay: one (``id``), or those matching the filters; 400 without any."""
    one = listing.identifier(params, "id", "Rejected activity")
    request = ReplayRequest(
        ids=[one] if one is not None else None,
        reason=listing.text(params, "reason", "Reason"),
        type=listing.text(params, "type", "Activity type"),
        channel=listing.identifier(params, "channel", "Channel"),
        since=listing.when(params, "since", "From"),
        until=listing.when(params, "until", "Until"),
        dry_run=dry_run,
        limit=REPLAY_LIMIT,
    )
    if one is None and request.reason is None and request.type is None and request.channel is None:
        raise ApiError(
            400,
            "missing_field",
            "Choose what to replay: a reason, an activity type or a channel.",
            "reason",
        )
    return request


def selection(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters that choose what to replay, as given (for links and hidden fields)."""
    return {
        name: params[name].strip()
        for name in (*SELECTORS, "since", "until")
        if params.get(name, "").strip()
    }


def outcome(report: ReplayReport) -> str:
    """One sentence for what a replay did (or, for a dry run, would do)."""
    if report.matched == 0:
        return "Nothing to replay: no rejected activity that is not stored yet matches."
    dry = report.dry_run
    parts = [f"{'store' if dry else 'stored'} {report.stored:,}"]
    if report.duplicates:
        parts.append(f"{'find' if dry else 'found'} {report.duplicates:,} stored already")
    still = sum(report.still_rejected.values())
    if still:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(report.still_rejected.items()))
        parts.append(f"{'reject' if dry else 'rejected'} {still:,} again ({reasons})")
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    noun = "activity" if report.matched == 1 else "activities"
    if dry:
        return f"Replaying {report.matched:,} {noun} now would {said}."
    return f"Replayed {report.matched:,} {noun}: {said}."


def pretty(payload: Any) -> str:
    """The payload as sent, indented (escaped by the template, like every value)."""
    return json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False)


# -- handlers -------------------------------------------------------------------------------


def list_rejected(page: Page) -> Response:
    hub = page.hub
    params = page.request.query_params
    error: ApiError | None = None
    items: list[Any] = []
    paging = None
    try:
        found = hub.activities.rejected(rejected_query(params))
        items = found.data
        paging = listing.paging("/admin/rejected", params, found.next)
    except ApiError as exc:
        error = exc
    values = {name: params.get(name, "") for name in FILTERS}
    chosen = selection(params)
    recent = hub.reports.rejected(REASON_DAYS)
    return page.render(
        "rejected/list.html",
        error.status if error else 200,
        items=items,
        values=values,
        since_value=listing.time_value(params, "since"),
        until_value=listing.time_value(params, "until"),
        recent=recent,
        reason_labels=REASON_LABELS,
        split=replay_split,
        reason_options=reason_options((r.reason for r in recent.reasons), values["reason"]),
        reason_days=REASON_DAYS,
        channels=channel_names(hub),
        types=sorted(hub.types.all(), key=lambda t: t.name.lower()),
        paging=paging,
        error=error,
        replayable=bool(set(chosen) & set(SELECTORS)) and error is None,
        replay_link="/admin/rejected/replay?" + listing.query_string(chosen),
    )


def show_rejected(page: Page) -> Response:
    hub = page.hub
    item = hub.activities.rejected_one(page.uuid_param("rejected_id", "rejected activity"))
    contact = None
    if item.contact is not None:
        contact = hub.contacts.summaries([item.contact]).get(item.contact)
    return page.render(
        "rejected/show.html",
        item=item,
        payload=pretty(item.payload),
        reason_labels=REASON_LABELS,
        channels=channel_names(hub),
        contact=contact,
    )


def replay(page: Page) -> Response:
    """GET: the dry run and the button; POST: the replay, then back with the outcome."""
    hub = page.hub
    if page.request.method == "GET":
        params: Mapping[str, str] = page.request.query_params
        report = hub.replay.replay_many(replay_request(params, dry_run=True))
        chosen = selection(params)
        return page.render(
            "rejected/replay.html",
            report=report,
            summary=outcome(report),
            chosen=chosen,
            one=chosen.get("id"),
            limit=REPLAY_LIMIT,
            back=_back(chosen),
        )
    form = {name: page.form.get(name) for name in (*SELECTORS, "since", "until")}
    request = replay_request(form, dry_run=False)
    if request.ids is not None:
        report = hub.replay.replay_one(request.ids[0], dry_run=False)  # 409 once stored
    else:
        report = hub.replay.replay_many(request)
    return page.redirect(_back(selection(form)), outcome(report))


def _back(chosen: Mapping[str, str]) -> str:
    if "id" in chosen:
        return f"/admin/rejected/{uuid.UUID(chosen['id'])}"
    return "/admin/rejected?" + listing.query_string(chosen)


VIEWS = [
    View("/admin/rejected", list_rejected, "rejected"),
    View("/admin/rejected/replay", replay, "rejected", ("GET", "POST"), write=True),
    View("/admin/rejected/{rejected_id}", show_rejected, "rejected"),
]
