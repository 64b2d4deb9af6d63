"""/api/activities and /api/rejected-activities"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.domain.activity import Activity
from waypost.pagination import Page
from waypost.services.activities import ActivityQuery, RejectedActivity, RejectedQuery
from waypost.services.replay import ReplayQuery, ReplayReport, ReplayRequest


def list_activities(call: Call[None, ActivityQuery]) -> Page[Activity]:
    return call.hub.activities.log(call.query, call.extra)


def list_rejected_activities(call: Call[None, RejectedQuery]) -> Page[RejectedActivity]:
    return call.hub.activities.rejected(call.query)


def get_rejected_activity(call: Call[None, None]) -> RejectedActivity:
    return call.hub.activities.rejected_one(
        parse_uuid(call.path["rejected_id"], "rejected activity")
    )


def replay_rejected_activity(call: Call[None, ReplayQuery]) -> ReplayReport:
    rejected_id = parse_uuid(call.path["rejected_id"], "rejected activity")
    return call.hub.replay.replay_one(rejected_id, call.query.dry_run)


def replay_rejected_activities(call: Call[ReplayRequest, None]) -> ReplayReport:
    return call.hub.replay.replay_many(call.body)


REJECTED = "Rejected activities"
OPERATIONS = [
    Operation(
        "GET",
        "/api/activities",
        list_activities,
        "The activity log across contacts, newest first",
        "Activities",
        query=ActivityQuery,
        response=Page[Activity],
    ),
    Operation(
        "GET",
        "/api/rejected-activities",
        list_rejected_activities,
        "Activities that were not stored, with their reasons, newest first",
        "Rejected activities",
        query=RejectedQuery,
        response=Page[RejectedActivity],
    ),
    Operation(
        "GET",
        "/api/rejected-activities/{rejected_id}",
        get_rejected_activity,
        "A rejected activity with its original payload",
        REJECTED,
        response=RejectedActivity,
        errors=(404,),
    ),
    Operation(
        "POST",
        "/api/rejected-activities/{rejected_id}/replay",
        replay_rejected_activity,
        "Replay one rejected activity (dry_run=true only reports)",
        REJECTED,
        query=ReplayQuery,
        response=ReplayReport,
        errors=(404, 409),
    ),
    Operation(
        "POST",
        "/api/rejected-activities/replay",
        replay_rejected_activities,
        "Replay the rejected activities matching ids or filters",
        REJECTED,
        body=ReplayRequest,
        response=ReplayReport,
    ),
]
