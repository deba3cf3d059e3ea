"""Recordings archive, chapters, live HLS and MP4 download.

* ``/api/v1/recordings…``: the archive (any token of the conference may read; organisers edit).
* ``/api/v1/conferences/{id}/recording…``: the conference's *current* recording: mark a chapter
  at the live position, stop it, hand out a signed live link for a TV.
* ``/hls/{conference_id}/index.m3u8``: the live playlist (sliding window). ``/hls/{conference_id}/
  {recording_id}/index.m3u8``: a whole recording (EVENT while live, VOD after).
* ``/recordings/{id}/download.mp4``: the recording as one faststart MP4 (202 while it is made).
* ``master.m3u8`` beside each of those playlists: the multivariant playlist naming the full variant
  and the low one (``/hls/{conference_id}/low.m3u8`` live, ``{recording_id}/low/index.m3u8`` and its
  files for a recording), so players switch by bandwidth (``media.recording.variants``).

HLS and download URLs accept a bearer token (header or ``?token=``) or a signed ``?exp=&sig=``
query (``domain.signed_links``: live, replay and download links are separate scopes, and a link
works only while the token it was made for does). Every URI inside a served playlist is signed, so
players fetch segments without a token; a playlist fetched on a signature hands out the same expiry,
never a later one. Recording segments sent for replay are counted (``domain.replay_meter``).

``/hls-auth`` answers the nginx front (``auth_request``, config/nginx/diemcau.conf) whether an HLS
request it holds may be answered, by the very check the request's route makes (:class:`HlsGate`):
nginx then serves segments from one shared copy, whoever's link asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import QueryParams

from media.recording.files import MASTER, PLAYLIST, is_media_file
from media.recording.files import LOW_DIRECTORY
from media.recording.playlist import Segment, parse, render
from media.recording.variants import LOW_PLAYLIST, Variant
from media.recording.variants import render as render_master
from server.api.guards import conference_for, or_404
from server.db.models import Recording
from server.deps import (
    DbDep,
    LinkHoldersDep,
    PrincipalDep,
    PublicUrlDep,
    RecordingsDep,
    ReplayMeterDep,
    SettingsDep,
    authorize,
    bearer_secret,
    identify,
    presented_secret,
)
from server.domain import recordings as domain
from server.domain.replay_meter import ReplayMeter, subject_of
from server.domain.signed_links import (
    Grant, LinkHolders, LinkSigner, download_scope, live_scope, live_segments_scope, replay_scope,
)
from server.domain.tokens import ROLES, Principal
from server.settings import Settings

router = APIRouter()
api = APIRouter(tags=["recordings"])
hls = APIRouter(tags=["hls"])

MPEGURL = "application/vnd.apple.mpegurl"
LIVE_TTL = 6 * 3600.0
REPLAY_TTL = 12 * 3600.0
LIVE_WINDOW_SECONDS = 60.0
MP4_POLL_SECONDS = 2  # Retry-After of a download whose MP4 is still being made
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_token_cache: dict[str, tuple[Principal | None, float]] = {}


# --- models --------------------------------------------------------------------------------------
class RecordingOut(BaseModel):
    id: str
    conference_id: str
    status: str = Field(description="recording | complete | interrupted")
    started_at: dt.datetime
    ended_at: dt.datetime | None
    duration_seconds: float
    size_bytes: int
    segment_count: int
    live: bool = Field(description="being written right now")


class ChapterIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    at_seconds: float | None = Field(
        default=None, ge=0, description="position in the recording; default: the live position now"
    )


class ChapterOut(BaseModel):
    id: str
    title: str
    at_seconds: float
    created_at: dt.datetime


class RecordingDetail(RecordingOut):
    chapters: list[ChapterOut]
    playlist_url: str = Field(description="signed HLS playlist of the whole recording (relative URL)")
    master_url: str | None = Field(
        description="signed multivariant playlist (full and low variants; relative URL); null for a "
        "recording made before there were variants: play playlist_url"
    )
    download_url: str | None = Field(description="signed MP4 download (relative URL); null while live")


class LiveLinkIn(BaseModel):
    hours: float = Field(default=12.0, gt=0, le=24 * 30)


class LiveLinkOut(BaseModel):
    playlist_url: str
    master_url: str = Field(description="the multivariant playlist (full and low variants)")
    viewer_url: str
    expires_at: dt.datetime


# --- helpers -------------------------------------------------------------------------------------
def _same_url(request: Request) -> str:
    """The request's own path and query, relative (right behind a proxy too)."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _check_ids(*ids: str) -> None:
    if not all(_ID.match(i) for i in ids):
        raise HTTPException(404, "not found")


async def _principal_or_none(secret: str | None, db: AsyncSession, settings: Settings) -> Principal | None:
    """Resolve the caller's token, cached briefly (players poll the live playlist every 2 s): for
    ``token_check_seconds``, as long as a revoked token's WHEP sessions and WebSockets may last."""
    if not secret:
        return None
    key = hashlib.sha256(secret.encode()).hexdigest()
    now = time.monotonic()
    cached = _token_cache.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    principal = await identify(secret, settings, db)
    if len(_token_cache) > 10_000:
        _token_cache.clear()
    _token_cache[key] = (principal, now + settings.token_check_seconds)
    return principal


@dataclass(frozen=True)
class Presented:
    """The credentials an HLS or download request presents: its query (a signature's ``exp`` and
    ``sig``) and its bearer secret (the Authorization header, or ``?token=`` on these paths)."""

    query: Mapping[str, str]
    secret: str | None

    @classmethod
    def of(cls, request: Request) -> Presented:
        return cls(request.query_params, bearer_secret(request))


@dataclass(frozen=True)
class Access:
    """How an HLS or download request was let in: the grant its child URIs carry (the presented one,
    or a new one for a token), and the token holder behind it (None: the admin)."""

    grant: Grant
    token_id: str | None
    role: str | None
    subject_id: str | None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class LinkGate:
    """Lets an HLS or download request in: on a signed link whose token still works, or on a token."""

    signer: LinkSigner
    holders: LinkHolders
    settings: Settings

    async def access(
        self, presented: Presented, db: AsyncSession, conference_id: str, ttl: float, *scopes: str
    ) -> Access:
        """A valid signature for one of ``scopes`` whose token still works, or a token of ``conference_id``
        (any role; then a new grant for the first scope, made for that token, for ``ttl`` seconds)."""
        q = presented.query
        signed = q.get("sig") is not None
        for scope in scopes if signed else ():
            grant = self.signer.verify(scope, q.get("exp"), q.get("sig"))
            if grant is None:
                continue
            if grant.token_id is None:
                return Access(grant, None, None, None)
            holder = await self.holders.get(db, grant.token_id)
            if holder is None or holder.conference_id != conference_id:
                raise _unauthorized("the token this link was made for has been revoked or has expired")
            return Access(grant, holder.token_id, holder.role, holder.subject_id)
        principal = await _principal_or_none(presented.secret, db, self.settings)
        if principal is None:
            detail = "the signed link has expired or is not valid here" if signed else "token or signed link required"
            raise _unauthorized(detail)
        authorize(principal, conference_id, *ROLES)
        grant = self.signer.grant(scopes[0], ttl, principal.token_id)
        return Access(grant, principal.token_id, principal.role, principal.subject_id)


async def _link_gate(recordings: RecordingsDep, holders: LinkHoldersDep, settings: SettingsDep) -> LinkGate:
    return LinkGate(recordings.signer, holders, settings)


LinkGateDep = Annotated[LinkGate, Depends(_link_gate)]

_LIVE_NAMES = frozenset({PLAYLIST, MASTER, "low.m3u8"})  # /hls/{conference}/…: the live playlists
_RECORDING_NAMES = frozenset({PLAYLIST, MASTER})  # /hls/{conference}/{recording}/…, beside its segments
_LOW_NAMES = frozenset({PLAYLIST})  # /hls/{conference}/{recording}/low/…, beside its segments


@dataclass(frozen=True)
class HlsFile:
    """The file an HLS URL names: a live playlist of the conference (``recording_id`` None), or a
    recording's playlist, init or media segment (``low``: of its low variant, in ``low/``)."""

    conference_id: str
    recording_id: str | None
    name: str
    low: bool = False

    @property
    def media(self) -> bool:
        """An init or media segment (immutable), not a playlist."""
        return self.recording_id is not None and is_media_file(self.name)

    @property
    def ttl(self) -> float:
        """How long a grant made for a token lasts: the live stream's or a replay's."""
        return LIVE_TTL if self.recording_id is None else REPLAY_TTL

    def scopes(self) -> tuple[str, ...]:
        """The signed links that open it, the first also the scope of a grant made for a token: a live
        playlist the live link; a recording's playlist its replay link; its init and media segments the
        replay link, or the live one or a live playlist's segment URIs (then only the live window's, see
        :meth:`HlsGate.admit`)."""
        live = live_scope(self.conference_id)
        if self.recording_id is None:
            return (live,)
        replay = replay_scope(self.conference_id, self.recording_id)
        return (replay, live, live_segments_scope(self.conference_id)) if self.media else (replay,)

    def check(self) -> None:
        """404 unless an HLS route serves this file: ids of ``_ID``'s form (no ``..``, no ``/``, nothing
        encoded) and a name the route serves."""
        if self.recording_id is None:
            names, ids = _LIVE_NAMES, (self.conference_id,)
        else:
            names, ids = (_LOW_NAMES if self.low else _RECORDING_NAMES), (self.conference_id, self.recording_id)
        _check_ids(*ids)
        if self.name not in names and not self.media:
            raise HTTPException(404, "not found")

    def path(self, root: Path) -> Path:
        """Where a recording's file is on disk under ``root`` (the recordings' folder)."""
        assert self.recording_id is not None
        directory = root / self.conference_id / self.recording_id
        return directory / LOW_DIRECTORY / self.name if self.low else directory / self.name


def hls_file(path: str) -> HlsFile:
    """The file a (percent-decoded) HLS path names, as the HLS routes below route it; 404 for a path
    no route serves (another shape, an id with ``..`` or a character outside ``_ID``, an empty
    component, a name no route serves)."""
    parts = path.split("/")
    if parts[:2] != ["", "hls"]:
        raise HTTPException(404, "not found")
    match parts[2:]:
        case [conference_id, name]:
            target = HlsFile(conference_id, None, name)
        case [conference_id, recording_id, name]:
            target = HlsFile(conference_id, recording_id, name)
        case [conference_id, recording_id, "low", name]:
            target = HlsFile(conference_id, recording_id, name, low=True)
        case _:
            raise HTTPException(404, "not found")
    target.check()
    return target


def proxied_request(uri: str, authorization: str) -> tuple[HlsFile, Presented]:
    """The file and credentials of a request the nginx front holds: ``uri`` its path and query as the
    client sent them (``$request_uri``), ``authorization`` its Authorization header (or ""). The path is
    percent-decoded as the server decodes a request's, the query parsed as Starlette parses one."""
    raw_path, _, query = uri.partition("?")
    path = unquote(raw_path)
    params = QueryParams(query)
    return hls_file(path), Presented(params, presented_secret(authorization, path, params))


@dataclass(frozen=True)
class HlsGate:
    """Lets a request for an HLS file in: for the file's own route, and for the nginx front's
    ``/hls-auth``, which asks before it answers from its cache."""

    links: LinkGate
    service: domain.RecordingService
    meter: ReplayMeter

    async def admit(self, db: AsyncSession, target: HlsFile, presented: Presented) -> Access:
        """What the file's route checks before it answers: the path (404), a signature for one of its
        scopes whose token still works or a token of the conference (401, 403). For an init or media
        segment also: on a live link only the live window's (403), the file on disk (404); and a media
        segment let in on a replay link or a token counts as replay watched (``domain.replay_meter``,
        once per recording, token and segment however often it is asked)."""
        target.check()
        access = await self.links.access(presented, db, target.conference_id, target.ttl, *target.scopes())
        if not target.media:
            return access
        assert target.recording_id is not None
        live = live_scope(target.conference_id)
        if access.grant.scope in (live, live_segments_scope(target.conference_id)):
            view = self.service.live_view(target.conference_id)
            if (view is None or view.recording_id != target.recording_id
                    or target.name not in view.names(_live_window(self.service), low=target.low)):
                raise HTTPException(403, "a live link opens the live stream only, not the recording")
        if not target.path(self.service.root).is_file():
            raise HTTPException(404, "not found")
        replay = access.grant.scope == replay_scope(target.conference_id, target.recording_id)
        if replay and access.token_id is not None:
            subject = subject_of(access.role or "", access.subject_id)
            await self.meter.served(db, target.conference_id, target.recording_id, target.name, access.token_id,
                                    subject)
        return access


async def _hls_gate(links: LinkGateDep, recordings: RecordingsDep, meter: ReplayMeterDep) -> HlsGate:
    return HlsGate(links, recordings, meter)


HlsGateDep = Annotated[HlsGate, Depends(_hls_gate)]


def _live_window(service: domain.RecordingService) -> int:
    return max(6, int(LIVE_WINDOW_SECONDS / service.segment_seconds))


async def _load(db: AsyncSession, recording_id: str, principal: Principal, *roles: str) -> Recording:
    row = await or_404(
        domain.get_recording(db, recording_id), domain.RecordingNotFound, f"unknown recording '{recording_id}'"
    )
    authorize(principal, row.conference_id, *roles)
    return row


def _chapter_out(c) -> ChapterOut:  # type: ignore[no-untyped-def]
    return ChapterOut(id=c.id, title=c.title, at_seconds=c.at_seconds, created_at=domain.aware(c.created_at))


async def _detail(
    service: domain.RecordingService, db: AsyncSession, row: Recording, principal: Principal
) -> RecordingDetail:
    """The links are made for the caller's token: they end with it, and replay is counted for it."""
    base = RecordingOut(**service.overlay(row))
    replay = service.signer.sign(replay_scope(row.conference_id, row.id), REPLAY_TTL, principal.token_id)
    download = service.signer.sign(download_scope(row.conference_id, row.id), REPLAY_TTL, principal.token_id)
    chapters = [_chapter_out(c) for c in await domain.list_chapters(db, row.id)]
    has_variants = base.live or service.variants(row.conference_id, row.id) is not None
    return RecordingDetail(
        **base.model_dump(),
        chapters=chapters,
        playlist_url=f"/hls/{row.conference_id}/{row.id}/index.m3u8?{replay}",
        master_url=f"/hls/{row.conference_id}/{row.id}/master.m3u8?{replay}" if has_variants else None,
        download_url=None if base.live else f"/recordings/{row.id}/download.mp4?{download}",
    )


def _cache_control(request: Request, directives: str) -> str:
    """A playlist's: its body carries the requester's own signatures. ``public`` when the request's
    credential is in its URL (``?token=`` or a signature), so a shared cache keys the copy by it and
    serves it only to holders of that URL (the nginx front asks ``/hls-auth`` first; another cache may
    answer a link that has ended for the copy's max-age, with a playlist whose segments the server then
    refuses); ``private`` when it came in the Authorization header, which is not part of a cache's key."""
    return f"{'private' if 'authorization' in request.headers else 'public'}, {directives}"


def _playlist(request: Request, service: domain.RecordingService, body: str, *, live: bool) -> Response:
    """A live playlist may be cached for half a segment (a proxy then answers the reloads of the
    viewers of one shared link); a finished one for a minute."""
    age = int(service.segment_seconds / 2) if live else 60
    cache = _cache_control(request, f"max-age={age}")
    return Response(body, media_type=MPEGURL, headers={"Cache-Control": cache})


# --- archive -------------------------------------------------------------------------------------
@api.get("/api/v1/recordings", response_model=list[RecordingOut])
async def list_recordings(
    db: DbDep,
    service: RecordingsDep,
    principal: PrincipalDep,
    conference_id: str | None = Query(default=None, description="only this conference's recordings"),
) -> list[RecordingOut]:
    """Newest first. A conference token sees its own conference's recordings; the admin sees all."""
    if not principal.is_admin:
        if conference_id is not None and conference_id != principal.conference_id:
            raise HTTPException(403, "token belongs to another conference")
        conference_id = principal.conference_id
    return [RecordingOut(**service.overlay(r)) for r in await domain.list_recordings(db, conference_id)]


@api.get("/api/v1/recordings/{recording_id}", response_model=RecordingDetail)
async def get_recording(
    recording_id: str,
    db: DbDep,
    service: RecordingsDep,
    principal: PrincipalDep,
) -> RecordingDetail:
    """Details, chapters, and signed playlist/download links (valid for at least 12 hours)."""
    row = await _load(db, recording_id, principal, *ROLES)
    return await _detail(service, db, row, principal)


@api.delete("/api/v1/recordings/{recording_id}", status_code=204)
async def delete_recording(
    recording_id: str,
    db: DbDep,
    service: RecordingsDep,
    principal: PrincipalDep,
) -> Response:
    """Delete a finished recording and its files (organiser). 409 while it is being written."""
    row = await _load(db, recording_id, principal, "organiser")
    try:
        await service.delete(db, row)
    except domain.RecordingBusy as exc:
        raise HTTPException(409, str(exc))
    return Response(status_code=204)


async def _add_chapter(
    service: domain.RecordingService, db: AsyncSession, row: Recording, body: ChapterIn
) -> ChapterOut:
    at = body.at_seconds
    if at is None:
        at = service.position(row.id)
        if at is None:
            raise HTTPException(422, "at_seconds is required: the recording is not live")
    chapter = _chapter_out(await domain.add_chapter(db, row.id, body.title, at))
    return chapter


@api.post("/api/v1/recordings/{recording_id}/chapters", status_code=201, response_model=ChapterOut)
async def add_chapter(
    recording_id: str,
    body: ChapterIn,
    db: DbDep,
    service: RecordingsDep,
    principal: PrincipalDep,
) -> ChapterOut:
    """Mark a chapter (organiser). Without ``at_seconds`` it starts at the live position now."""
    row = await _load(db, recording_id, principal, "organiser")
    return await _add_chapter(service, db, row, body)


@api.delete("/api/v1/recordings/{recording_id}/chapters/{chapter_id}", status_code=204)
async def delete_chapter(
    recording_id: str,
    chapter_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> Response:
    await _load(db, recording_id, principal, "organiser")
    if not await domain.delete_chapter(db, recording_id, chapter_id):
        raise HTTPException(404, "unknown chapter")
    return Response(status_code=204)


# --- the conference's current recording ---------------------------------------------------------
async def _current(
    service: domain.RecordingService, db: AsyncSession, conference_id: str, principal: Principal, *roles: str
) -> Recording:
    await conference_for(db, conference_id, principal, *roles)
    recorder = service.manager.active(conference_id)
    if recorder is None:
        raise HTTPException(404, "the conference is not being recorded")
    try:
        return await domain.get_recording(db, recorder.id)
    except domain.RecordingNotFound:  # its row is being inserted this very moment
        raise HTTPException(404, "the conference is not being recorded yet")


@api.get("/api/v1/conferences/{conference_id}/recording", response_model=RecordingDetail)
async def current_recording(
    conference_id: str,
    db: DbDep,
    service: RecordingsDep,
    principal: PrincipalDep,
) -> RecordingDetail:
    """The recording being written for this conference (404 when none)."""
    return await _detail(service, db, await _current(service, db, conference_id, principal, *ROLES), principal)


@api.post(
    "/api/v1/conferences/{conference_id}/recording/chapters", status_code=201, response_model=ChapterOut
)
async def add_live_chapter(
    conference_id: str,
    body: ChapterIn,
    db: DbDep,
    service: RecordingsDep,
    principal: PrincipalDep,
) -> ChapterOut:
    """Organiser, during the conference: "a new topic starts now" on the current recording."""
    row = await _current(service, db, conference_id, principal, "organiser")
    return await _add_chapter(service, db, row, body)


@api.post("/api/v1/conferences/{conference_id}/recording/stop", response_model=RecordingOut)
async def stop_recording(
    conference_id: str,
    db: DbDep,
    service: RecordingsDep,
    principal: PrincipalDep,
) -> RecordingOut:
    """Close the current recording now (VOD playlist, MP4 available). A later publish starts a new one;
    otherwise a recording closes by itself when the speaker has been gone for a while."""
    row = await _current(service, db, conference_id, principal, "organiser")
    await service.stop(conference_id)
    try:
        await db.refresh(row)
    except InvalidRequestError:  # nothing had been written yet: the empty recording was discarded
        raise HTTPException(404, "nothing was recorded yet; the empty recording was discarded") from None
    return RecordingOut(**service.overlay(row))


@api.post("/api/v1/conferences/{conference_id}/hls-link", response_model=LiveLinkOut)
async def live_link(
    conference_id: str,
    body: LiveLinkIn,
    db: DbDep,
    service: RecordingsDep,
    base: PublicUrlDep,
    principal: PrincipalDep,
) -> LiveLinkOut:
    """A signed link to the live stream for a TV or a shared screen, no token inside (organiser).
    It opens the live window only (not the recording), and ends early if the organiser's token does."""
    await conference_for(db, conference_id, principal, "organiser")
    seconds = body.hours * 3600
    grant = service.signer.grant(live_scope(conference_id), seconds, principal.token_id)
    query, exp = service.signer.query(grant), grant.exp
    return LiveLinkOut(
        playlist_url=f"{base}/hls/{conference_id}/index.m3u8?{query}",
        master_url=f"{base}/hls/{conference_id}/master.m3u8?{query}",
        viewer_url=f"{base}/viewer.html#conference={conference_id}&{query}",
        expires_at=dt.datetime.fromtimestamp(exp, dt.UTC),
    )


# --- HLS -----------------------------------------------------------------------------------------
@hls.get("/hls/{conference_id}/index.m3u8", response_class=Response, responses={200: {"content": {MPEGURL: {}}}})
async def live_playlist(
    conference_id: str, request: Request, db: DbDep, service: RecordingsDep, gate: HlsGateDep
) -> Response:
    """Live playlist (last minute of segments). Token of the conference, or a signed live link.
    404 while nothing has been recorded yet: players retry."""
    access = await gate.admit(db, HlsFile(conference_id, None, PLAYLIST), Presented.of(request))
    view = service.live_view(conference_id)
    if view is None:
        raise HTTPException(404, "not live", headers={"Retry-After": "2"})
    body = render(
        view.segments,
        nominal_duration=service.segment_seconds,
        ended=view.ended,
        window=_live_window(service),
        uri_prefix=f"{view.recording_id}/",
        query=_segments_query(gate, conference_id, access),
    )
    return _playlist(request, service, body, live=True)


@hls.get("/hls/{conference_id}/master.m3u8", response_class=Response, responses={200: {"content": {MPEGURL: {}}}})
async def live_master(
    conference_id: str, request: Request, db: DbDep, service: RecordingsDep, gate: HlsGateDep
) -> Response:
    """Live multivariant playlist: the full variant (``index.m3u8``) and the low one (``low.m3u8``)
    with their bitrates, sizes, codecs and frame rates; players switch between them by bandwidth.
    404 until both have been recorded (the low one is waited for a few segments)."""
    access = await gate.admit(db, HlsFile(conference_id, None, MASTER), Presented.of(request))
    view = service.live_view(conference_id)
    variants = view.variants() if view is not None else []
    if view is None or not variants:
        raise HTTPException(404, "not live", headers={"Retry-After": "2"})
    return _master(request, service, variants, access, {LOW_PLAYLIST: "low.m3u8"}, live=not view.ended)


@hls.get("/hls/{conference_id}/low.m3u8", response_class=Response, responses={200: {"content": {MPEGURL: {}}}})
async def live_low_playlist(
    conference_id: str, request: Request, db: DbDep, service: RecordingsDep, gate: HlsGateDep
) -> Response:
    """The live playlist of the low variant (640x360), as ``index.m3u8`` is of the full one."""
    access = await gate.admit(db, HlsFile(conference_id, None, "low.m3u8"), Presented.of(request))
    view = service.live_view(conference_id)
    if view is None or not view.low:
        raise HTTPException(404, "no low variant live", headers={"Retry-After": "2"})
    body = render(
        view.low,
        nominal_duration=service.segment_seconds,
        ended=view.ended,
        window=_live_window(service),
        uri_prefix=f"{view.recording_id}/{LOW_DIRECTORY}/",
        query=_segments_query(gate, conference_id, access),
    )
    return _playlist(request, service, body, live=True)


def _segments_query(gate: HlsGate, conference_id: str, access: Access) -> str:
    """What a live playlist's segment URIs carry: the conference's shared live-segments signature
    (``hls_segment_link_seconds``; never past the link the playlist was fetched on), the same for every
    viewer, so the nginx front asks ``/hls-auth`` about each segment once, not once per viewer."""
    signer = gate.service.signer
    ttl = gate.links.settings.hls_segment_link_seconds
    return signer.query(signer.shared(live_segments_scope(conference_id), ttl, access.grant.exp))


def _master(
    request: Request, service: domain.RecordingService, variants: list[Variant], access: Access,
    uris: dict[str, str], *, live: bool,
) -> Response:
    """The multivariant playlist, its variants' URIs signed with the presented expiry."""
    body = render_master(variants, uris, service.signer.query(access.grant))
    return _playlist(request, service, body, live=live)


@hls.get(
    "/hls/{conference_id}/{recording_id}/master.m3u8",
    response_class=Response,
    responses={200: {"content": {MPEGURL: {}}}},
)
async def recording_master(
    conference_id: str, recording_id: str, request: Request, db: DbDep, service: RecordingsDep, gate: HlsGateDep
) -> Response:
    """A whole recording's multivariant playlist (``index.m3u8`` and ``low/index.m3u8``). 404 for a
    recording made before there were variants: its ``index.m3u8`` plays on its own."""
    access = await gate.admit(db, HlsFile(conference_id, recording_id, MASTER), Presented.of(request))
    variants = service.variants(conference_id, recording_id)
    if variants is None:
        raise HTTPException(404, "this recording has a single playlist: index.m3u8")
    if not variants:
        raise HTTPException(404, "nothing recorded yet", headers={"Retry-After": "2"})
    live = service.live_recorder(recording_id) is not None
    return _master(request, service, variants, access, {}, live=live)


@hls.get(
    "/hls/{conference_id}/{recording_id}/low/index.m3u8",
    response_class=Response,
    responses={200: {"content": {MPEGURL: {}}}},
)
async def recording_low_playlist(
    conference_id: str, recording_id: str, request: Request, db: DbDep, service: RecordingsDep, gate: HlsGateDep
) -> Response:
    """A whole recording's low variant, as its ``index.m3u8`` is of the full one."""
    access = await gate.admit(db, HlsFile(conference_id, recording_id, PLAYLIST, low=True), Presented.of(request))
    found = service.low_playlist(conference_id, recording_id)
    if found is None:
        raise HTTPException(404, "this recording has no low variant")
    segments, ended = found
    if not segments:
        raise HTTPException(404, "nothing recorded yet", headers={"Retry-After": "2"})
    query = service.signer.query(access.grant)
    body = render(segments, nominal_duration=service.segment_seconds, ended=ended,
                  playlist_type="VOD" if ended else "EVENT", query=query)
    return _playlist(request, service, body, live=not ended)


@hls.get(
    "/hls/{conference_id}/{recording_id}/index.m3u8",
    response_class=Response,
    responses={200: {"content": {MPEGURL: {}}}},
)
async def recording_playlist(
    conference_id: str, recording_id: str, request: Request, db: DbDep, service: RecordingsDep, gate: HlsGateDep
) -> Response:
    """A whole recording: EVENT playlist while it is written (watch from the start), VOD after."""
    access = await gate.admit(db, HlsFile(conference_id, recording_id, PLAYLIST), Presented.of(request))
    query = service.signer.query(access.grant)  # the presented expiry, never a later one
    recorder = service.live_recorder(recording_id)
    if recorder is not None and recorder.conference_id == conference_id:
        segments: list[Segment] | tuple[Segment, ...] = recorder.segments
        ended, kind = False, "EVENT"
    else:
        path = service.root / conference_id / recording_id / "index.m3u8"
        if not path.exists():
            raise HTTPException(404, "unknown recording")
        segments, ended = parse(path.read_text())
        kind = "VOD" if ended else "EVENT"
    if not segments:
        raise HTTPException(404, "nothing recorded yet", headers={"Retry-After": "2"})
    body = render(segments, nominal_duration=service.segment_seconds, ended=ended, playlist_type=kind, query=query)
    return _playlist(request, service, body, live=not ended)


@hls.get("/hls/{conference_id}/{recording_id}/{name}", response_class=FileResponse)
async def media_file(
    conference_id: str, recording_id: str, name: str, request: Request, db: DbDep, gate: HlsGateDep
) -> FileResponse:
    """An init or media segment (fMP4). Immutable once it exists. A live link fetches only the live
    window's files; a media segment sent on a replay link or a token counts as replay watched."""
    return await _media_file(HlsFile(conference_id, recording_id, name), request, db, gate)


@hls.get("/hls/{conference_id}/{recording_id}/low/{name}", response_class=FileResponse)
async def low_media_file(
    conference_id: str, recording_id: str, name: str, request: Request, db: DbDep, gate: HlsGateDep
) -> FileResponse:
    """An init or media segment of the low variant, as of the full one (a segment counts as replay of
    the same stretch of the recording)."""
    return await _media_file(HlsFile(conference_id, recording_id, name, low=True), request, db, gate)


SEGMENT_CACHE_CONTROL = "private, max-age=60, immutable"
SHARED_AUTH_REUSE = 10  # seconds nginx may reuse a yes to a live segment on the shared signature


async def _media_file(target: HlsFile, request: Request, db: AsyncSession, gate: HlsGate) -> FileResponse:
    """The segment, once :meth:`HlsGate.admit` let the request in, with ``SEGMENT_CACHE_CONTROL``.

    A segment's bytes are the same for everyone, but whether a request may have them depends on a link
    that ends with its token. ``private``: no shared cache may store a segment on its own authority,
    since one keyed by the URL would go on answering a revoked signed link (or ``?token=``) for as long
    as the copy lasts, without asking the server. The shipped nginx front stores segments anyway, one
    copy for all viewers (config/nginx/diemcau.conf ignores this header there), because it asks
    ``/hls-auth`` before every answer. ``max-age=60``: the browser that fetched a segment may replay
    it from its own cache for a minute (seeking back), no longer than a finished recording's playlist
    may be reused, so a revoked link plays nothing for long there either. ``immutable``: never
    revalidated while fresh, the file never changes."""
    await gate.admit(db, target, Presented.of(request))
    return FileResponse(target.path(gate.service.root), media_type="video/mp4",
                        headers={"Cache-Control": SEGMENT_CACHE_CONTROL})


@hls.get(
    "/hls-auth",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "the request may be answered"},
        400: {"description": "no X-Original-URI"},
        401: {"description": "no credential, or one that is not valid for it"},
        403: {"description": "refused for who asks, or for what it names"},
    },
)
async def hls_auth(
    request: Request,
    db: DbDep,
    gate: HlsGateDep,
    x_original_uri: Annotated[str | None, Header(description="the HLS request's path and query as sent")] = None,
) -> Response:
    """For the nginx front (``auth_request``): may the request for ``X-Original-URI`` (an ``/hls/…``
    path and its query, nginx's ``$request_uri``), with this request's Authorization header, be
    answered? The check of that file's route (:meth:`HlsGate.admit`), a replay segment counted as the
    route counts it: 204 yes, 401 or 403 no. What the route would answer 404 (a path no HLS route
    serves, a segment not on disk) is 403 here, since nginx passes on 401 and 403 only (any other
    answer becomes a 500). A 204 says nginx may reuse it until the end of this second
    (``X-Accel-Expires``), and no longer, so the front stops a revoked token's links at most
    ``token_check_seconds`` + 1 s after the revocation; a segment on a live playlist's shared signature
    (no token behind it) ``SHARED_AUTH_REUSE`` seconds, within the signature's expiry."""
    if not x_original_uri:
        raise HTTPException(400, "X-Original-URI (the HLS request's path and query) is required")
    try:
        target, presented = proxied_request(x_original_uri, request.headers.get("authorization", ""))
        access = await gate.admit(db, target, presented)
    except HTTPException as exc:
        if exc.status_code != 404:
            raise
        raise HTTPException(403, f"not found: {exc.detail}") from None
    until = int(time.time())
    if access.grant.scope == live_segments_scope(target.conference_id):  # no token to outlive: its expiry
        until = min(access.grant.exp, until + SHARED_AUTH_REUSE)
    return Response(status_code=204, headers={"Cache-Control": "no-store", "X-Accel-Expires": f"@{until}"})


@hls.get(
    "/recordings/{recording_id}/download.mp4",
    response_class=FileResponse,
    responses={202: {"description": "the MP4 is being made: `status`, `progress` (0-1); poll `Location`"}},
)
async def download(
    recording_id: str, request: Request, db: DbDep, service: RecordingsDep, gate: LinkGateDep
) -> Response:
    """One faststart MP4 of a finished recording, remuxed from its segments (no re-encoding).
    The first request starts making it in the background and is answered 202 at once, with the
    progress and ``Location`` (this URL) to poll after ``Retry-After``; once made, the file (200,
    ranges honoured). 409 while still recording."""
    _check_ids(recording_id)
    try:
        row = await domain.get_recording(db, recording_id)
    except domain.RecordingNotFound:
        raise HTTPException(404, "unknown recording")
    scope = download_scope(row.conference_id, row.id)
    await gate.access(Presented.of(request), db, row.conference_id, REPLAY_TTL, scope)
    try:
        build = service.mp4(row)
    except domain.RecordingBusy as exc:
        raise HTTPException(409, str(exc))
    except domain.RecordingNotFound:
        raise HTTPException(404, "the recording has no media")
    if build.status == "failed":
        raise HTTPException(500, build.error)
    if build.status == "preparing":
        return JSONResponse(
            {"status": "preparing", "progress": round(build.progress, 3)},
            status_code=202,
            headers={"Location": _same_url(request), "Retry-After": str(MP4_POLL_SECONDS)},
        )
    started = domain.aware(row.started_at) or dt.datetime.now(dt.UTC)
    filename = f"recording-{row.conference_id}-{started:%Y%m%d-%H%M}.mp4"
    return FileResponse(build.path, media_type="video/mp4", filename=filename)


router.include_router(hls)  # first: home viewers' playlists and nginx's /hls-auth are most of the requests
router.include_router(api)
