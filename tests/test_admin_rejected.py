"""The rejected activities pages: the list with reasons and filters, one with its payload,
and replaying (the dry run first, then the replay on a POST with the CSRF token)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from waypost.admin.pages.rejected import (
    REASON_LABELS,
    outcome,
    pretty,
    reason_options,
    replay_request,
)
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.services.activities import REJECTION_REASONS
from waypost.services.activity_types import ActivityType
from waypost.services.replay import ReplayReport
from waypost.store.schema import activities

if TYPE_CHECKING:
    from tests.admin_log_support import Seeded, at, ids_in, link_of, seed
    from tests.admin_support import UI, error_of, flash_of
    from tests.conftest import Tracker
else:
    from admin_log_support import Seeded, at, ids_in, link_of, seed
    from admin_support import UI, error_of, flash_of

MakeUI = Callable[..., UI]
UNKNOWN = "activity_type_not_found"
ERRORS_DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


@pytest.fixture
def seeded(hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]) -> Seeded:
    return seed(hub, tracker, make_type)


def stored(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(activities)).scalar_one())


# -- pure helpers ---------------------------------------------------------------------------


def report(dry_run: bool, matched: int, stored: int, dup: int, **still: int) -> ReplayReport:
    return ReplayReport(dry_run, matched, stored, dup, still, [])


def test_the_outcome_in_one_sentence() -> None:
    assert outcome(report(True, 0, 0, 0)).startswith("Nothing to replay")
    assert outcome(report(True, 1, 1, 0)) == "Replaying 1 activity now would store 1."
    assert outcome(report(False, 1200, 1000, 0, invalid_field=150, rate_limited=50)) == (
        "Replayed 1,200 activities: stored 1,000 and rejected 200 again "
        "(invalid_field: 150, rate_limited: 50)."
    )
    assert outcome(report(True, 3, 1, 1, activity_type_disabled=1)) == (
        "Replaying 3 activities now would store 1, find 1 stored already and reject 1 again "
        "(activity_type_disabled: 1)."
    )


def test_what_to_replay() -> None:
    one = uuid.uuid4()
    assert replay_request({"id": str(one)}, dry_run=True).ids == [one]
    by_reason = replay_request({"reason": UNKNOWN, "since": "2026-01-01"}, dry_run=False)
    assert (by_reason.reason, by_reason.ids, by_reason.dry_run) == (UNKNOWN, None, False)
    assert by_reason.since is not None
    with pytest.raises(ApiError) as nothing:
        replay_request({"since": "2026-01-01"}, dry_run=True)
    assert (nothing.value.status, nothing.value.code) == (400, "missing_field")
    with pytest.raises(ApiError, match="not an identifier"):
        replay_request({"id": "x"}, dry_run=True)
    assert pretty({"b": "<i>é</i>", "a": [1]}) == '{\n  "b": "<i>é</i>",\n  "a": [\n    1\n  ]\n}'


# -- the list -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_the_list_with_reasons(make_ui: MakeUI, seeded: Seeded, role: str) -> None:
    ui = make_ui(role)
    page = ui.get("/admin/rejected")
    assert page.status_code == 200, page.text
    assert ids_in(page.text, "rejected") == [str(r) for r in reversed(seeded.rejected)]
    assert f"<code>{UNKNOWN}</code>)</a>: 2 not replayed" in page.text  # the last 30 days' reasons
    assert "Not replayed" in page.text
    assert "filter by a reason, an activity type or a channel first" in page.text
    by_reason = ui.get("/admin/rejected", params={"reason": UNKNOWN})
    assert ids_in(by_reason.text, "rejected") == [str(r) for r in reversed(seeded.rejected[:2])]
    assert f'href="/admin/rejected/replay?reason={UNKNOWN}"' in by_reason.text
    by_type = ui.get("/admin/rejected", params={"type": seeded.deposit.code_name})
    assert ids_in(by_type.text, "rejected") == [str(seeded.rejected[2])]
    later = ui.get("/admin/rejected", params={"since": "2099-01-01"})
    assert ids_in(later.text, "rejected") == []
    channel = ui.get("/admin/rejected", params={"channel": str(seeded.tracker.channel.id)})
    assert len(ids_in(channel.text, "rejected")) == 3


def test_reasons_read_in_words_and_replayed_ones_are_counted_apart(
    admin_ui: UI, hub: Hub, seeded: Seeded, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Webinar signup", code_name="webinar_signup")
    hub.catalog.invalidate()
    hub.replay.replay_one(seeded.rejected[0], dry_run=False)
    page = admin_ui.get("/admin/rejected")
    text = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page.text)).split())
    assert "3 rejected activities in the last 30 days, 1 of them replayed" in text
    reasons = page.text.split('id="reasons-heading"', 1)[1].split("</section>", 1)[0]
    unknown = re.search(rf"<li>(.*?reason={UNKNOWN}.*?)</li>", reasons, re.S)
    assert unknown is not None
    words = " ".join(re.sub(r"<[^>]+>", " ", unknown[1]).split())
    assert words == f"Unknown activity type ( {UNKNOWN} ) : 1 not replayed, 1 replayed"
    # Each row says its reason in words, with its code.
    row = page.text.split(f'id="rejected-{seeded.rejected[1]}"', 1)[1].split("</tr>", 1)[0]
    assert f'Unknown activity type<br><code class="muted">{UNKNOWN}</code>' in row
    one = admin_ui.get(f"/admin/rejected/{seeded.rejected[1]}")
    assert f"Unknown activity type (<code>{UNKNOWN}</code>)" in one.text


def test_the_reason_filter_is_a_choice_of_the_known_reasons(admin_ui: UI, seeded: Seeded) -> None:
    page = admin_ui.get("/admin/rejected")
    assert '<select id="filter-reason" name="reason"' in page.text
    assert 'name="reason" value=' not in page.text  # no free text any more
    select = page.text.split('<select id="filter-reason"', 1)[1].split("</select>", 1)[0]
    reasons = re.findall(r'<option value="([^"]*)"(?: selected)?>([^<]*)</option>', select)
    assert reasons[0] == ("", "Any reason")
    assert [value for value, _ in reasons[1:]] == list(REJECTION_REASONS)
    assert (UNKNOWN, f"Unknown activity type ({UNKNOWN})") in reasons
    filtered = admin_ui.get("/admin/rejected", params={"reason": "rate_limited"})
    assert '<option value="rate_limited" selected>' in filtered.text
    # A reason from elsewhere (an older version, the address) is offered and stays chosen.
    other = admin_ui.get("/admin/rejected", params={"reason": "old_reason"})
    assert other.status_code == 200
    assert '<option value="old_reason" selected>old_reason</option>' in other.text


def test_every_reason_is_a_documented_error_code_with_words() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", ERRORS_DOC.read_text(), re.M))
    assert set(REJECTION_REASONS) <= documented
    assert set(REASON_LABELS) == set(REJECTION_REASONS)
    options = reason_options(["invalid_field", "zzz_found"], "aaa_asked")
    assert options[0] == ("", "Any reason")
    assert options[-2:] == [("aaa_asked", "aaa_asked"), ("zzz_found", "zzz_found")]
    assert len(options) == len(REJECTION_REASONS) + 3


def test_the_list_is_paged(admin_ui: UI, seeded: Seeded) -> None:
    seen: list[str] = []
    path: str | None = "/admin/rejected?limit=2"
    while path is not None:
        page = admin_ui.get(path)
        assert page.status_code == 200
        seen.extend(ids_in(page.text, "rejected"))
        path = link_of(page.text)
    assert seen == [str(r) for r in reversed(seeded.rejected)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"channel": "nope"}, "not an identifier"),
        ({"since": "tomorrow"}, "is not a date in ISO 8601"),
        ({"cursor": "%%%"}, "cursor is not one"),
        ({"limit": "0"}, "Rows per page"),
        ({"reason": "x" * 600}, "at most 500"),
    ],
)
def test_bad_filters_are_400_pages(admin_ui: UI, params: dict[str, str], message: str) -> None:
    page = admin_ui.get("/admin/rejected", params=params)
    assert page.status_code == 400, page.text
    assert message in html.unescape(error_of(page))
    assert "Replay the rejected activities that match" not in page.text


# -- one rejected activity -------------------------------------------------------------------


def test_one_with_its_payload_escaped(marketer_ui: UI, seeded: Seeded) -> None:
    sent = seeded.tracker.post(
        [{"type": "<script>alert(1)</script>", "value": "é"}], str(seeded.jane)
    )
    assert sent.json()["results"][0]["status"] == 404
    newest = ids_in(marketer_ui.get("/admin/rejected").text, "rejected")[0]
    page = marketer_ui.get(f"/admin/rejected/{newest}")
    assert page.status_code == 200, page.text
    assert "<script>alert" not in page.text
    assert "&#34;type&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page.text
    assert "&#34;value&#34;: &#34;é&#34;" in page.text
    assert f'href="/admin/contacts/{seeded.jane}">Jane Doe</a>' in page.text
    assert f'href="/admin/rejected/replay?id={newest}">Replay…</a>' in page.text
    for path in (f"/admin/rejected/{uuid.uuid4()}", "/admin/rejected/nope"):
        assert marketer_ui.get(path).status_code == 404


# -- replaying ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_replay_one_after_the_dry_run(
    make_ui: MakeUI, hub: Hub, seeded: Seeded, make_type: Callable[..., ActivityType], role: str
) -> None:
    ui = make_ui(role)
    first = seeded.rejected[0]
    before = stored(hub)
    dry = ui.get("/admin/rejected/replay", params={"id": str(first)})
    assert dry.status_code == 200, dry.text
    assert (
        f"Replaying 1 activity now would store 0 and reject 1 again ({UNKNOWN}: 1)."
        in html.unescape(dry.text)
    )
    make_type(name="Webinar signup", code_name="webinar_signup")
    hub.catalog.invalidate()
    dry = ui.get("/admin/rejected/replay", params={"id": str(first)})
    assert "Replaying 1 activity now would store 1." in dry.text
    assert (
        '<button type="submit" class="button-primary" id="replay-button">Replay 1 activity'
        in dry.text
    )
    assert f'<input type="hidden" name="id" value="{first}">' in dry.text
    assert stored(hub) == before  # the dry run stored nothing
    # Without the form's token nothing happens.
    refused = ui.post("/admin/rejected/replay", {"id": str(first)}, csrf="")
    assert refused.status_code == 403
    assert "This form has expired" in refused.text
    assert ui.post("/admin/rejected/replay", {"id": str(first)}, csrf="x" * 43).status_code == 403
    assert stored(hub) == before
    done = ui.post("/admin/rejected/replay", {"id": str(first)})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/admin/rejected/{first}"
    page = ui.get(done.headers["location"])
    assert flash_of(page) == "Replayed 1 activity: stored 1."
    assert "stored</span> as" in page.text
    assert "Replay…" not in page.text
    assert stored(hub) == before + 1
    again = ui.post("/admin/rejected/replay", {"id": str(first)})
    assert again.status_code == 409
    assert "replayed already" in again.text
    nothing = ui.get("/admin/rejected/replay", params={"id": str(first)})
    assert "Nothing to replay" in nothing.text
    assert "replay-button" not in nothing.text


def test_replay_every_activity_of_one_reason(
    admin_ui: UI, hub: Hub, seeded: Seeded, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Webinar signup", code_name="webinar_signup")
    hub.catalog.invalidate()
    list_page = admin_ui.get("/admin/rejected", params={"reason": UNKNOWN})
    link = html.unescape(
        list_page.text.split('class="button-secondary" href="', 1)[1].split('"')[0]
    )
    dry = admin_ui.get(link)
    assert "Replaying 2 activities now would store 2." in dry.text
    assert f'<input type="hidden" name="reason" value="{UNKNOWN}">' in dry.text
    done = admin_ui.post("/admin/rejected/replay", {"reason": UNKNOWN})
    assert done.status_code == 303
    assert done.headers["location"] == f"/admin/rejected?reason={UNKNOWN}"
    after = admin_ui.get(done.headers["location"])
    assert flash_of(after) == "Replayed 2 activities: stored 2."
    assert after.text.count('<span class="status on">Stored</span>') == 2
    jane = admin_ui.get(f"/admin/contacts/{seeded.jane}", params={"type": "webinar_signup"})
    assert len(ids_in(jane.text, "activity")) == 2


def test_replay_a_filtered_set_that_stays_rejected(admin_ui: UI, seeded: Seeded) -> None:
    params = {"type": seeded.deposit.code_name, "since": at(7).replace("Z", "")}
    dry = admin_ui.get("/admin/rejected/replay", params=params)
    assert dry.status_code == 200
    summary = html.unescape(dry.text)
    assert "Replaying 1 activity now would store 0 and reject 1 again (invalid_field: 1)." in (
        summary
    ), summary
    assert '<th scope="row"><code>invalid_field</code></th>' in dry.text
    done = admin_ui.post("/admin/rejected/replay", params)
    assert done.status_code == 303
    after = admin_ui.get(done.headers["location"])
    assert "rejected 1 again (invalid_field: 1)" in html.unescape(flash_of(after))
    assert "Rejected again" in after.text


@pytest.mark.parametrize(
    "params", [{}, {"since": "2026-01-01"}, {"id": "nope"}, {"reason": "a", "until": "x"}]
)
def test_replay_needs_a_valid_choice(admin_ui: UI, params: dict[str, str]) -> None:
    assert admin_ui.get("/admin/rejected/replay", params=params).status_code == 400
    assert admin_ui.post("/admin/rejected/replay", params).status_code == 400
