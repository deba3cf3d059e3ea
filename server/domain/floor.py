"""The floor: connection points raise their hands, the chair gives one of them the floor to speak to
the hall and to every other point, ends it, mutes it, locks the queue.

``FloorService`` holds each conference's :class:`~server.domain.floor_state.FloorState` in memory
for reads (WHIP checks, WebSocket snapshots) and the database behind it (``floor_store``): every
change reloads the stored state under the conference's lock, applies the change, records it in the
history and commits, then tells the media plane (``end_floor``, ``mute_floor``), arms or cancels
the deadlines and publishes ``floor.state`` on the conference's topic. So a restart loses nothing,
and a node of a cluster that hears another node's ``floor.state`` just forgets its copy.

Who may do what is decided here, not in the routers, because the REST routes and the WebSocket's
``floor.*`` messages are two doors to the same actions: a refusal is a :class:`FloorRefused` with
the HTTP status and the reason both report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import FloorEvent, new_id, utcnow
from server.domain import floor_store as store
from server.domain.conferences import ENDED
from server.domain.floor_quality import LinkQuality
from server.domain.floor_state import CHAIR_ROLES, QUEUE_ROLES, FloorState, Holder, visible_state
from server.domain.floor_timer import Deadlines
from server.domain.points import PointNotFound, get_point
from server.domain.tokens import Principal
from server.events.bus import EventBus, conference_topic

log = logging.getLogger(__name__)

MAX_SUBJECT = 200
MAX_LIMIT_SECONDS = 24 * 3600
STATE_EVENT = "floor.state"
WARNING_EVENT = "floor.warning"
MEDIA_EVENT = "floor.media"  # from the media plane (server.events.media_events)


class FloorRefused(Exception):
    """An action the caller may not take now: ``status`` 403 (who), 404 (what), 409 (when), 422."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def is_chair(principal: Principal) -> bool:
    return principal.role in CHAIR_ROLES


def actor_of(principal: Principal | None) -> str:
    if principal is None:
        return "server"
    return f"{principal.role} {principal.name}".strip()


def check_subject(subject: Any) -> str:
    if not isinstance(subject, str) or len(subject) > MAX_SUBJECT:
        raise FloorRefused(422, f"subject must be text of at most {MAX_SUBJECT} characters")
    return subject.strip()


def check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT_SECONDS:
        raise FloorRefused(422, f"limit_seconds must be a whole number from 1 to {MAX_LIMIT_SECONDS}, or null")
    return limit


@dataclass
class Effects:
    """What a committed change still has to do outside the database."""

    ended: bool = False  # a holding ended: the media plane drops the point, deadlines are cancelled
    granted: Holder | None = None  # a new holding: its deadlines are armed, its audio unmuted
    mute: bool | None = None


Change = Callable[[AsyncSession, FloorState, Effects], Awaitable[None]]


class FloorService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        media: Any,
        warning_seconds: float = 30.0,
        link_grace_seconds: float = 10.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.media = media  # MediaEngine: end_floor(conference), mute_floor(conference, muted)
        self.warning_seconds = warning_seconds
        self.link_grace_seconds = link_grace_seconds
        self.deadlines = Deadlines()
        self.quality = LinkQuality(media)
        self._states: dict[str, FloorState] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # The holder's media state per grant, from floor.media events (not stored: a restart has
        # no media sessions, so "waiting" is right after one).
        self._media: dict[str, tuple[str, str | None]] = {}
        self._unsubscribe: Callable[[], None] | None = None

    # --- life --------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen to the bus and arm the time limits of floors held when the server stopped."""
        self._unsubscribe = self.bus.subscribe("*", self.on_bus_event)
        async with self.sessionmaker() as db:
            held = await store.held_floors(db)
        for conference_id in held:
            state = await self.state(conference_id)
            if state.current is not None:
                self._arm_limit(conference_id, state.current)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.deadlines.close()

    # --- reading -----------------------------------------------------------------------------------
    async def state(self, conference_id: str) -> FloorState:
        cached = self._states.get(conference_id)
        if cached is not None:
            return cached
        async with self._locks[conference_id]:
            if conference_id not in self._states:
                async with self.sessionmaker() as db:
                    self._states[conference_id] = self._with_media(await store.load(db, conference_id))
            return self._states[conference_id]

    async def view(self, conference_id: str, role: str) -> dict[str, Any]:
        """The floor as ``role`` sees it (GET /floor, the WebSocket's first floor.state)."""
        state = await self.state(conference_id)
        if role in CHAIR_ROLES and state.queue:
            await self.quality.refresh()
        return visible_state(self._as_dict(state), role)

    async def holding(self, conference_id: str, point_id: str | None) -> str | None:
        """The grant id while ``point_id`` holds the floor, else None (WHIP asks before publishing)."""
        state = await self.state(conference_id)
        return state.current.grant_id if state.current and state.holds(point_id) else None

    async def history(self, conference_id: str) -> list[FloorEvent]:
        async with self.sessionmaker() as db:
            return await store.history(db, conference_id)

    # --- the actions -------------------------------------------------------------------------------
    async def raise_hand(self, conference_id: str, principal: Principal, subject: Any = "") -> dict[str, Any]:
        """A point asks for the floor (asking again changes its subject, keeping its place)."""
        if principal.role != "point" or not principal.subject_id:
            raise FloorRefused(403, "only a connection point can ask for the floor")
        point_id = principal.subject_id
        text = check_subject(subject)

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            if state.locked:
                raise FloorRefused(409, "the floor queue is locked: no new requests for now")
            if state.holds(point_id):
                raise FloorRefused(409, "this point already holds the floor")
            point = await self._point(db, conference_id, point_id)
            now = utcnow()
            await store.put_request(db, conference_id, point_id, text, now)
            if state.queued(point_id) is None:
                await store.record(db, conference_id, "requested", point_id=point_id, point_name=point.name,
                                   level=point.level, subject=text, actor=actor_of(principal), at=now)

        await self.quality.refresh()
        return await self._act(conference_id, principal, change)

    async def lower_hand(self, conference_id: str, principal: Principal, point_id: str) -> dict[str, Any]:
        """The point itself or the chair takes a raised hand out of the queue."""
        if not (is_chair(principal) or (principal.role == "point" and principal.subject_id == point_id)):
            raise FloorRefused(403, "only the point itself or the chair can lower its hand")

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            entry = state.queued(point_id)
            if entry is None:
                raise FloorRefused(404, "this point has not asked for the floor")
            await store.drop_requests(db, conference_id, point_id)
            await store.record(db, conference_id, "lowered", point_id=point_id, point_name=entry.point_name,
                               level=entry.level, subject=entry.subject,
                               reason="chair" if principal.role != "point" else None, actor=actor_of(principal))

        return await self._act(conference_id, principal, change)

    async def grant(
        self, conference_id: str, principal: Principal, point_id: str, limit_seconds: Any = None
    ) -> dict[str, Any]:
        """The chair gives a point the floor (queued or invited); whoever held it is ended first."""
        if principal.role == "point":
            raise FloorRefused(403, "a connection point cannot grant the floor; the chair does")
        if not is_chair(principal):
            raise FloorRefused(403, "only the chair can grant the floor")
        limit = check_limit(limit_seconds)

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            point = await self._point(db, conference_id, point_id)
            if state.holds(point_id):
                raise FloorRefused(409, "this point already holds the floor")
            if state.current is not None:
                await self._end(db, state, effects, "chair", actor_of(principal))
            entry = state.queued(point_id)
            if entry is not None:
                await store.drop_requests(db, conference_id, point_id)
            now = utcnow()
            holder = Holder(
                grant_id=new_id(),
                point_id=point_id,
                point_name=point.name,
                level=point.level,
                subject=entry.subject if entry else "",
                granted_at=now,
                limit_seconds=limit,
                ends_at=now + dt.timedelta(seconds=limit) if limit else None,
            )
            state.current = holder
            await store.save(db, state)
            await store.record(db, conference_id, "granted", point_id=point_id, point_name=holder.point_name,
                               level=holder.level, subject=holder.subject, grant_id=holder.grant_id,
                               reason=None if entry else "invited", actor=actor_of(principal), at=now)
            effects.granted = holder

        return await self._act(conference_id, principal, change)

    async def end(self, conference_id: str, principal: Principal) -> dict[str, Any]:
        """The chair ends the floor, or the point holding it gives it back."""
        if not (is_chair(principal) or principal.role == "point"):
            raise FloorRefused(403, "only the chair or the point holding the floor can end it")

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            if state.current is None:
                raise FloorRefused(409, "nobody holds the floor")
            if not is_chair(principal) and not state.holds(principal.subject_id):
                raise FloorRefused(403, "only the chair or the point holding the floor can end it")
            reason = "chair" if is_chair(principal) else "returned"
            await self._end(db, state, effects, reason, actor_of(principal))

        return await self._act(conference_id, principal, change)

    async def mute(self, conference_id: str, principal: Principal, muted: bool) -> dict[str, Any]:
        """The chair silences (or lets speak again) the point holding the floor."""
        self._chair_only(principal, "mute the floor")

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            holder = state.current
            if holder is None:
                raise FloorRefused(409, "nobody holds the floor")
            if holder.muted == muted:
                return
            holder.muted = muted
            await store.save(db, state)
            await store.record(db, conference_id, "muted" if muted else "unmuted", point_id=holder.point_id,
                               point_name=holder.point_name, level=holder.level, subject=holder.subject,
                               grant_id=holder.grant_id, actor=actor_of(principal))
            effects.mute = muted

        return await self._act(conference_id, principal, change)

    async def lock(self, conference_id: str, principal: Principal, locked: bool) -> dict[str, Any]:
        """Lock (no new raised hands; those queued stay) or unlock the queue."""
        self._chair_only(principal, "lock the floor queue")

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            if state.locked == locked:
                return
            state.locked = locked
            await store.save(db, state)
            await store.record(db, conference_id, "locked" if locked else "unlocked", actor=actor_of(principal))

        return await self._act(conference_id, principal, change)

    async def end_all(self, conference_id: str, principal: Principal | None) -> dict[str, Any]:
        """End the current floor and clear the queue (``principal`` None: the server, e.g. the
        conference ended)."""
        if principal is not None:
            self._chair_only(principal, "end all floors")

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            if state.current is not None:
                await self._end(db, state, effects, "end_all", actor_of(principal))
            await self._clear(db, state, None, "end_all", actor_of(principal))

        return await self._act(conference_id, principal, change)

    async def remove_point(self, conference_id: str, point_id: str, principal: Principal) -> tuple[bool, bool]:
        """Moderation: a removed point loses the floor and its place in the queue.
        Returns (it held the floor, it was queued)."""
        outcome = [False, False]

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            if state.holds(point_id):
                outcome[0] = True
                await self._end(db, state, effects, "removed", actor_of(principal))
            if state.queued(point_id) is not None:
                outcome[1] = True
                await self._clear(db, state, point_id, "removed", actor_of(principal))

        await self._act(conference_id, principal, change)
        return outcome[0], outcome[1]

    # --- changing ----------------------------------------------------------------------------------
    def _chair_only(self, principal: Principal, what: str) -> None:
        if not is_chair(principal):
            raise FloorRefused(403, f"only the chair can {what}")

    async def _point(self, db: AsyncSession, conference_id: str, point_id: str) -> Any:
        try:
            return await get_point(db, conference_id, point_id)
        except PointNotFound:
            raise FloorRefused(404, f"unknown point '{point_id}'") from None

    async def _end(self, db: AsyncSession, state: FloorState, effects: Effects, reason: str, actor: str) -> None:
        holder = state.current
        assert holder is not None
        now = utcnow()
        state.current = None
        await store.save(db, state)
        await store.record(
            db, state.conference_id, "ended", point_id=holder.point_id, point_name=holder.point_name,
            level=holder.level, subject=holder.subject, grant_id=holder.grant_id,
            duration_seconds=round(max(0.0, (now - holder.granted_at).total_seconds()), 1),
            reason=reason, actor=actor, at=now,
        )
        self._media.pop(holder.grant_id, None)
        effects.ended = True
        effects.granted = None

    async def _clear(self, db: AsyncSession, state: FloorState, point_id: str | None, reason: str, actor: str) -> None:
        for entry in [e for e in state.queue if point_id is None or e.point_id == point_id]:
            await store.record(db, state.conference_id, "lowered", point_id=entry.point_id,
                               point_name=entry.point_name, level=entry.level, subject=entry.subject,
                               reason=reason, actor=actor)
        await store.drop_requests(db, state.conference_id, point_id)

    async def _act(self, conference_id: str, principal: Principal | None, change: Change) -> dict[str, Any]:
        """Run ``change`` on the stored state; the new state as ``principal`` sees it."""
        effects = Effects()
        async with self._locks[conference_id]:
            async with self.sessionmaker() as db:
                state = self._with_media(await store.load(db, conference_id))
                before = state.as_dict()
                await change(db, state, effects)
                await db.commit()
                state = self._with_media(await store.load(db, conference_id))
            self._states[conference_id] = state
            await self._apply(conference_id, effects)
        shown = self._as_dict(state)
        if state.as_dict() != before:
            await self.bus.publish(conference_topic(conference_id), {"type": STATE_EVENT, **shown})
        return visible_state(shown, principal.role if principal else "admin")

    async def _apply(self, conference_id: str, effects: Effects) -> None:
        """Tell the media plane and the deadlines what changed (after the commit: the stored state
        is what counts, and a media failure must not undo it)."""
        if effects.ended:
            self.deadlines.cancel_conference(conference_id)
            await self._media_call("end_floor", conference_id)
        if effects.granted is not None:
            await self._media_call("mute_floor", conference_id, False)
            self._arm_limit(conference_id, effects.granted)
        if effects.mute is not None:
            await self._media_call("mute_floor", conference_id, effects.mute)

    async def _media_call(self, name: str, *args: Any) -> None:
        try:
            result = getattr(self.media, name)(*args)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("media %s%s failed", name, args)

    def _with_media(self, state: FloorState) -> FloorState:
        holder = state.current
        if holder is not None:
            holder.media, holder.session_id = self._media.get(holder.grant_id, ("waiting", None))
        return state

    def _as_dict(self, state: FloorState) -> dict[str, Any]:
        return state.as_dict(self.quality.of(state.conference_id, [e.point_id for e in state.queue]))

    # --- deadlines ---------------------------------------------------------------------------------
    def _arm_limit(self, conference_id: str, holder: Holder) -> None:
        if holder.ends_at is None:
            return
        grant_id = holder.grant_id
        warn_at = holder.ends_at - dt.timedelta(seconds=self.warning_seconds)
        if holder.ends_at > utcnow():
            self.deadlines.set((conference_id, "warning"), warn_at, lambda: self._warn(conference_id, grant_id))
        self.deadlines.set(
            (conference_id, "limit"), holder.ends_at, lambda: self._end_if(conference_id, grant_id, "time_limit")
        )

    async def _warn(self, conference_id: str, grant_id: str) -> None:
        state = await self.state(conference_id)
        holder = state.current
        if holder is None or holder.grant_id != grant_id or holder.ends_at is None:
            return
        left = max(0, round((holder.ends_at - utcnow()).total_seconds()))
        await self.bus.publish(
            conference_topic(conference_id),
            {"type": WARNING_EVENT, "v": 1, "point_id": holder.point_id, "point_name": holder.point_name,
             "ends_at": holder.ends_at.isoformat(), "seconds_left": left},
        )

    async def _end_if(self, conference_id: str, grant_id: str, reason: str) -> None:
        """End the floor for ``reason`` if the holding ``grant_id`` still holds it (and, for a lost
        link, has not come back live)."""

        async def change(db: AsyncSession, state: FloorState, effects: Effects) -> None:
            holder = state.current
            if holder is None or holder.grant_id != grant_id:
                return
            if reason == "link_lost" and holder.media == "live":
                return
            await self._end(db, state, effects, reason, "server")

        await self._act(conference_id, None, change)

    # --- what the bus says -------------------------------------------------------------------------
    def on_bus_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind not in (MEDIA_EVENT, STATE_EVENT, ENDED):
            return
        conference_id = str(event.get("conference_id") or str(event.get("topic", "")).removeprefix("conference."))
        local = event.get("origin") in (None, getattr(self.bus, "node_id", None))
        if kind == MEDIA_EVENT:
            asyncio.ensure_future(self._media_changed(conference_id, event, local))
        elif kind == STATE_EVENT and not local:
            self._states.pop(conference_id, None)  # another node changed it: read it again when asked
        elif kind == ENDED and local:
            asyncio.ensure_future(self.end_all(conference_id, None))

    async def _media_changed(self, conference_id: str, event: dict[str, Any], local: bool) -> None:
        """The holder's stream went live, stalled or closed: show it; a closed one ends the floor
        (link_lost) unless it is live again within the grace."""
        state = await self.state(conference_id)
        holder = state.current
        if holder is None or holder.point_id != event.get("point_id"):
            return
        media_state, session_id = event.get("state"), event.get("session_id")
        before = (holder.media, holder.session_id)
        if media_state == "live":
            holder.media, holder.session_id = "live", session_id
            self.deadlines.cancel((conference_id, "link"))
            if holder.muted and local:
                await self._media_call("mute_floor", conference_id, True)
        elif media_state == "stalled" and holder.session_id in (None, session_id):
            holder.media = "stalled"
        elif media_state == "closed" and holder.session_id in (None, session_id):
            holder.media, holder.session_id = "waiting", None
            if local:
                grant_id = holder.grant_id
                at = utcnow() + dt.timedelta(seconds=self.link_grace_seconds)
                self.deadlines.set((conference_id, "link"), at, lambda: self._end_if(conference_id, grant_id, "link_lost"))
        self._media[holder.grant_id] = (holder.media, holder.session_id)
        if (holder.media, holder.session_id) != before and local:
            await self.bus.publish(conference_topic(conference_id), {"type": STATE_EVENT, **self._as_dict(state)})


def history_line(event: FloorEvent) -> dict[str, Any]:
    """One history entry as the API shows it."""
    return {
        "at": event.at.isoformat(),
        "kind": event.kind,
        "point_id": event.point_id,
        "point_name": event.point_name,
        "subject": event.subject,
        "duration_seconds": event.duration_seconds,
        "reason": event.reason,
    }


__all__ = ["FloorRefused", "FloorService", "QUEUE_ROLES", "history_line"]
