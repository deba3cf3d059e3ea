"""ORM tables. One declarative Base; every table is created by Alembic migrations, never by create_all."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return secrets.token_hex(8)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}


class Conference(Base):
    __tablename__ = "conferences"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    scheduled_start: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    scheduled_end: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AccessToken(Base):
    """A bearer credential for one role in one conference; only its SHA-256 is stored."""

    __tablename__ = "access_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked: Mapped[int] = mapped_column(Integer, default=0)
    # NULL: the role's default lifetime from created_at (settings.token_lifetime_days) applies.
    expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


# --- Conference programme, connection points, members, materials, attendance (issue 5) ----------


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored as UTC and always read back timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class AgendaItem(Base):
    """One line of a conference's programme, shown to participants in order of ``position``."""

    __tablename__ = "agenda_items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(500))
    speaker: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")


class ConnectionPoint(Base):
    """A room (province, district or commune) that follows the conference with its delegates."""

    __tablename__ = "connection_points"
    __table_args__ = (UniqueConstraint("conference_id", "name", name="uq_connection_points_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("connection_points.id", ondelete="SET NULL"), nullable=True, index=True
    )
    operator_name: Mapped[str] = mapped_column(String(200), default="")
    summoned: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Member(Base):
    """A person expected to follow the conference, at a connection point or individually."""

    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200), default="")
    point_id: Mapped[str | None] = mapped_column(
        ForeignKey("connection_points.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Material(Base):
    """An uploaded document; the file lives under a random name, the original name is metadata only."""

    __tablename__ = "materials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(500), default="")
    filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class AttendanceSession(Base):
    """One join..leave span of one token holder (WebRTC, WebSocket presence or HLS heartbeats).

    ``left_at`` is NULL while the session is open; ``last_seen_at`` is refreshed periodically so a
    session cut short by a crash can be closed at the last moment it was known to be alive.
    """

    __tablename__ = "attendance_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    session_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(16), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    subject_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    node: Mapped[str] = mapped_column(String(200), default="")
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class HeadcountReport(Base):
    """A point operator's count of delegates present; the latest one per point is current."""

    __tablename__ = "headcount_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    point_id: Mapped[str] = mapped_column(
        ForeignKey("connection_points.id", ondelete="CASCADE"), index=True
    )
    present: Mapped[int] = mapped_column(Integer)
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReplayView(Base):
    """How long one token holder watched the recording in one viewing (one page load)."""

    __tablename__ = "replay_views"
    __table_args__ = (
        UniqueConstraint("conference_id", "token_id", "view_id", name="uq_replay_views_view"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    token_id: Mapped[str] = mapped_column(String(32))
    view_id: Mapped[str] = mapped_column(String(64), default="")
    subject_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    seconds_watched: Mapped[float] = mapped_column(Float, default=0.0)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReplayServed(Base):
    """One segment of a recording that the server sent to one token holder (replay make-up).

    Counted from what was served, not from what a page reports: a member made up a missed
    conference when the distinct segments served to them cover enough of its recordings. No
    foreign key to the recording, so the count outlives a recording deleted by retention.
    """

    __tablename__ = "replay_served"

    recording_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    segment: Mapped[int] = mapped_column(Integer, primary_key=True)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    subject_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    served_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- Recordings and chapters (issue 4) ----------------------------------------------------------
from sqlalchemy import BigInteger as _BigInteger, Float as _Float  # noqa: E402


class Recording(Base):
    """One recording of a conference: an HLS directory under ``data_dir/recordings/<path>``.

    ``status`` is ``recording`` while written, ``complete`` when closed normally, ``interrupted`` when
    the server died while writing it (closed at the next start, up to the last complete segment).
    """

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="recording")
    path: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    duration_seconds: Mapped[float] = mapped_column(_Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(_BigInteger, default=0)
    segment_count: Mapped[int] = mapped_column(Integer, default=0)


class RecordingChapter(Base):
    """A named position in a recording, marked live by the organiser (e.g. "Topic 2: ...")."""

    __tablename__ = "recording_chapters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(500))
    at_seconds: Mapped[float] = mapped_column(_Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- Written questions to the chair (issue 23) ----------------------------------------------------


class Question(Base):
    """A written question from a point, a member or another token holder, answered by the chair.

    The author's name is kept as it was when asked (the export must still name a point deleted
    since); ``merged_into`` points a duplicate at the question it was merged into, which counts its
    duplicates in ``merged_count``.
    """

    __tablename__ = "questions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    author_kind: Mapped[str] = mapped_column(String(16))
    author_name: Mapped[str] = mapped_column(String(200), default="")
    point_id: Mapped[str | None] = mapped_column(
        ForeignKey("connection_points.id", ondelete="SET NULL"), nullable=True, index=True
    )
    member_id: Mapped[str | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), nullable=True, index=True
    )
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    merged_into: Mapped[str | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    merged_count: Mapped[int] = mapped_column(Integer, default=0)


# --- The floor: a connection point speaking to the hall (issue 23) -------------------------------


class FloorStateRow(Base):
    """Who holds a conference's floor now (``point_id`` NULL: nobody) and whether its queue is locked.

    One row per conference that ever used the floor; the holder's name and level are kept as they
    were when granted. ``grant_id`` names one holding, so a late timer cannot end a later one.
    """

    __tablename__ = "floor_states"

    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True
    )
    locked: Mapped[int] = mapped_column(Integer, default=0)
    grant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    point_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    point_name: Mapped[str] = mapped_column(String(200), default="")
    level: Mapped[str] = mapped_column(String(16), default="")
    subject: Mapped[str] = mapped_column(String(200), default="")
    granted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    limit_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    muted: Mapped[int] = mapped_column(Integer, default=0)


class FloorRequest(Base):
    """A raised hand: a point asking for the floor, queued in order of ``requested_at``."""

    __tablename__ = "floor_requests"
    __table_args__ = (UniqueConstraint("conference_id", "point_id", name="uq_floor_requests_point"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    point_id: Mapped[str] = mapped_column(
        ForeignKey("connection_points.id", ondelete="CASCADE"), index=True
    )
    subject: Mapped[str] = mapped_column(String(200), default="")
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FloorEvent(Base):
    """One line of the floor's history (requested, lowered, granted, ended, muted, locked...).

    The point's name is copied in, and there is no foreign key to the point, so the history and
    the report outlive a point deleted later.
    """

    __tablename__ = "floor_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    grant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    point_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    point_name: Mapped[str] = mapped_column(String(200), default="")
    level: Mapped[str] = mapped_column(String(16), default="")
    subject: Mapped[str] = mapped_column(String(200), default="")
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actor: Mapped[str] = mapped_column(String(200), default="")


# --- Webhooks: the delivery log (issue 24) --------------------------------------------------------


class WebhookDelivery(Base):
    """One event to one receiver URL: the exact body signed and sent, and where its delivery stands
    (``pending`` until the first answer, ``retrying``, ``delivered``, or ``failed`` once given up)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(String(32), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookAttempt(Base):
    """One POST of a delivery: when, how long, and the receiver's status code or the error."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)


# --- Link quality per point (issue 24) --------------------------------------------------------------


class QualityPoint(Base):
    """What a point's link gave it over the conference, for the report: seconds watched on each
    rendition, seconds its level was poor, the freezes its page reported; and the rendition an
    operator pinned for it (NULL: adaptation decides)."""

    __tablename__ = "quality_points"

    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True
    )
    point_id: Mapped[str] = mapped_column(
        ForeignKey("connection_points.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    seconds_full: Mapped[float] = mapped_column(Float, default=0.0)
    seconds_low: Mapped[float] = mapped_column(Float, default=0.0)
    seconds_audio: Mapped[float] = mapped_column(Float, default=0.0)
    seconds_poor: Mapped[float] = mapped_column(Float, default=0.0)
    freezes: Mapped[int] = mapped_column(Integer, default=0)
    freeze_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    pinned: Mapped[str | None] = mapped_column(String(8), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class QualityAlert(Base):
    """An alert for the organisers (dropped, frozen, poor, audio_only) from its start to its end
    (``ended_at`` NULL while it lasts). The point's name is copied in, as in the floor's history."""

    __tablename__ = "quality_alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    point_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    point_name: Mapped[str] = mapped_column(String(200), default="")
    level: Mapped[str] = mapped_column(String(16), default="")
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- Study essays, grading, proposals (issue 26) ---------------------------------------------------


class EssayAssignment(Base):
    """A conference's essay assignment (bài thu hoạch): one per conference. ``scale`` is the JSON list
    of grades, best first; ``accept_late`` 0 refuses submissions after the deadline."""

    __tablename__ = "essay_assignments"

    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True
    )
    prompt: Mapped[str] = mapped_column(Text)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    min_words: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_words: Mapped[int | None] = mapped_column(Integer, nullable=True)
    scale: Mapped[str] = mapped_column(Text)
    accept_late: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Essay(Base):
    """One member's essay: typed text or an uploaded file (stored under a random name, its text
    extracted into ``text`` for search where possible). Revised in place until the deadline;
    ``submitted_by`` says who sent the last version (``member``, ``point`` operator, ``organiser``)."""

    __tablename__ = "essays"
    __table_args__ = (UniqueConstraint("conference_id", "member_id", name="uq_essays_member"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    stored_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    words: Mapped[int] = mapped_column(Integer, default=0)
    late: Mapped[int] = mapped_column(Integer, default=0)
    revisions: Mapped[int] = mapped_column(Integer, default=1)
    submitted_by: Mapped[str] = mapped_column(String(16), default="member")
    submitted_by_name: Mapped[str] = mapped_column(String(200), default="")
    first_submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class EssayGrade(Base):
    """One grading of an essay; the newest row is its grade, the older ones its history."""

    __tablename__ = "essay_grades"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    essay_id: Mapped[str] = mapped_column(ForeignKey("essays.id", ondelete="CASCADE"), index=True)
    grade: Mapped[str] = mapped_column(String(40))
    comment: Mapped[str] = mapped_column(Text, default="")
    grader_token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    grader_name: Mapped[str] = mapped_column(String(200), default="")
    graded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Proposal(Base):
    """One proposal of an essay's proposals part: a short title in a field (economy, party building...).

    ``merged_into`` points a duplicate at the proposal the organiser kept; ``forwarded_at`` is set when
    the organiser marks it sent up to the competent body (``forwarded_to``)."""

    __tablename__ = "proposals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    essay_id: Mapped[str] = mapped_column(ForeignKey("essays.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(300))
    field: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    merged_into: Mapped[str | None] = mapped_column(
        ForeignKey("proposals.id", ondelete="SET NULL"), nullable=True, index=True
    )
    forwarded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    forwarded_to: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- Supervision visits and remote-supervision snapshots (issue 26) --------------------------------


class SupervisionTeam(Base):
    """A supervision team (tổ giám sát); ``point_ids`` (JSON list) are the districts or points whose
    subtrees it may visit, empty = the whole conference. Its tokens have it as subject."""

    __tablename__ = "supervision_teams"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    point_ids: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SupervisionVisit(Base):
    """A supervisor's check-in at a point: a note and a rating (1-5) of how the session was run."""

    __tablename__ = "supervision_visits"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    point_id: Mapped[str] = mapped_column(ForeignKey("connection_points.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    supervisor: Mapped[str] = mapped_column(String(200), default="")
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rating: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    visited_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SnapshotSetting(Base):
    """Whether a conference opted in to remote supervision (points send room snapshots)."""

    __tablename__ = "snapshot_settings"

    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoomSnapshot(Base):
    """One low-resolution JPEG of a point's room, stored under ``data_dir/snapshots``; deleted with
    its file after the retention period."""

    __tablename__ = "room_snapshots"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conference_id: Mapped[str] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), index=True
    )
    point_id: Mapped[str] = mapped_column(ForeignKey("connection_points.id", ondelete="CASCADE"), index=True)
    stored_name: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
