"""A conference with something real behind every path parameter, and a token for every kind of caller.

The authorization matrix (tests/test_authz_matrix.py) calls every route as every caller. So that an
allowed call reaches its handler and a refused one is refused for who it is, not for a missing
object, the ids are real: a point, a member, a material, a finished recording (with segments) and a
live one (a speaker publishing the test clip), WHEP sessions, tokens. Calls that consume their target
(DELETE, revoke, stop) get a fresh one each time from the factories here, made with the admin token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import httpx
from aiortc import RTCPeerConnection

from tests.support.background import BackgroundPublisher
from tests.support.http import http
from tests.support.mp4_download import fetch_mp4
from bench.whip_publisher import NO_ICE
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

# Every kind of caller the matrix knows. "other" is an organiser of another conference (the strongest
# token that must not reach this one); "expired" and "revoked" are organiser tokens of this conference
# that used to work, so a route that forgets to check either lets them through.
CALLERS = (
    "anonymous", "viewer", "member", "point", "speaker", "organiser", "admin", "other", "expired", "revoked",
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
EXPIRED_AFTER = 5.0  # seconds the expired token lives: long enough to prove it worked first
WAIT = 30.0  # bound of every wait for the server (recording start, token expiry)


async def _recvonly_offer() -> str:
    pc = RTCPeerConnection(NO_ICE)
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@dataclass
class World:
    server: ServerProcess
    conference: str = ""
    other_conference: str = ""
    tokens: dict[str, str | None] = field(default_factory=dict)
    token_ids: dict[str, str] = field(default_factory=dict)
    point: str = ""
    member: str = ""
    material: str = ""
    question: str = ""
    finished_recording: str = ""
    segment_name: str = ""
    whep_offer: str = ""
    publisher: BackgroundPublisher | None = None
    _names: int = 0
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.admin = self.server.admin()

    # --- set-up ----------------------------------------------------------------------------------
    def build(self) -> World:
        self.conference = self.server.create_conference("Hội nghị ma trận quyền")
        self.other_conference = self.server.create_conference("Hội nghị khác")
        self.point = self.new_point()
        self.member = self.new_member()
        self.material = self.new_material()
        self.question = self.new_question()
        for role in ("viewer", "speaker", "organiser"):
            self._issue(role, self.conference, role)
        self._issue("point", self.conference, "point", subject_id=self.point)
        self._issue("member", self.conference, "member", subject_id=self.member)
        self._issue("other", self.other_conference, "organiser")
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=EXPIRED_AFTER)
        self._issue("expired", self.conference, "organiser", expires_at=soon.isoformat())
        self._issue("revoked", self.conference, "organiser")
        for caller in ("expired", "revoked"):  # both worked before they ended
            assert self.get_conference_as(caller) == 200, caller
        r = self.admin.post(self.api(f"tokens/{self.token_ids['revoked']}/revoke"))
        assert r.status_code == 200 and r.json()["revoked"], r.text
        self.tokens["anonymous"] = None
        self.tokens["admin"] = self.server.admin_token
        self.whep_offer = asyncio.run(_recvonly_offer())
        self._record_finished()
        self.ensure_live()
        wait_until(self._expired_listed, WAIT, "the expired token to expire", interval=0.2)
        return self

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        self.admin.close()

    def api(self, tail: str) -> str:
        return f"/api/v1/conferences/{self.conference}/{tail}"

    def _issue(self, caller: str, conference: str, role: str, **extra: str) -> None:
        body = {"role": role, "name": caller, **extra}
        r = self.admin.post(f"/api/v1/conferences/{conference}/tokens", json=body)
        assert r.status_code == 201, r.text
        self.tokens[caller] = r.json()["token"]
        self.token_ids[caller] = r.json()["id"]

    def get_conference_as(self, caller: str) -> int:
        headers = {"Authorization": f"Bearer {self.tokens[caller]}"}
        return http.get(f"{self.server.url}/api/v1/conferences/{self.conference}", headers=headers).status_code

    def _expired_listed(self) -> bool:
        rows = self.admin.get(self.api("tokens")).json()
        return any(t["id"] == self.token_ids["expired"] and t["expired"] for t in rows)

    # --- recordings ------------------------------------------------------------------------------
    def current_recording(self) -> dict | None:
        r = self.admin.get(self.api("recording"))
        return r.json() if r.status_code == 200 else None

    def _start_publisher(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        speaker = self.tokens["speaker"]
        assert speaker is not None
        self.publisher = BackgroundPublisher(self.server.url, self.conference, speaker).start()

    def _record_finished(self) -> None:
        """A recording with at least one segment, closed: replay, segments and the MP4 download."""
        self._start_publisher()
        wait_until(self._recorded, WAIT, "a recorded segment", interval=0.2)
        r = self.admin.post(self.api("recording/stop"))
        assert r.status_code == 200, r.text
        self.finished_recording = r.json()["id"]
        fetch_mp4(self.admin, f"/recordings/{self.finished_recording}/download.mp4")  # made once, then 200
        playlist = self.admin.get(f"/hls/{self.conference}/{self.finished_recording}/index.m3u8")
        assert playlist.status_code == 200, playlist.text
        uris = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
        self.segment_name = uris[0].split("?", 1)[0].rsplit("/", 1)[-1]

    def producer_session(self) -> str:
        assert self.publisher is not None and self.publisher.publisher is not None
        return self.publisher.publisher.location.rstrip("/").rsplit("/", 1)[-1]

    def _producer_alive(self) -> bool:
        if self.publisher is None or self.publisher.publisher is None:
            return False
        producers = self.admin.get("/api/v1/media/stats").json()["producers"]
        return self.producer_session() in producers

    def _recorded(self) -> bool:
        return (self.current_recording() or {}).get("segment_count", 0) >= 1

    def ensure_live(self) -> str:
        """The speaker is publishing and the conference's recording has a segment; returns its id.

        Stopping the recording or deleting the WHIP session ends either; a new publish starts both.
        (A recording without a segment yet is discarded when stopped, so the wait is for one.)
        """
        if not (self._producer_alive() and self.current_recording()):
            self._start_publisher()
        wait_until(self._recorded, WAIT, "a live recording with a segment", interval=0.2)
        return self.current_recording()["id"]  # type: ignore[index]

    # --- fresh targets for calls that consume theirs ----------------------------------------------
    def _created(self, r: httpx.Response) -> dict:
        assert r.status_code == 201, r.text
        return r.json()

    def unique(self, prefix: str) -> str:
        """A name not used before in this conference (point names are unique)."""
        self._names += 1
        return f"{prefix} {self._names}"

    def new_point(self) -> str:
        body = {"name": self.unique("Điểm"), "level": "province"}
        return self._created(self.admin.post(self.api("points"), json=body))["id"]

    def new_member(self) -> str:
        return self._created(self.admin.post(self.api("members"), json={"name": "Đảng viên"}))["id"]

    def new_material(self) -> str:
        files = {"file": ("nghi-quyet.pdf", PDF, "application/pdf")}
        return self._created(self.admin.post(self.api("materials"), files=files))["id"]

    def new_agenda_item(self) -> str:
        return self._created(self.admin.post(self.api("agenda"), json={"title": "Quán triệt nghị quyết"}))["id"]

    def new_chapter(self) -> str:
        url = f"/api/v1/recordings/{self.finished_recording}/chapters"
        return self._created(self.admin.post(url, json={"title": "Phần 1", "at_seconds": 0.5}))["id"]

    def new_token(self) -> str:
        return self._created(self.admin.post(self.api("tokens"), json={"role": "viewer"}))["id"]

    def new_question(self) -> str:
        """A question asked with a token of its own (one token may ask only 10 a minute)."""
        secret = self._created(self.admin.post(self.api("tokens"), json={"role": "viewer"}))["token"]
        r = self.admin.post(
            self.api("questions"), json={"text": "Câu hỏi ma trận"}, headers={"Authorization": f"Bearer {secret}"}
        )
        return self._created(r)["id"]

    def new_whep_session(self) -> str:
        """A viewer's WHEP session (answered, never connected): the viewer and the admin may end it."""
        r = http.post(
            f"{self.server.url}/whep/{self.conference}",
            content=self.whep_offer,
            headers={"Authorization": f"Bearer {self.tokens['viewer']}", "Content-Type": "application/sdp"},
            timeout=20,
        )
        assert r.status_code == 201, r.text
        return r.headers["location"].rstrip("/").rsplit("/", 1)[-1]

    def end_whep_session(self, session: str) -> None:
        """Leave no session behind: per-token session caps would refuse the next one."""
        r = self.admin.delete(f"/whep/{self.conference}/{session}")
        assert r.status_code in (200, 404), r.text
