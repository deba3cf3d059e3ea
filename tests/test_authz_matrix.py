"""Authorization matrix: every route of the app, called as every kind of caller, against this table.

The routes come from the app's own route table, so a new route without an entry in ``MATRIX`` fails
(named in the message), and so does an entry whose route is gone. Each call is real HTTP (or a real
WebSocket handshake) against a real server process, with real ids behind every path parameter
(tests/support/authz_world.py), so an allowed caller reaches the handler (2xx, or a 4xx of the
handler's own: 400 for an invalid SDP offer, 409 for a recording still being written) and a refused
one is refused for who it is: 401 without a live token, 403 for the wrong role or conference.

Callers: ``CALLERS`` in the support module. "other" is an organiser of another conference; "expired"
and "revoked" are organiser tokens of this conference that worked before they ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.app import create_app
from server.settings import Settings
from tests.support.authz_world import CALLERS, PDF, World
from tests.support.http import http
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

Key = tuple[str, str]  # (method, path template); "WS" for WebSocket routes, "MOUNT" for mounted apps

CONFERENCE_ROLES = ("viewer", "member", "point", "speaker", "organiser")


def expect(ok: int, *allowed: str, **exceptions: int) -> dict[str, int]:
    """``ok`` for the admin and the ``allowed`` roles of the conference; 403 for its other roles and
    for another conference's organiser; 401 without a token or with an expired or revoked one.
    ``exceptions`` are spelled out where a caller gets something else."""
    table = {caller: ok if caller in allowed or caller == "admin" else 403 for caller in CALLERS}
    table.update(anonymous=401, expired=401, revoked=401)
    table.update(exceptions)
    return table


def public(status: int) -> dict[str, int]:
    """The same answer whoever asks (pages, health, API description)."""
    return {caller: status for caller in CALLERS}


def organiser(ok: int, **exceptions: int) -> dict[str, int]:
    return expect(ok, "organiser", **exceptions)


def participants(ok: int, **exceptions: int) -> dict[str, int]:
    return expect(ok, *CONFERENCE_ROLES, **exceptions)


@dataclass(frozen=True)
class Case:
    """How to call a route, and what each caller gets.

    ``params`` gives path parameters for one call (a fresh target for calls that consume theirs);
    the others come from ``defaults``. ``after`` cleans up after a call (path params, status).
    """

    expect: dict[str, int]
    params: Callable[[World], dict[str, str]] | None = None
    json: Any = None  # or a function of the world (e.g. for a unique name)
    content: bytes | None = None
    content_type: str | None = None
    files: dict | None = None
    query: dict[str, str] | None = None
    headers: dict[str, str] | None = None  # besides the caller's Authorization; formatted with the path params
    path: str | None = None  # the URL to request instead of the template (mounted apps)
    after: Callable[[World, dict[str, str], int], None] | None = None


SDP = "application/sdp"
BAD_SDP = b"v=0\r\nthis is not an offer\r\n"


def _whep_session(w: World) -> dict[str, str]:
    return {"session_id": w.new_whep_session()}


def _end_whep(w: World, params: dict[str, str], status: int) -> None:
    w.end_whep_session(params["session_id"])


def _live(w: World) -> dict[str, str]:
    return {"recording_id": w.ensure_live()}


def _hand_raised(w: World) -> dict[str, str]:
    """The world's point has asked for the floor (the point or the chair lowers its hand)."""
    r = http.post(f"{w.server.url}{w.api('floor/requests')}", json={"subject": "ma trận"},
                  headers={"Authorization": f"Bearer {w.tokens['point']}"}, timeout=15)
    assert r.status_code == 200, r.text
    return {"point_id": w.point}


def _floor_held(w: World) -> dict[str, str]:
    """A fresh point holds the floor (the chair ends or mutes it)."""
    r = w.admin.post(w.api("floor/grant"), json={"point_id": w.new_point()})
    assert r.status_code == 200, r.text
    return {}


def _producer(w: World) -> dict[str, str]:
    w.ensure_live()
    return {"session_id": w.producer_session()}


JPEG = b"\xff\xd8\xff\xe0" + bytes(32) + b"\xff\xd9"


def _assignment(w: World) -> dict[str, str]:
    """The conference has an essay assignment open (deadline far ahead, late essays accepted)."""
    r = w.admin.put(w.api("essays/assignment"), json={"prompt": "Bài thu hoạch", "deadline": "2100-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    return {}


def _essay_file(w: World) -> dict[str, str]:
    """The world's member has an essay with a file."""
    _assignment(w)
    r = w.admin.post(w.api(f"essays/members/{w.member}/file"), files={"file": ("bai.pdf", PDF, "application/pdf")})
    assert r.status_code == 200, r.text
    return {}


def _proposal(w: World) -> dict[str, str]:
    """A fresh member's essay with one proposal; its id."""
    _assignment(w)
    member, title = w.new_member(), w.unique("Đề xuất ma trận")
    r = w.admin.put(w.api(f"essays/members/{member}"), json={"text": "Bài", "proposals": [{"title": title, "field": "other"}]})
    assert r.status_code == 200, r.text
    [found] = w.admin.get(w.api("proposals"), params={"q": title}).json()["proposals"]
    return {"proposal_id": found["id"]}


def _snapshots_on(w: World) -> dict[str, str]:
    r = w.admin.put(w.api("supervision/snapshots/settings"), json={"enabled": True})
    assert r.status_code == 200, r.text
    return {}


def _snapshot(w: World) -> dict[str, str]:
    _snapshots_on(w)
    r = http.post(f"{w.server.url}{w.api('supervision/snapshots')}", content=JPEG, timeout=15,
                  headers={"Authorization": f"Bearer {w.tokens['point']}", "Content-Type": "image/jpeg"})
    assert r.status_code == 201, r.text
    return {"snapshot_id": r.json()["id"]}


C = "/api/v1/conferences/{conference_id}"
MATRIX: dict[Key, Case] = {
    # --- public: pages, health, API description -------------------------------------------------
    ("GET", "/"): Case(public(307)),
    ("MOUNT", "/"): Case(public(200), path="/index.html"),
    ("GET", "/healthz"): Case(public(200)),
    ("GET", "/openapi.json"): Case(public(200)),
    ("GET", "/docs"): Case(public(200)),
    ("GET", "/docs/oauth2-redirect"): Case(public(200)),
    ("GET", "/redoc"): Case(public(200)),
    # --- operations ------------------------------------------------------------------------------
    ("GET", "/metrics"): Case(expect(200)),
    ("GET", "/api/v1/media/stats"): Case(expect(200)),
    # the webhook delivery log: the admin's, and an organiser's own conference's
    ("GET", "/api/v1/webhooks/deliveries"): Case(organiser(200), query={"conference_id": "{conference_id}"}),
    # --- WHEP: discovery without a token (no ICE servers then), watch, hang up one's own session ----
    ("OPTIONS", "/whep/{conference_id}"): Case(participants(204, anonymous=204)),
    ("POST", "/whep/{conference_id}"): Case(participants(400), content=BAD_SDP, content_type=SDP),
    ("PATCH", "/whep/{conference_id}/{session_id}"): Case(public(405)),
    ("DELETE", "/whep/{conference_id}/{session_id}"): Case(
        expect(200, "viewer"), params=_whep_session, after=_end_whep
    ),
    # --- WHIP: only the speaker publishes; the speaker (owner) and the admin hang up ----------------
    ("OPTIONS", "/whip/{conference_id}"): Case(expect(204, "speaker", "point", anonymous=204)),
    ("POST", "/whip/{conference_id}"): Case(expect(400, "speaker"), content=BAD_SDP, content_type=SDP),
    ("PATCH", "/whip/{conference_id}/{session_id}"): Case(public(405)),
    ("DELETE", "/whip/{conference_id}/{session_id}"): Case(expect(200, "speaker"), params=_producer),
    ("WS", "/ws/conferences/{conference_id}"): Case(
        participants(101, anonymous=403, expired=403, revoked=403)
    ),
    # --- conferences and tokens ------------------------------------------------------------------
    ("POST", "/api/v1/conferences"): Case(expect(201), json={"title": "x"}),
    ("GET", "/api/v1/conferences"): Case(expect(200)),
    ("GET", C): Case(participants(200)),
    ("PATCH", C): Case(organiser(200), json={"description": "ma trận"}),
    ("POST", C + "/tokens"): Case(organiser(201), json={"role": "viewer"}),
    ("GET", C + "/tokens"): Case(organiser(200)),
    ("POST", C + "/tokens/{token_id}/revoke"): Case(organiser(200), params=lambda w: {"token_id": w.new_token()}),
    ("GET", C + "/agenda"): Case(participants(200)),
    ("PUT", C + "/agenda"): Case(organiser(200), json=[]),
    ("POST", C + "/agenda"): Case(organiser(201), json={"title": "x"}),
    ("DELETE", C + "/agenda/{item_id}"): Case(organiser(204), params=lambda w: {"item_id": w.new_agenda_item()}),
    # --- connection points: organisers manage; an operator sees and reports for its own point ------
    ("GET", C + "/points"): Case(expect(200, "organiser", "speaker")),  # the chair invites from it
    ("POST", C + "/points"): Case(organiser(201), json=lambda w: {"name": w.unique("Huyện"), "level": "district"}),
    ("POST", C + "/points/import"): Case(organiser(200), content=b"name,level\r\n", content_type="text/csv"),
    ("POST", C + "/points/tokens"): Case(organiser(200), json={"point_ids": []}),
    ("GET", C + "/points/{point_id}"): Case(expect(200, "organiser", "point")),
    ("PATCH", C + "/points/{point_id}"): Case(organiser(200), json={}),
    ("DELETE", C + "/points/{point_id}"): Case(organiser(204), params=lambda w: {"point_id": w.new_point()}),
    ("POST", C + "/points/{point_id}/token"): Case(organiser(201), params=lambda w: {"point_id": w.new_point()}),
    ("POST", C + "/points/{point_id}/headcount"): Case(expect(201, "organiser", "point"), json={"present": 3}),
    # --- members: organisers manage; a member sees only themself ----------------------------------
    ("GET", C + "/members"): Case(organiser(200)),
    ("POST", C + "/members"): Case(organiser(201), json={"name": "x"}),
    ("POST", C + "/members/import"): Case(organiser(200), content=b"name\r\n", content_type="text/csv"),
    ("POST", C + "/members/tokens"): Case(organiser(200), json={"member_ids": []}),
    ("GET", C + "/members/{member_id}"): Case(expect(200, "organiser", "member")),
    ("PATCH", C + "/members/{member_id}"): Case(organiser(200), json={}),
    ("DELETE", C + "/members/{member_id}"): Case(organiser(204), params=lambda w: {"member_id": w.new_member()}),
    ("POST", C + "/members/{member_id}/token"): Case(organiser(201), params=lambda w: {"member_id": w.new_member()}),
    # --- materials: organisers upload and delete, everyone of the conference reads -----------------
    ("POST", C + "/materials"): Case(organiser(201), files={"file": ("a.pdf", PDF, "application/pdf")}),
    ("GET", C + "/materials"): Case(participants(200)),
    ("GET", C + "/materials/{material_id}"): Case(participants(200)),
    ("DELETE", C + "/materials/{material_id}"): Case(
        organiser(204), params=lambda w: {"material_id": w.new_material()}
    ),
    # --- attendance: organisers see everyone's; participants report and read their own -------------
    ("GET", C + "/attendance/status"): Case(organiser(200)),
    ("GET", C + "/attendance/sessions"): Case(organiser(200)),
    ("GET", C + "/attendance/me"): Case(participants(200, admin=400)),
    ("POST", C + "/heartbeat"): Case(participants(200, admin=400)),
    ("POST", C + "/replay-progress"): Case(participants(200, admin=400), json={"seconds_watched": 1.0}),
    ("GET", C + "/attendance/report"): Case(organiser(200)),
    ("GET", C + "/attendance/report.csv"): Case(organiser(200)),
    ("GET", C + "/attendance/report.html"): Case(organiser(200)),
    # --- questions: everyone of the conference asks; the chair (organiser, speaker) moderates -------
    ("POST", C + "/questions"): Case(participants(201), json={"text": "Câu hỏi ma trận"}),
    ("GET", C + "/questions"): Case(participants(200)),
    ("GET", C + "/questions/export.csv"): Case(organiser(200)),
    ("PATCH", C + "/questions/{question_id}"): Case(expect(200, "organiser", "speaker"), json={"status": "open"}),
    ("POST", C + "/questions/{question_id}/merge"): Case(
        expect(200, "organiser", "speaker"),
        params=lambda w: {"question_id": w.new_question()},
        json=lambda w: {"into": w.question},
    ),
    # --- the floor: points ask, the chair (organiser, speaker) grants; everyone sees who speaks ----
    ("GET", C + "/floor"): Case(participants(200)),
    ("POST", C + "/floor/requests"): Case(expect(200, "point", admin=403), json={"subject": "ma trận"}),
    ("DELETE", C + "/floor/requests/{point_id}"): Case(
        expect(200, "point", "organiser", "speaker"), params=_hand_raised
    ),
    ("POST", C + "/floor/grant"): Case(
        expect(200, "organiser", "speaker"), json=lambda w: {"point_id": w.new_point(), "limit_seconds": 600}
    ),
    ("POST", C + "/floor/end"): Case(expect(200, "organiser", "speaker"), params=_floor_held),
    ("POST", C + "/floor/mute"): Case(expect(200, "organiser", "speaker"), params=_floor_held, json={"muted": True}),
    ("POST", C + "/floor/lock"): Case(expect(200, "organiser", "speaker"), json={"locked": False}),
    ("POST", C + "/floor/end-all"): Case(expect(200, "organiser", "speaker")),
    ("GET", C + "/floor/history"): Case(expect(200, "organiser", "speaker")),
    ("POST", C + "/moderation/remove"): Case(organiser(200), json=lambda w: {"point_id": w.new_point()}),
    # --- link quality: organisers watch every point and pin a point's rendition ----------------------
    ("GET", C + "/quality"): Case(organiser(200)),
    ("GET", C + "/quality/points/{point_id}/history"): Case(organiser(200)),
    ("GET", C + "/quality/alerts"): Case(organiser(200)),
    ("POST", C + "/points/{point_id}/rendition"): Case(organiser(200), json={"rendition": None}),
    # --- study essays: members (and their point's operator) submit, graders grade, organisers see all --
    ("GET", C + "/essays/assignment"): Case(participants(200), params=_assignment),
    ("PUT", C + "/essays/assignment"): Case(organiser(200), json={"prompt": "x", "deadline": "2100-01-01T00:00:00Z"}),
    ("POST", C + "/essays/graders"): Case(organiser(201), json={"name": "Tổ chấm"}),
    ("GET", C + "/essays"): Case(expect(200, "organiser", "point")),
    ("GET", C + "/essays/me"): Case(expect(200, "member", admin=400)),
    ("GET", C + "/essays/members/{member_id}"): Case(expect(200, "organiser", "member")),
    ("PUT", C + "/essays/members/{member_id}"): Case(
        expect(200, "organiser", "member"), params=_assignment, json={"text": "Bài thu hoạch ma trận"}
    ),
    ("POST", C + "/essays/members/{member_id}/file"): Case(
        expect(200, "organiser", "member"), params=_assignment, files={"file": ("bai.pdf", PDF, "application/pdf")}
    ),
    ("GET", C + "/essays/members/{member_id}/file"): Case(expect(200, "organiser", "member"), params=_essay_file),
    ("POST", C + "/essays/members/{member_id}/grade"): Case(organiser(201), params=_essay_file, json={"grade": "tốt"}),
    ("GET", C + "/essays/rollup"): Case(organiser(200)),
    ("GET", C + "/essays/rollup.csv"): Case(organiser(200)),
    ("GET", C + "/proposals"): Case(organiser(200)),
    ("GET", C + "/proposals/export.csv"): Case(organiser(200)),
    ("GET", C + "/proposals/report.html"): Case(organiser(200)),
    ("POST", C + "/proposals/{proposal_id}/merge"): Case(
        organiser(200), params=_proposal, json=lambda w: {"into": _proposal(w)["proposal_id"]}
    ),
    ("POST", C + "/proposals/{proposal_id}/forward"): Case(organiser(200), params=_proposal, json={"to": "Tỉnh ủy"}),
    # --- supervision: teams check in at points; points send room snapshots when the conference opts in --
    ("POST", C + "/supervision/teams"): Case(organiser(201), json={"name": "Tổ giám sát"}),
    ("GET", C + "/supervision/points"): Case(organiser(200)),
    ("POST", C + "/supervision/visits"): Case(organiser(201), json=lambda w: {"point_id": w.point, "rating": 4}),
    ("GET", C + "/supervision/visits"): Case(organiser(200)),
    ("GET", C + "/supervision/snapshots/settings"): Case(participants(200)),
    ("PUT", C + "/supervision/snapshots/settings"): Case(organiser(200), json={"enabled": False}),
    ("POST", C + "/supervision/snapshots"): Case(
        expect(201, "point", admin=400), params=_snapshots_on, content=JPEG, content_type="image/jpeg"
    ),
    ("GET", C + "/supervision/snapshots"): Case(organiser(200)),
    ("GET", C + "/supervision/snapshots/{snapshot_id}"): Case(organiser(200), params=_snapshot),
    # --- recordings: everyone of the conference watches; organisers edit ---------------------------
    ("GET", "/api/v1/recordings"): Case(participants(200), query={"conference_id": "{conference_id}"}),
    ("GET", "/api/v1/recordings/{recording_id}"): Case(participants(200)),
    ("DELETE", "/api/v1/recordings/{recording_id}"): Case(organiser(409), params=_live),  # still recording
    ("POST", "/api/v1/recordings/{recording_id}/chapters"): Case(
        organiser(201), json={"title": "x", "at_seconds": 1.0}
    ),
    ("DELETE", "/api/v1/recordings/{recording_id}/chapters/{chapter_id}"): Case(
        organiser(204), params=lambda w: {"chapter_id": w.new_chapter()}
    ),
    ("GET", C + "/recording"): Case(participants(200), params=_live),
    ("POST", C + "/recording/chapters"): Case(organiser(201), params=_live, json={"title": "x"}),
    ("POST", C + "/recording/stop"): Case(organiser(200), params=_live),
    ("POST", C + "/hls-link"): Case(organiser(200), json={}),
    ("GET", "/hls/{conference_id}/index.m3u8"): Case(participants(200), params=_live),
    ("GET", "/hls/{conference_id}/{recording_id}/index.m3u8"): Case(participants(200)),
    ("GET", "/hls/{conference_id}/{recording_id}/{name}"): Case(participants(200)),
    # The multivariant playlists; the world's server records no low variant (tests/support/server.py).
    ("GET", "/hls/{conference_id}/master.m3u8"): Case(participants(200), params=_live),
    ("GET", "/hls/{conference_id}/low.m3u8"): Case(participants(404), params=_live),
    ("GET", "/hls/{conference_id}/{recording_id}/master.m3u8"): Case(participants(200)),
    ("GET", "/hls/{conference_id}/{recording_id}/low/index.m3u8"): Case(participants(404)),
    ("GET", "/hls/{conference_id}/{recording_id}/low/{name}"): Case(participants(404)),
    ("GET", "/recordings/{recording_id}/download.mp4"): Case(participants(200)),
    # The nginx front's question about an HLS request (here a recording's segment, the caller's token in
    # the Authorization header, as nginx passes it on): the answer of that segment's route.
    ("GET", "/hls-auth"): Case(
        participants(204), headers={"X-Original-URI": "/hls/{conference_id}/{recording_id}/{name}"}
    ),
}


# --- the app's route table ---------------------------------------------------------------------------
def route_keys() -> set[Key]:
    """Every (method, path) the app serves, from its route table (HEAD beside GET is the same route)."""
    with TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), admin_token="route-table-only"))
        keys: set[Key] = set()
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if isinstance(route, Mount):
                keys.add(("MOUNT", route.path or "/"))
            elif isinstance(route, WebSocketRoute) or not context.methods:
                keys.add(("WS", context.path))
            else:
                methods = set(context.methods)
                if "GET" in methods:
                    methods.discard("HEAD")
                keys.update((method, context.path) for method in methods)
        return keys


APP_ROUTES = route_keys()
ALL_KEYS = sorted(APP_ROUTES | set(MATRIX))


# --- calling ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(single_server: ServerProcess) -> Iterator[World]:
    """Conferences of the matrix's own on the shared single-process server."""
    built = World(single_server)
    try:
        yield built.build()
    finally:
        built.close()


def defaults(w: World) -> dict[str, str]:
    return {
        "conference_id": w.conference,
        "point_id": w.point,
        "member_id": w.member,
        "material_id": w.material,
        "question_id": w.question,
        "recording_id": w.finished_recording,
        "name": w.segment_name,
        "session_id": "no-such-session",
    }


def call(
    w: World, key: Key, case: Case, caller: str, query_token: bool = False
) -> tuple[int, dict[str, str], httpx.Response | None]:
    """One call as ``caller``: its token in the Authorization header, or in ``?token=``."""
    method, template = key
    method = "GET" if method == "MOUNT" else method
    params = {**defaults(w), **(case.params(w) if case.params else {})}
    path = case.path or template.format(**params)
    secret = w.tokens[caller]
    if method == "WS":
        return _ws_status(w, path, secret), params, None
    headers = {"Authorization": f"Bearer {secret}"} if secret and not query_token else {}
    headers.update({k: v.format(**params) for k, v in (case.headers or {}).items()})
    if case.content_type:
        headers["Content-Type"] = case.content_type
    query = {k: v.format(**params) for k, v in (case.query or {}).items()}
    if secret and query_token:
        query["token"] = secret
    body = case.json(w) if callable(case.json) else case.json
    r = http.request(method, f"{w.server.url}{path}", headers=headers, params=query, json=body,
                     content=case.content, files=case.files, timeout=30)
    return r.status_code, params, r


def _ws_status(w: World, path: str, secret: str | None) -> int:
    """101 when the handshake is accepted (and the first event is the snapshot), else its HTTP status."""
    url = w.server.url.replace("http://", "ws://") + path + (f"?token={secret}" if secret else "")
    try:
        with connect(url, open_timeout=10, close_timeout=2) as ws:
            first = ws.recv(timeout=10)
            assert '"snapshot"' in str(first), first
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def _describe(key: Key) -> str:
    return f"{key[0]} {key[1]}"


@pytest.mark.parametrize("key", ALL_KEYS, ids=_describe)
def test_route_authorization(world: World, key: Key) -> None:
    """Every caller gets exactly the table's status; a refusal says why (JSON ``detail``)."""
    if key not in MATRIX:
        pytest.fail(f"route {_describe(key)} has no entry in MATRIX: add who may call it")
    if key not in APP_ROUTES:
        pytest.fail(f"MATRIX has an entry for {_describe(key)}, which the app no longer serves: remove it")
    case = MATRIX[key]
    assert set(case.expect) == set(CALLERS), f"{_describe(key)}: the table must name every caller"
    wrong = []
    for caller in CALLERS:
        status, params, response = call(world, key, case, caller)
        if case.after:
            case.after(world, params, status)
        if status != case.expect[caller]:
            body = " ".join(response.text.split())[:120] if response is not None else ""
            wrong.append(f"  {caller}: {status} (expected {case.expect[caller]}) {body}")
        elif response is not None and status in (401, 403):
            assert response.json().get("detail"), f"{_describe(key)} as {caller}: a refusal without a reason"
    assert not wrong, f"{_describe(key)}:\n" + "\n".join(wrong)


def test_subject_tokens_reach_only_their_own_subject(world: World) -> None:
    """A point's operator and a member are allowed on a point or member route only for themselves."""
    other_point, other_member = world.new_point(), world.new_member()
    cases = [
        ("point", "GET", world.api(f"points/{other_point}"), None),
        ("point", "POST", world.api(f"points/{other_point}/headcount"), {"present": 1}),
        ("member", "GET", world.api(f"members/{other_member}"), None),
    ]
    with httpx.Client(base_url=world.server.url, timeout=15) as c:
        for caller, method, path, body in cases:
            r = c.request(method, path, json=body, headers={"Authorization": f"Bearer {world.tokens[caller]}"})
            assert r.status_code == 403, f"{caller} {method} {path}: {r.status_code} {r.text}"


# Routes whose clients cannot send an Authorization header (media players, WHIP/WHEP clients given a
# bare URL; WebSockets are called with ?token= in the matrix already): only these honour ?token=.
QUERY_TOKEN_ROUTES: set[Key] = {
    ("OPTIONS", "/whep/{conference_id}"),
    ("POST", "/whep/{conference_id}"),
    ("DELETE", "/whep/{conference_id}/{session_id}"),
    ("OPTIONS", "/whip/{conference_id}"),
    ("POST", "/whip/{conference_id}"),
    ("DELETE", "/whip/{conference_id}/{session_id}"),
    ("GET", "/hls/{conference_id}/index.m3u8"),
    ("GET", "/hls/{conference_id}/{recording_id}/index.m3u8"),
    ("GET", "/hls/{conference_id}/{recording_id}/{name}"),
    ("GET", "/hls/{conference_id}/master.m3u8"),
    ("GET", "/hls/{conference_id}/low.m3u8"),
    ("GET", "/hls/{conference_id}/{recording_id}/master.m3u8"),
    ("GET", "/hls/{conference_id}/{recording_id}/low/index.m3u8"),
    ("GET", "/hls/{conference_id}/{recording_id}/low/{name}"),
    ("GET", "/recordings/{recording_id}/download.mp4"),
}


@pytest.mark.parametrize("key", sorted(set(MATRIX) & APP_ROUTES - {k for k in MATRIX if k[0] == "WS"}), ids=_describe)
def test_query_token_only_where_headers_cannot_go(world: World, key: Key) -> None:
    """The admin token in ``?token=`` works like the header on media, HLS and download routes, and
    like no token at all elsewhere (a secret in a URL ends up in histories, proxies' logs, Referers)."""
    case = MATRIX[key]
    status, params, response = call(world, key, case, "admin", query_token=True)
    if case.after:
        case.after(world, params, status)
    expected = case.expect["admin" if key in QUERY_TOKEN_ROUTES else "anonymous"]
    detail = response.text[:200] if response is not None else ""
    assert status == expected, f"{_describe(key)} with ?token=: {status}, expected {expected}: {detail}"


def test_only_the_admin_manages_organiser_tokens(world: World) -> None:
    """An organiser issues and revokes the other roles' tokens, never an organiser's (not even its own)."""
    organiser = {"Authorization": f"Bearer {world.tokens['organiser']}"}
    with httpx.Client(base_url=world.server.url, headers=organiser, timeout=15) as c:
        assert c.post(world.api("tokens"), json={"role": "organiser"}).status_code == 403
        another = world.admin.post(world.api("tokens"), json={"role": "organiser"}).json()["id"]
        for target in (world.token_ids["organiser"], another):
            r = c.post(world.api(f"tokens/{target}/revoke"))
            assert r.status_code == 403, r.text
    assert world.get_conference_as("organiser") == 200


def test_ids_of_another_conference_are_unknown_here(world: World) -> None:
    """An organiser may name another conference's objects under its own conference's paths: they are
    not found (404) or refused as references (422), and they are left as they were."""
    b = world.other_conference
    organiser = {"Authorization": f"Bearer {world.tokens['organiser']}"}
    theirs = {"Authorization": f"Bearer {world.tokens['other']}"}
    with httpx.Client(base_url=world.server.url, timeout=15, headers=theirs) as other:
        body = {"name": "Tỉnh B", "level": "province"}
        point = other.post(f"/api/v1/conferences/{b}/points", json=body).json()["id"]
        member = other.post(f"/api/v1/conferences/{b}/members", json={"name": "Người B"}).json()["id"]
        item = other.post(f"/api/v1/conferences/{b}/agenda", json={"title": "Mục B"}).json()["id"]
        token = other.post(f"/api/v1/conferences/{b}/tokens", json={"role": "viewer"}).json()["id"]
        files = {"file": ("b.pdf", PDF, "application/pdf")}
        material = other.post(f"/api/v1/conferences/{b}/materials", files=files).json()["id"]
        question = other.post(f"/api/v1/conferences/{b}/questions", json={"text": "Câu hỏi B"}).json()["id"]
        calls = [
            ("GET", f"points/{point}", None, 404),
            ("PATCH", f"points/{point}", {"name": "taken over"}, 404),
            ("DELETE", f"points/{point}", None, 404),
            ("POST", f"points/{point}/token", None, 404),
            ("POST", f"points/{point}/headcount", {"present": 1}, 404),
            ("GET", f"quality/points/{point}/history", None, 404),
            ("POST", f"points/{point}/rendition", {"rendition": "audio"}, 404),
            ("POST", "points", {"name": "child", "level": "district", "parent_id": point}, 422),
            ("POST", "points/tokens", {"point_ids": [point]}, 422),
            ("GET", f"members/{member}", None, 404),
            ("PATCH", f"members/{member}", {"name": "taken over"}, 404),
            ("DELETE", f"members/{member}", None, 404),
            ("POST", f"members/{member}/token", None, 404),
            ("POST", "members", {"name": "x", "point_id": point}, 422),
            ("POST", "members/tokens", {"member_ids": [member]}, 422),
            ("DELETE", f"agenda/{item}", None, 404),
            ("GET", f"materials/{material}", None, 404),
            ("DELETE", f"materials/{material}", None, 404),
            ("POST", f"tokens/{token}/revoke", None, 404),
            ("PATCH", f"questions/{question}", {"status": "rejected"}, 404),
            ("POST", f"questions/{question}/merge", {"into": world.question}, 404),
            ("POST", f"questions/{world.question}/merge", {"into": question}, 404),
        ]
        wrong = []
        with httpx.Client(base_url=world.server.url, timeout=15, headers=organiser) as c:
            for method, tail, body, expected in calls:
                r = c.request(method, world.api(tail), json=body)
                if r.status_code != expected:
                    wrong.append(f"{method} {tail}: {r.status_code} (expected {expected}) {r.text[:120]}")
        assert not wrong, "\n".join(wrong)
        assert other.get(f"/api/v1/conferences/{b}/points/{point}").json()["name"] == "Tỉnh B"
        assert other.get(f"/api/v1/conferences/{b}/members/{member}").json()["name"] == "Người B"
        assert [i["id"] for i in other.get(f"/api/v1/conferences/{b}/agenda").json()] == [item]
        assert other.get(f"/api/v1/conferences/{b}/materials/{material}").content == PDF
        tokens = {t["id"]: t for t in other.get(f"/api/v1/conferences/{b}/tokens").json()}
        assert not tokens[token]["revoked"]
        [theirs_q] = other.get(f"/api/v1/conferences/{b}/questions").json()
        assert (theirs_q["id"], theirs_q["status"], theirs_q["merged_into"]) == (question, "open", None)
