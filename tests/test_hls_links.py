"""Signed HLS links and replay accounting against a real recording (issue 21, items 4 and 8).

A speaker publishes the test clip for ~12 s over WHIP; the tests run in file order on that one
recording: a live link opens only the live stream, a link keeps the expiry it was made with and
ends with its token, live/replay/download are separate scopes, and replay make-up counts the
segments the server actually sent, not what a page claims.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from media.recording.playlist import Segment, parse
from server.domain.signed_links import Grant, LinkSigner, live_segments_scope, replay_scope
from server.settings import Settings
from server.domain.recordings import LiveView
from tests.support.background import BackgroundPublisher
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until
from tests.support.mp4_download import fetch_mp4

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

PUBLISH_SECONDS = 12.0
MEMBERS = ("Claimer", "Half", "Whole", "Revoked")


@dataclass
class Scenario:
    server: ServerProcess
    conference: str
    organiser: str
    publisher: BackgroundPublisher
    members: dict[str, dict] = field(default_factory=dict)  # name -> {"member_id", "token_id", "token"}
    recording: str = ""
    state: dict = field(default_factory=dict)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def media_uris(self, playlist: str) -> list[str]:
        return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="module")
def rec(server: ServerProcess):  # type: ignore[no-untyped-def]
    conference = server.create_conference("Hội nghị liên kết ký")
    organiser = server.token(conference, "organiser", "Ban Tổ chức")
    speaker = server.token(conference, "speaker", "Hội trường")
    scenario = Scenario(server, conference, organiser, BackgroundPublisher(server.url, conference, speaker))
    with scenario.client(organiser) as c:
        for name in MEMBERS:
            member = c.post(f"/api/v1/conferences/{conference}/members", json={"name": name}).json()
            link = c.post(f"/api/v1/conferences/{conference}/members/{member['id']}/token").json()
            scenario.members[name] = {"member_id": member["id"], "token_id": link["token_id"], "token": link["token"]}
    scenario.publisher.start()
    yield scenario
    scenario.publisher.stop()


def _finish(rec: Scenario) -> dict:
    """Stop the publish and the recording once; the finished recording's detail (as the organiser)."""
    if "detail" not in rec.state:
        remaining = PUBLISH_SECONDS - rec.publisher.elapsed()
        if remaining > 0:
            time.sleep(remaining)
        rec.publisher.stop()
        with rec.client(rec.organiser) as c:
            r = c.post(f"/api/v1/conferences/{rec.conference}/recording/stop")
            assert r.status_code == 200, r.text
            rec.recording = r.json()["id"]
            rec.state["detail"] = c.get(f"/api/v1/recordings/{rec.recording}").json()
    return rec.state["detail"]


def test_live_link_opens_the_live_stream_only(rec: Scenario) -> None:
    with rec.client(rec.organiser) as c:
        link = c.post(f"/api/v1/conferences/{rec.conference}/hls-link", json={"hours": 1}).json()
    with rec.client() as c:
        playlist = wait_until(
            lambda: c.get(link["playlist_url"]),
            check=lambda r: r.status_code == 200 and r.text.count("#EXTINF") >= 2,
            timeout=30,
            what="live playlist on the live link",
        ).text
        uri = rec.media_uris(playlist)[-1]
        recording, rest = uri.split("/", 1)
        child = rest.split("?", 1)[1]
        assert c.get(f"/hls/{rec.conference}/{uri}").status_code == 200  # the live window plays
        # The same signature does not open the whole recording, nor its download.
        r = c.get(f"/hls/{rec.conference}/{recording}/index.m3u8?{child}")
        assert r.status_code == 401, r.text
        assert c.get(f"/recordings/{recording}/download.mp4?{child}").status_code == 401
        # Nor the live playlist: it is the conference's live-segments signature, the same for every
        # viewer (a caching front asks about a segment once), valid for hls_segment_link_seconds at most.
        assert c.get(f"/hls/{rec.conference}/index.m3u8?{child}").status_code == 401
        shared = _query(f"?{child}")
        lasts = Settings().hls_segment_link_seconds
        assert "." not in shared["sig"] and time.time() + lasts / 2 - 2 <= int(shared["exp"]) <= time.time() + lasts + 1
        viewer = rec.members["Whole"]["token"]

        def both() -> set[str]:  # the segment URIs a TV's link and a member's token are handed, at once
            tv, member = c.get(link["playlist_url"]), c.get(f"/hls/{rec.conference}/index.m3u8", params={"token": viewer})
            assert tv.status_code == member.status_code == 200
            return set(rec.media_uris(tv.text)) & set(rec.media_uris(member.text))

        wait_until(both, 5, "the same segment URIs for the link and the member")  # unless a boundary fell between
        # It ends at its expiry (one made with the server's key that ends in 3 s).
        soon = int(time.time()) + 3
        query = LinkSigner.load(rec.server.data_dir).query(Grant(live_segments_scope(rec.conference), soon, None))
        assert c.get(f"/hls/{rec.conference}/{recording}/{rest.split('?')[0]}?{query}").status_code == 200
        time.sleep(max(0.0, soon - time.time()) + 1.5)
        assert c.get(f"/hls/{rec.conference}/{recording}/{rest.split('?')[0]}?{query}").status_code == 401


def test_replay_link_keeps_its_expiry(rec: Scenario) -> None:
    _finish(rec)
    member = rec.members["Half"]
    # A link that ends in a few seconds, signed with the server's own key (as the API would, but
    # without its rounding of the expiry to the next ten minutes).
    signer = LinkSigner.load(rec.server.data_dir)
    exp = int(time.time()) + 6
    query = signer.query(Grant(replay_scope(rec.conference, rec.recording), exp, member["token_id"]))
    url = f"/hls/{rec.conference}/{rec.recording}/index.m3u8?{query}"
    with rec.client() as c:
        r = c.get(url)
        assert r.status_code == 200, r.text
        uris = rec.media_uris(r.text)
        assert uris and all(_query(f"/{u}")["exp"] == str(exp) for u in uris), r.text  # not renewed
        init = r.text.split('#EXT-X-MAP:URI="', 1)[1].split('"', 1)[0]
        assert _query(f"/{init}")["exp"] == str(exp)
        time.sleep(max(0.0, exp - time.time()) + 1.5)
        assert c.get(url).status_code == 401
        assert c.get(f"/hls/{rec.conference}/{rec.recording}/{uris[0]}").status_code == 401
        assert c.get(f"/hls/{rec.conference}/{rec.recording}/{init}").status_code == 401


def test_scopes_are_separate(rec: Scenario) -> None:
    detail = _finish(rec)
    replay, download = _query(detail["playlist_url"]), _query(detail["download_url"])
    assert replay["sig"] != download["sig"]
    with rec.client() as c:
        assert c.get(f"/recordings/{rec.recording}/download.mp4", params=replay).status_code == 401
        assert c.get(f"/hls/{rec.conference}/{rec.recording}/index.m3u8", params=download).status_code == 401
        assert c.get(detail["playlist_url"]).status_code == 200
        r = fetch_mp4(c, detail["download_url"])  # made on the first request (202), then served
        assert r.content[4:8] == b"ftyp"


def test_links_end_with_their_token(rec: Scenario) -> None:
    _finish(rec)
    member = rec.members["Revoked"]
    with rec.client(member["token"]) as c:
        detail = c.get(f"/api/v1/recordings/{rec.recording}").json()
    with rec.client() as c:
        playlist = c.get(detail["playlist_url"])
        assert playlist.status_code == 200, playlist.text
        segment = f"/hls/{rec.conference}/{rec.recording}/{rec.media_uris(playlist.text)[0]}"
        assert c.get(segment).status_code == 200
        fetch_mp4(c, detail["download_url"])
        # Issuing the member a new link revokes the old token: every link made for it ends too.
        with rec.client(rec.organiser) as org:
            r = org.post(f"/api/v1/conferences/{rec.conference}/members/{member['member_id']}/token")
            assert r.status_code == 201, r.text
        ended = wait_until(lambda: c.get(detail["playlist_url"]), 15, "playlist ends", check=lambda r: r.status_code == 401)
        assert "revoked" in ended.json()["detail"]
        assert c.get(segment).status_code == 401
        assert c.get(detail["download_url"]).status_code == 401


def test_links_end_when_their_token_expires(rec: Scenario) -> None:
    _finish(rec)
    ends = time.time() + 5
    with rec.client(rec.organiser) as c:
        expires_at = dt.datetime.fromtimestamp(ends, dt.UTC).isoformat()
        r = c.post(f"/api/v1/conferences/{rec.conference}/tokens",
                   json={"role": "viewer", "name": "TV", "expires_at": expires_at})
        assert r.status_code in (200, 201), r.text
        token = r.json()["token"]
    with rec.client(token) as c:
        detail = c.get(f"/api/v1/recordings/{rec.recording}").json()
    assert int(_query(detail["playlist_url"])["exp"]) > ends + 3600  # the link itself lasts 12 h
    with rec.client() as c:
        playlist = c.get(detail["playlist_url"])
        assert playlist.status_code == 200, playlist.text
        segment = f"/hls/{rec.conference}/{rec.recording}/{rec.media_uris(playlist.text)[-1]}"
        assert c.get(segment).status_code == 200
        time.sleep(max(0.0, ends - time.time()) + 0.5)
        # At the token's expiry, not a cache period later.
        assert c.get(detail["playlist_url"]).status_code == 401
        assert c.get(segment).status_code == 401
        assert c.get(detail["download_url"]).status_code == 401


def test_live_window_names() -> None:
    segments = tuple(
        Segment(uri=f"seg{i:06d}.m4s", duration=2.0, start=2.0 * i, map_uri="init000.mp4" if i < 40 else "init001.mp4")
        for i in range(50)
    )
    names = LiveView("r", segments, False).names(window=30, slack=3)
    assert names == {f"seg{i:06d}.m4s" for i in range(17, 50)} | {"init000.mp4", "init001.mp4"}
    assert "seg000016.m4s" not in LiveView("r", segments, False).names(window=30)


def test_replay_counts_served_segments(rec: Scenario) -> None:
    _finish(rec)
    cid, members = rec.conference, rec.members
    # A page's claim counts for nothing, however large (before: one POST, even of 0 s, was enough).
    with rec.client(members["Claimer"]["token"]) as c:
        for seconds in (0, 99_999):
            r = c.post(f"/api/v1/conferences/{cid}/replay-progress",
                       json={"seconds_watched": seconds, "view_id": "v", "duration_seconds": 12})
            assert r.status_code == 200, r.text
    # "Whole" plays every segment through its signed link; "Half" fetches the first two segments
    # twice with its token (a repeat adds nothing).
    with rec.client(members["Whole"]["token"]) as c:
        detail = c.get(f"/api/v1/recordings/{rec.recording}").json()
    with rec.client() as c:
        playlist = c.get(detail["playlist_url"]).text
        segments = parse(playlist)[0]
        for uri in rec.media_uris(playlist):
            assert c.get(f"/hls/{cid}/{rec.recording}/{uri}").status_code == 200
        for _ in range(2):
            for seg in segments[:2]:
                r = c.get(f"/hls/{cid}/{rec.recording}/{seg.uri}", params={"token": members["Half"]["token"]})
                assert r.status_code == 200
    recorded = sum(s.duration for s in segments)
    half = sum(s.duration for s in segments[:2])
    assert len(segments) >= 4 and half / recorded < 0.8

    with rec.client(rec.organiser) as c:
        report = c.get(f"/api/v1/conferences/{cid}/attendance/report").json()
        csv_replay = c.get(f"/api/v1/conferences/{cid}/attendance/report.csv", params={"table": "replay"})
    m = report["members"]
    assert [x["name"] for x in m["replay"]] == ["Whole"], m
    assert m["made_up_by_replay"] == 1 and m["absent"] == 3
    assert report["replay_percent"] == 80.0
    assert report["recorded_seconds"] == pytest.approx(recorded, abs=0.2)
    [line] = m["replay"]
    assert line["percent_watched"] == 100.0
    assert line["seconds_watched"] == pytest.approx(recorded, abs=0.2)
    absent = {x["name"]: x for x in m["absent_members"]}
    assert set(absent) == {"Claimer", "Half", "Revoked"}
    assert absent["Claimer"]["replay_percent"] is None  # nothing served
    assert absent["Half"]["replay_percent"] == pytest.approx(round(half * 100 / recorded, 1), abs=0.2)
    assert "Whole" in csv_replay.content.decode("utf-8-sig") and "Half" not in csv_replay.content.decode("utf-8-sig")

    with rec.client(members["Half"]["token"]) as c:
        me = c.get(f"/api/v1/conferences/{cid}/attendance/me").json()
    assert me["replay_seconds_served"] == pytest.approx(half, abs=0.2)


def test_hls_paths_map_to_their_routes_scopes() -> None:
    """``hls_file`` (what the nginx front's ``/hls-auth`` asks about) reads every HLS route's path as that
    route does: the same file, the same scopes and grant lifetime; any other path is 404."""
    from fastapi import HTTPException

    from server.api.recordings import LIVE_TTL, REPLAY_TTL, HlsFile, hls, hls_file, proxied_request

    live, replay, segments = ("live:c1",), ("replay:c1/r1",), ("live-segments:c1",)
    shapes = {
        "/hls/{conference_id}/index.m3u8": ("/hls/c1/index.m3u8", HlsFile("c1", None, "index.m3u8"), live),
        "/hls/{conference_id}/master.m3u8": ("/hls/c1/master.m3u8", HlsFile("c1", None, "master.m3u8"), live),
        "/hls/{conference_id}/low.m3u8": ("/hls/c1/low.m3u8", HlsFile("c1", None, "low.m3u8"), live),
        "/hls/{conference_id}/{recording_id}/index.m3u8":
            ("/hls/c1/r1/index.m3u8", HlsFile("c1", "r1", "index.m3u8"), replay),
        "/hls/{conference_id}/{recording_id}/master.m3u8":
            ("/hls/c1/r1/master.m3u8", HlsFile("c1", "r1", "master.m3u8"), replay),
        "/hls/{conference_id}/{recording_id}/low/index.m3u8":
            ("/hls/c1/r1/low/index.m3u8", HlsFile("c1", "r1", "index.m3u8", low=True), replay),
        "/hls/{conference_id}/{recording_id}/{name}":
            ("/hls/c1/r1/seg000007.m4s", HlsFile("c1", "r1", "seg000007.m4s"), replay + live + segments),
        "/hls/{conference_id}/{recording_id}/low/{name}":
            ("/hls/c1/r1/low/init001.mp4", HlsFile("c1", "r1", "init001.mp4", low=True), replay + live + segments),
    }
    routes = {route.path for route in hls.routes if route.path.startswith("/hls/")}
    assert routes == set(shapes), "an HLS route without its shape here, or a shape without its route"
    for path, target, scopes in shapes.values():
        assert hls_file(path) == target, path
        assert target.scopes() == scopes and target.ttl == (LIVE_TTL if scopes == live else REPLAY_TTL)
    assert HlsFile("c1", "r1", "seg000007.m4s").media and not HlsFile("c1", "r1", "index.m3u8").media
    assert HlsFile("c1", "r1", "init000.mp4", low=True).media

    unknown = [
        "/hls/c1", "/hls/c1/", "/hls/c1/other.m3u8", "/hls/c1/seg000001.m4s", "/hls/c1/r1/low",
        "/hls/c1/r1/low/master.m3u8", "/hls/c1/r1/x/seg000001.m4s", "/hls/c1/r1/seg1.m4s", "/hls/c1/r1/a.txt",
        "/hls//r1/index.m3u8", "/hls/c1/r1/index.m3u8/", "/hlsx/c1/index.m3u8", "/recordings/r1/download.mp4",
        "/hls/c1/r1/low/index.m3u8/x", "hls/c1/index.m3u8",
        # traversal: what nginx would normalise to another conference's file is no HLS path at all
        "/hls/c1/../c2/index.m3u8", "/hls/c1/r1/../../c2/r2/seg000001.m4s", "/hls/./c1/index.m3u8",
        "/hls/c1/r1/low/../seg000001.m4s", "/hls/c1/r1/seg000001.m4s/..", "/hls/../hls/c1/index.m3u8",
        "/hls/c1/r1/seg000001.m4s#/../x",
    ]
    for path in unknown:
        with pytest.raises(HTTPException) as refused:
            hls_file(path)
        assert refused.value.status_code == 404, path
    # As the front hands it over: percent-encoding decoded before the path is read, as the server does.
    for uri in ("/hls/c1/%2e%2e/c2/index.m3u8", "/hls/c1/r1%2F..%2F..%2Fc2/r2/seg000001.m4s",
                "/hls/c1/r1/seg000001.m4s%3Fexp=1", "/hls/c1/r1/seg000001.m4s%00"):
        with pytest.raises(HTTPException) as refused:
            proxied_request(uri, "")
        assert refused.value.status_code == 404, uri
    target, presented = proxied_request("/hls/c1/r1/%73eg000001.m4s?exp=5&sig=t.ab&token=s", "")
    assert target == HlsFile("c1", "r1", "seg000001.m4s")
    assert (presented.query["exp"], presented.query["sig"], presented.secret) == ("5", "t.ab", "s")
    assert proxied_request("/hls/c1/index.m3u8?token=s", "Bearer h")[1].secret == "h"  # the header first
    assert proxied_request("/hls/c1/index.m3u8", "")[1].secret is None
