"""Live link quality per connection point, for the organisers: a score (good, fair, poor, with its
value 0-100) from what the point's page reports and what the relay measures, a short history,
alerts, pinned renditions, and the minutes that go into the report.

``QualityService`` samples every ``interval`` seconds (5 by default): the relay's figures for each
point's WHEP sessions (receiver reports: loss, jitter, RTT; what the relay answered: retransmissions,
keyframe requests; what it sent), workers' sessions included (their figures come with the pool's
stats refresh, shared with the floor's ``LinkQuality``), and the page's latest ``quality.report``
(frames decoded and dropped, freezes). It publishes, for organisers only
(``server.events.visibility``), ``quality.changed`` when a point's score changes (with the score
before: ``previous``), one ``quality.sample`` per conference and sample with every point sampled
(the dashboard's live figures), and ``quality.alert`` when an alert starts or ends
(``quality_alerts``). What the report needs (seconds watched per rendition, seconds poor,
freezes) and the pins are stored (``quality_store``), so a restart keeps them; the history and the
current figures live in memory.

Points are followed on this node: its sessions' figures, its sockets' reports. With several nodes
each node's dashboard shows the points watching through it in full, the others by their status.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import QualityAlert, utcnow
from server.domain import quality_store as store
from server.domain.conferences import ENDED
from server.domain.floor_quality import LinkQuality
from server.domain.points import PointNotFound, get_point, list_points
from server.domain.quality_alerts import PointAlerts, conditions
from server.domain.quality_history import HISTORY_SECONDS, History
from server.domain.quality_page import RENDITIONS, PageTracker, ReportRefused, parse_report
from server.domain.quality_score import POOR, assess, fps_shortfall, smoothed
from server.domain.quality_speaker import SpeakerMeter
from server.domain.tokens import Principal
from server.events.bus import EventBus, conference_topic

log = logging.getLogger(__name__)

CHANGED_EVENT = "quality.changed"
SAMPLE_EVENT = "quality.sample"
ALERT_EVENT = "quality.alert"
RENDITION_EVENT = "rendition.changed"  # from the media plane
PAGE_REPORT_SECONDS = 5.0  # how often the point page reports (point.js)
FRESH_REPORTS = 2.5  # a page report older than this many report (or sample) intervals is not used
JOIN_SECONDS = 10.0  # a session's keyframe requests while it joins (until its first pictures) do not count
SORT_RANK = {"poor": 0, "fair": 1, "good": 2, None: 3}


class QualityRefused(Exception):
    """A report or pin refused: ``status`` 403 (who), 404 (which point), 422 (what), 503 (media)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def iso(at: float | None) -> str | None:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat() if at is not None else None


def check_pin(value: Any) -> str | None:
    if value is not None and value not in RENDITIONS:
        raise QualityRefused(422, f"rendition must be one of {', '.join(RENDITIONS)}, or null (automatic)")
    return value


@dataclass
class Counters:
    """A WHEP session's cumulative counters at one sample, and the figures they gave."""

    at: float
    since: float  # the session's first sample
    source: Any  # the stats object read (a worker's answer is the same object until refreshed)
    packets: int
    octets: int
    retransmits: int
    keyframe_requests: int
    figures: dict[str, float | None]


@dataclass
class PointState:
    conference_id: str
    point_id: str
    history: History
    page: PageTracker = field(default_factory=PageTracker)
    alerts: PointAlerts = field(default_factory=PointAlerts)
    sessions: dict[str, str | None] = field(default_factory=dict)  # WHEP session -> token id (any node)
    renditions: dict[str, str] = field(default_factory=dict)  # WHEP session -> rendition (media events)
    sockets: int = 0  # its open event WebSockets (any node)
    left_at: float | None = None  # its last WHEP session closed on this node then
    pinned: str | None = None
    rendition: str | None = None
    raw: deque[int] = field(default_factory=lambda: deque(maxlen=2))
    score: str | None = None  # good, fair, poor (None: nothing measured)
    score_value: int | None = None
    previous: str | None = None  # the last score measured before the current one
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    sampled_at: float | None = None
    score_since: float | None = None
    poor_since: float | None = None
    last_tick: float | None = None
    pending: store.Totals = field(default_factory=store.no_totals)

    @property
    def status(self) -> str:
        if self.sessions:
            return "watching"
        return "connected" if self.sockets > 0 else "offline"


class QualityService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        media: Any,
        link: LinkQuality,
        recordings: Any = None,
        interval: float = 5.0,
        poor_alert_seconds: float = 60.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.media = media  # MediaEngine: consumers, is_live, set_rendition, router (for the speaker meter)
        self.link = link  # the floor's: one stats refresh of the workers serves both
        self.recordings = recordings  # RecordingService: the speaker's recording state and size
        self.interval = interval
        self.poor_alert_seconds = poor_alert_seconds
        self.speaker = SpeakerMeter(media)
        self._states: dict[tuple[str, str], PointState] = {}
        self._points: dict[str, dict[str, tuple[str, str]]] = {}  # conference -> point -> (name, level)
        self._counters: dict[str, Counters] = {}  # WHEP session -> its last counters
        self._task: asyncio.Task | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # --- life --------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Close the alerts a previous run left open, load the pins, listen, and start sampling."""
        async with self.sessionmaker() as db:
            await store.close_open_alerts(db, utcnow())
            pins = await store.pins(db)
            await db.commit()
        for (conference_id, point_id), pin in pins.items():
            self.state(conference_id, point_id).pinned = pin
        self.media.on_producer.append(self.speaker.on_producer)
        self._unsubscribe = self.bus.subscribe("*", self.on_bus_event)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._save_totals()  # the last seconds measured

    def state(self, conference_id: str, point_id: str) -> PointState:
        key = (conference_id, point_id)
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = PointState(conference_id, point_id, History(self.interval))
        return st

    # --- what the bus says -------------------------------------------------------------------------
    def on_bus_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        conference_id = str(event.get("conference_id") or str(event.get("topic", "")).removeprefix("conference."))
        if kind == ENDED:
            asyncio.ensure_future(self._end_alerts(conference_id))
            return
        point_id = event.get("subject_id")
        if kind not in ("consumer.joined", "consumer.left", "presence.joined", "presence.left", RENDITION_EVENT) \
                or event.get("role", "point") != "point" or not point_id:
            return
        st = self.state(conference_id, str(point_id))
        session_id = event.get("session_id")
        local = event.get("origin") in (None, getattr(self.bus, "node_id", None))
        if kind == "consumer.joined" and session_id:
            st.sessions[session_id] = event.get("token_id")
            st.left_at = None
            if st.pinned is not None and local:
                asyncio.ensure_future(self._apply_pin([session_id], st.pinned))
        elif kind == "consumer.left" and session_id:
            st.sessions.pop(session_id, None)
            st.renditions.pop(session_id, None)
            self._counters.pop(session_id, None)
            if not st.sessions and local:
                st.left_at = time.time()
        elif kind == "presence.joined":
            st.sockets += 1
        elif kind == "presence.left":
            st.sockets = max(0, st.sockets - 1)
        elif kind == RENDITION_EVENT and session_id and event.get("rendition") in RENDITIONS:
            st.renditions[session_id] = event["rendition"]
            st.rendition = event["rendition"]
            asyncio.ensure_future(self._check_alerts(st, time.time()))

    # --- the page's messages -----------------------------------------------------------------------
    async def report(self, conference_id: str, principal: Principal, message: dict[str, Any]) -> dict[str, Any]:
        """A point's page reports its playback (``quality.report``); the answer tells it the
        rendition the relay sends it and the pin, as the page shows them."""
        point_id = self._point_of(principal, "report its playback quality")
        try:
            report = parse_report(message)
        except ReportRefused as exc:
            raise QualityRefused(422, str(exc)) from None
        st = self.state(conference_id, point_id)
        consumers = self._local_consumers(conference_id, point_id)
        rendition = self._rendition(st, consumers) or report.rendition
        now = time.time()
        due = self.media.is_live(conference_id) and rendition != "audio"
        figures = st.page.update(report, now, due)
        if figures.frozen_share is not None:  # evidence for the session's adaptation
            for consumer in consumers:
                if consumer.id == report.session_id:  # this point's own session only
                    consumer.page_report(figures.frozen_share)
        st.pending.freezes += figures.freezes
        st.pending.freeze_seconds += figures.freeze_seconds
        await self._check_alerts(st, now)
        return {"type": "quality.ack", "v": 1, "session_id": report.session_id, "rendition": rendition,
                "pinned": st.pinned}

    async def pin_from_page(self, conference_id: str, principal: Principal, message: dict[str, Any]) -> dict[str, Any]:
        """``rendition.pin`` from a point's page: its token's WHEP sessions, and the point's later ones."""
        point_id = self._point_of(principal, "pin its rendition")
        pin = check_pin(message.get("rendition"))
        sessions = [c.id for c in self._local_consumers(conference_id, point_id) if getattr(c, "owner", None) == principal.token_id]
        applied = await self._pin(conference_id, point_id, pin, sessions)
        return {"type": "rendition.pinned", "v": 1, "rendition": pin, "sessions": applied}

    async def pin(self, db: AsyncSession, conference_id: str, point_id: str, pin: Any) -> dict[str, Any]:
        """The organiser pins a point's rendition (every WHEP session of the point, now and later)."""
        pin = check_pin(pin)
        try:
            await get_point(db, conference_id, point_id)
        except PointNotFound:
            raise QualityRefused(404, f"unknown point '{point_id}'") from None
        sessions = [c.id for c in self._local_consumers(conference_id, point_id)]
        applied = await self._pin(conference_id, point_id, pin, sessions)
        return {"point_id": point_id, "pinned": pin, "sessions": applied}

    def _point_of(self, principal: Principal, what: str) -> str:
        if principal.role != "point" or not principal.subject_id:
            raise QualityRefused(403, f"only a connection point can {what}")
        return principal.subject_id

    async def _pin(self, conference_id: str, point_id: str, pin: str | None, sessions: list[str]) -> int:
        if getattr(self.media, "set_rendition", None) is None:
            raise QualityRefused(503, "this media plane cannot pin renditions")
        st = self.state(conference_id, point_id)
        st.pinned = pin
        async with self.sessionmaker() as db:
            await store.set_pin(db, conference_id, point_id, pin)
            await db.commit()
        return await self._apply_pin(sessions, pin)

    async def _apply_pin(self, sessions: list[str], pin: str | None) -> int:
        applied = 0
        for session_id in sessions:
            try:
                result = self.media.set_rendition(session_id, pin)
                if asyncio.iscoroutine(result):
                    result = await result
            except Exception:
                log.exception("pinning %s to %s failed", session_id, pin)
                continue
            applied += 1 if result else 0
        return applied

    # --- sampling ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("quality sample failed")

    def _local_consumers(self, conference_id: str, point_id: str) -> list[Any]:
        return [c for c in list(self.media.consumers.values())
                if c.conference_id == conference_id and getattr(c, "subject_id", None) == point_id
                and getattr(c, "role", None) == "point"]

    async def tick(self) -> None:
        """One sample of every point followed: figures, level, history, alerts, events, totals."""
        await self.link.refresh()
        now = time.time()
        local: dict[tuple[str, str], list[Any]] = {}
        for consumer in list(self.media.consumers.values()):
            point_id = getattr(consumer, "subject_id", None)
            if point_id and getattr(consumer, "role", None) == "point":
                local.setdefault((consumer.conference_id, point_id), []).append(consumer)
        for key in local:
            self.state(*key)
        self._forget_idle(now)
        conferences = {c for c, _ in self._states} | self.speaker.conferences()
        for conference_id in conferences:
            live = self.media.is_live(conference_id)
            speaker = self.speaker.sample(conference_id) if live else {}
            sampled, changed = [], []
            for st in [s for (c, _), s in list(self._states.items()) if c == conference_id]:
                before = st.score
                if self._sample(st, local.get((conference_id, st.point_id), []), now, live, speaker.get("fps")):
                    sampled.append(st)
                    if st.score is not None and st.score != before:
                        changed.append(st)
                await self._check_alerts(st, now)
            if sampled:
                names = await self._names(conference_id, [st.point_id for st in sampled])
                topic = conference_topic(conference_id)
                for st in changed:
                    await self.bus.publish(topic, {"type": CHANGED_EVENT, "v": 1, "at": iso(now),
                                                   **self.point_view(st, names.get(st.point_id))})
                await self.bus.publish(topic, {
                    "type": SAMPLE_EVENT, "v": 1, "at": iso(now),
                    "points": [self.point_view(st, names.get(st.point_id)) for st in sampled],
                })
        await self._save_totals()

    def _sample(self, st: PointState, consumers: list[Any], now: float, live: bool, source_fps: float | None) -> bool:
        """Sample one point; False when there is nothing to sample (not watching here, no report)."""
        elapsed = min(now - st.last_tick, 2 * self.interval) if st.last_tick else self.interval
        st.last_tick = now
        page = st.page.figures if self._fresh(st, now) else None
        if not consumers and page is None:
            if st.sampled_at is not None and st.score is not None:
                st.raw.clear()
                st.previous, st.score, st.score_value = st.score, None, None
                st.reasons, st.figures, st.poor_since = [], {}, None
                st.rendition = None if not st.sessions else st.rendition
                return True  # once: it left
            return False
        rendition = self._rendition(st, consumers) or (page and st.page.last and st.page.last.rendition) or None
        st.rendition = rendition
        figures = self._server_figures(consumers, now)
        if page is not None:
            figures.update(fps=page.fps, frames_dropped_percent=page.frames_dropped_percent,
                           freeze_percent=page.freeze_percent, jitter_buffer_ms=page.jitter_buffer_ms,
                           available_kbps=page.available_kbps)
        due = live and rendition != "audio"
        if page is not None and due:
            figures["fps_shortfall_percent"] = fps_shortfall(page.fps, source_fps)
        frozen = st.page.frozen_for(now, due) if page is not None else 0.0
        figures["freeze_seconds"] = round(frozen, 1) or (page.freeze_seconds if page else 0.0)
        assessment = assess(figures, video_expected=due) if live else assess({})
        if assessment.score is not None:
            st.raw.append(assessment.score)
            value, score = smoothed(list(st.raw))
        else:
            st.raw.clear()
            value, score = None, None
        if score != st.score:
            st.score_since = now
            if st.score is not None:
                st.previous = st.score
        st.poor_since = (st.poor_since or now) if score == POOR else None
        st.score, st.score_value, st.reasons, st.figures = score, value, assessment.reasons, figures
        st.sampled_at = now
        st.history.add(iso(now) or "", {**figures, "score": score, "score_value": value, "rendition": rendition})
        if consumers and live:
            st.pending.seconds[rendition or "full"] += elapsed
            if score == POOR:
                st.pending.seconds_poor += elapsed
        return True

    def _fresh(self, st: PointState, now: float) -> bool:
        """Whether the page's last report still speaks for it (a page that stopped reporting, closed
        or cut off, is not frozen: it is gone, which the dropped alert says)."""
        return st.page.figures is not None and \
            now - st.page.last_at <= FRESH_REPORTS * max(self.interval, PAGE_REPORT_SECONDS)

    def _rendition(self, st: PointState, consumers: list[Any]) -> str | None:
        """What the point receives: the relay's own word (its sessions' stats), else the media
        events' last, else None."""
        for consumer in consumers:
            rendition = getattr(consumer, "rendition", None)
            if rendition in RENDITIONS:
                return rendition
        for session_id in st.sessions:
            if session_id in st.renditions:
                return st.renditions[session_id]
        return None

    def _server_figures(self, consumers: list[Any], now: float) -> dict[str, Any]:
        """The worst of the point's sessions (loss, jitter, RTT, repairs), their bitrates summed."""
        merged: dict[str, Any] = {}
        for consumer in consumers:
            try:
                figures = self._session_figures(consumer, now)
            except Exception:
                log.exception("quality figures of %s", getattr(consumer, "id", "?"))
                continue
            for name, value in figures.items():
                if value is None:
                    continue
                if name == "bitrate_kbps":
                    merged[name] = round((merged.get(name) or 0) + value, 1)
                else:
                    merged[name] = max(merged.get(name, value), value)
        return merged

    def _session_figures(self, consumer: Any, now: float) -> dict[str, float | None]:
        source = getattr(consumer, "last_stats", None)  # a worker's session: its last answer
        previous = self._counters.get(consumer.id)
        if source is not None and previous is not None and source is previous.source:
            return previous.figures  # the worker has not answered since: the figures stand
        stats = consumer.stats()
        video, audio = stats.get("video") or {}, stats.get("audio") or {}
        losses = [k["fraction_lost"] * 100 for k in (video, audio) if isinstance(k.get("fraction_lost"), (int, float))]

        def first(name: str) -> float | None:
            for k in (video, audio):
                if isinstance(k.get(name), (int, float)):
                    return round(float(k[name]), 1)
            return None

        counters = Counters(
            at=now, since=previous.since if previous is not None else now, source=source,
            packets=int(video.get("packets") or 0), octets=int((video.get("octets") or 0) + (audio.get("octets") or 0)),
            retransmits=int(video.get("retransmits") or 0), keyframe_requests=int(video.get("keyframe_requests") or 0),
            figures={"loss_percent": round(max(losses), 1) if losses else None, "rtt_ms": first("rtt_ms"),
                     "jitter_ms": first("jitter_ms"), "retransmit_percent": None, "keyframe_requests": None,
                     "bitrate_kbps": None},
        )
        if previous is not None and now > previous.at and counters.packets >= previous.packets:
            seconds = now - previous.at
            sent = counters.packets - previous.packets
            counters.figures["retransmit_percent"] = (
                round((counters.retransmits - previous.retransmits) * 100 / sent, 1) if sent > 0 else None
            )
            if now - counters.since >= JOIN_SECONDS:  # per 10 s
                asked = max(0, counters.keyframe_requests - previous.keyframe_requests)
                counters.figures["keyframe_requests"] = round(asked * 10 / seconds, 1)
            counters.figures["bitrate_kbps"] = round(max(0, counters.octets - previous.octets) * 8 / seconds / 1000, 1)
        self._counters[consumer.id] = counters
        return counters.figures

    def _forget_idle(self, now: float) -> None:
        """Drop points with nothing left to show: no session, socket, alert, pin or score, and no
        sample or report within the history's ten minutes (their history is over too)."""
        for key, st in list(self._states.items()):
            last = max(st.sampled_at or 0.0, st.page.last_at)
            if not (st.sessions or st.sockets or st.alerts.active or st.pinned or st.score
                    or not st.pending.empty() or now - last < HISTORY_SECONDS):
                del self._states[key]

    # --- alerts ------------------------------------------------------------------------------------
    async def _check_alerts(self, st: PointState, now: float) -> None:
        live = self.media.is_live(st.conference_id)
        due = live and st.rendition != "audio"
        held = conditions(
            now,
            watching=bool(st.sessions),
            left_at=st.left_at if live else None,
            frozen_for=st.page.frozen_for(now, due) if live and self._fresh(st, now) else 0.0,
            poor_for=now - st.poor_since if st.poor_since is not None else 0.0,
            poor_seconds=self.poor_alert_seconds,
            rendition=st.rendition if st.sessions else None,
            pinned=st.pinned,
        )
        if not live:
            held.pop("poor", None)
        started, ended = st.alerts.changes(held)
        if not started and not ended:
            return
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        names = await self._names(st.conference_id, [st.point_id])
        name, level = names.get(st.point_id, ("", ""))
        rows: list[QualityAlert] = []
        async with self.sessionmaker() as db:
            for kind, alert_id in ended:
                st.alerts.active.pop(kind, None)
                row = await store.close_alert(db, alert_id, at)
                if row is not None:
                    rows.append(row)
            for kind, reason in started:
                row = await store.open_alert(db, st.conference_id, st.point_id, name, level, kind, reason, at)
                st.alerts.active[kind] = row.id
                rows.append(row)
            await db.commit()
        for row in rows:
            await self.bus.publish(conference_topic(st.conference_id),
                                   {"type": ALERT_EVENT, "v": 1, "alert": alert_view(row)})

    async def _end_alerts(self, conference_id: str) -> None:
        """The conference ended: nothing is watched any more, so nothing is wrong with it."""
        now = time.time()
        for st in [s for (c, _), s in list(self._states.items()) if c == conference_id]:
            st.left_at = None
            st.page.frozen_since = None
            st.poor_since = None
            st.sessions.clear()
            await self._check_alerts(st, now)

    # --- storing -----------------------------------------------------------------------------------
    async def _save_totals(self) -> None:
        by_conference: dict[str, dict[str, store.Totals]] = {}
        for (conference_id, point_id), st in self._states.items():
            if not st.pending.empty():
                by_conference.setdefault(conference_id, {})[point_id] = st.pending
                st.pending = store.no_totals()
        if not by_conference:
            return
        async with self.sessionmaker() as db:
            for conference_id, totals in by_conference.items():
                await store.add_totals(db, conference_id, totals)
            await db.commit()

    async def _names(self, conference_id: str, point_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Points' names and levels (loaded again when one is missing: a point added since)."""
        known = self._points.get(conference_id)
        if known is None or any(pid not in known for pid in point_ids):
            async with self.sessionmaker() as db:
                known = self._points[conference_id] = {p.id: (p.name, p.level) for p in await list_points(db, conference_id)}
        return known

    # --- reading -----------------------------------------------------------------------------------
    def point_view(self, st: PointState | None, name_level: tuple[str, str] | None, point_id: str | None = None,
                   parent_id: str | None = None) -> dict[str, Any]:
        name, level = name_level or ("", "")
        return {
            "point_id": st.point_id if st else point_id,
            "name": name,
            "level": level,
            "parent_id": parent_id,
            "status": st.status if st else "offline",
            "rendition": st.rendition if st and st.sessions else None,
            "pinned": st.pinned if st else None,
            "score": st.score if st else None,
            "score_value": st.score_value if st else None,
            "previous": st.previous if st else None,
            "reasons": list(st.reasons) if st else [],
            "figures": dict(st.figures) if st else {},
            "sampled_at": iso(st.sampled_at) if st else None,
            "score_since": iso(st.score_since) if st and st.score else None,
            "alerts": sorted(st.alerts.active) if st else [],
        }

    def speaker_view(self, conference_id: str) -> dict[str, Any]:
        live = self.media.is_live(conference_id)
        figures = self.speaker.latest.get(conference_id, {}) if live else {}
        recording: dict[str, Any] = {"state": "off", "id": None, "size_bytes": None, "duration_seconds": None}
        manager = getattr(self.recordings, "manager", None)
        recorder = manager.active(conference_id) if manager is not None else None
        if recorder is not None:
            recording = {
                "state": "paused" if recorder.paused_for_disk else "recording",
                "id": recorder.id,
                "size_bytes": recorder.size_bytes,
                "duration_seconds": round(recorder.position, 1),
            }
        return {
            "live": live,
            **{k: figures.get(k) for k in ("width", "height", "fps", "bitrate_kbps", "keyframe_interval_seconds",
                                            "loss_percent", "rtt_ms")},
            "renditions": figures.get("renditions", []),
            "low_rendition": self.media.low_rendition(conference_id),
            "recording": recording,
        }

    async def view(self, db: AsyncSession, conference_id: str) -> dict[str, Any]:
        """The whole picture: the speaker, then every point of the conference, worst first."""
        points = await list_points(db, conference_id)
        self._points[conference_id] = {p.id: (p.name, p.level) for p in points}
        rows = [
            self.point_view(self._states.get((conference_id, p.id)), (p.name, p.level), p.id, p.parent_id)
            for p in points
        ]
        rows.sort(key=worst_first)
        alerts = sum(len(st.alerts.active) for (c, _), st in self._states.items() if c == conference_id)
        return {"v": 1, "generated_at": utcnow().isoformat(), "interval_seconds": self.interval,
                "speaker": self.speaker_view(conference_id), "points": rows, "active_alerts": alerts}

    def history(self, conference_id: str, point_id: str) -> list[dict[str, Any]]:
        st = self._states.get((conference_id, point_id))
        return st.history.list() if st else []


def worst_first(row: dict[str, Any]) -> tuple:
    """Poor before fair before good before unknown; a lower score value first; then by name."""
    value = row["score_value"] if row["score_value"] is not None else 101
    return (SORT_RANK.get(row["score"], 3), value, row["status"] != "watching", row["name"])


def alert_view(row: QualityAlert) -> dict[str, Any]:
    return {
        "id": row.id,
        "point_id": row.point_id,
        "point_name": row.point_name,
        "level": row.level,
        "kind": row.kind,
        "detail": row.detail,
        "started_at": row.started_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "active": row.ended_at is None,
    }


__all__ = ["QualityRefused", "QualityService", "alert_view"]
