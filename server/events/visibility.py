"""What each role sees of its conference's events on the WebSocket.

The bus carries everything (attendance needs token and subject ids); a WebSocket shows organisers
everything and everyone else only what their page uses: live state, counts, their own session and
their own point's headcount. Nobody but organisers learns who else is connected (names, token,
point, member or session ids), which a leaked viewer link would otherwise reveal.
"""

from __future__ import annotations

from typing import Any

from server.domain.floor_state import QUEUE_ROLES, visible_state
from server.domain.tokens import Principal

Event = dict[str, Any]

FULL_VIEW = ("admin", "organiser")
ORGANISERS_ONLY = {"presence.joined", "presence.left", "attendance.changed", "quality.changed", "quality.sample",
                   "quality.alert"}
# A point's video changing rendition (adaptation or a pin): organisers, and the page whose session it is.
RENDITION_EVENT = "rendition.changed"
# Questions as they come in and change: for organisers and the chair (speaker) only; everyone
# else learns only which question is selected (``question.selected``: id, text, author's name).
CHAIR_ONLY = {"question.submitted", "question.updated"}
FLOOR_EVENTS = {"floor.state", "floor.warning"}
# Fields naming participants or nodes; dropped from any other event a participant receives.
PRIVATE = ("token_id", "subject_id", "subjects", "name", "role", "session_id", "origin", "point_id")


def visible_event(event: Event, principal: Principal) -> Event | None:
    """The event as ``principal`` may see it, or None when it should not see it at all."""
    if principal.role in FULL_VIEW:
        return event
    kind = event.get("type")
    if kind in ORGANISERS_ONLY:
        return None
    if kind in CHAIR_ONLY:
        # The chair (the speaker page) runs the question board: whole questions, authors included.
        return {k: v for k, v in event.items() if k != "origin"} if principal.role == "speaker" else None
    if kind in FLOOR_EVENTS:
        # The chair and the points see the queue and whose floor it is; viewers and members who speaks.
        event = {k: v for k, v in event.items() if k != "origin"}
        if kind == "floor.state":
            return visible_state(event, principal.role)
        return event if principal.role in QUEUE_ROLES else {k: v for k, v in event.items() if k != "point_id"}
    if kind == RENDITION_EVENT:
        own = event.get("token_id") is not None and event.get("token_id") == principal.token_id
        return {k: v for k, v in event.items() if k not in ("origin", "token_id", "subject_id")} if own else None
    if kind == "headcount.reported":
        # A point's operator sees its own point's count confirmed; nobody else needs counts.
        if principal.role == "point" and event.get("point_id") == principal.subject_id:
            return {k: v for k, v in event.items() if k not in ("token_id", "origin")}
        return None
    shown = {k: v for k, v in event.items() if k not in PRIVATE}
    own = event.get("token_id") is not None and event.get("token_id") == principal.token_id
    if "session_id" in event and (own or (kind in ("speaker.live", "speaker.offline") and principal.role == "speaker")):
        shown["session_id"] = event["session_id"]  # a page recognises its own session (replaced, dropped)
    return shown
