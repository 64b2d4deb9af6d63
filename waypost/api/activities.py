"""/api/activities and /api/rejected-activities"""

from __future__ import annotations

from waypost.api.routing import Call, Operation
from waypost.pagination import Page
from waypost.services.activities import Activity, ActivityQuery, RejectedActivity, RejectedQuery


def list_activities(call: Call[None, ActivityQuery]) -> Page[Activity]:
    return call.hub.activities.log(call.query, call.extra)


def list_rejected_activities(call: Call[None, RejectedQuery]) -> Page[RejectedActivity]:
    return call.hub.activities.rejected(call.query)


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
]
