"""Bad input on WHIP/WHEP gets a precise 4xx, and the server keeps serving other sessions."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiortc import RTCPeerConnection

from bench.whip_publisher import NO_ICE, publish
from tests.support.clips import light_clip
from tests.support.http import http
from tests.support.peers import subscribe

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


async def offer_sdp(kind_directions=(("video", "recvonly"), ("audio", "recvonly"))) -> str:
    pc = RTCPeerConnection(NO_ICE)
    for kind, direction in kind_directions:
        pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def post(server, path: str, body: str | bytes, token: str | None, ctype: str = "application/sdp") -> httpx.Response:
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http.post(f"{server.url}{path}", content=body, headers=headers, timeout=15)


@pytest.fixture(scope="module")
def conf(server):
    cid = server.create_conference()
    return cid, server.token(cid, "speaker"), server.token(cid, "point")


async def test_auth_errors(server, conf):
    cid, speaker, point = conf
    other = server.create_conference()
    other_speaker = server.token(other, "speaker")
    whep_offer = await offer_sdp()
    publish_offer = await offer_sdp((("video", "sendonly"), ("audio", "sendonly")))
    assert post(server, f"/whep/{cid}", whep_offer, None).status_code == 401
    r = post(server, f"/whep/{cid}", whep_offer, "not-a-token")
    assert r.status_code == 401 and "invalid" in r.json()["detail"]
    r = post(server, f"/whip/{cid}", publish_offer, server.token(cid, "viewer"))  # a viewer may watch, not publish
    assert r.status_code == 403 and "role" in r.json()["detail"]
    r = post(server, f"/whip/{cid}", publish_offer, point)  # a point publishes only while it holds the floor
    assert r.status_code == 403 and "floor has not been granted" in r.json()["detail"]
    r = post(server, f"/whip/{cid}", publish_offer, other_speaker)  # right role, wrong conference
    assert r.status_code == 403
    r = post(server, "/whep/does-not-exist", whep_offer, point)
    assert r.status_code == 404 and "unknown conference" in r.json()["detail"]


async def test_body_errors(server, conf):
    cid, speaker, point = conf
    whep_offer = await offer_sdp()
    r = post(server, f"/whep/{cid}", whep_offer, point, ctype="text/plain")
    assert r.status_code == 415 and "application/sdp" in r.json()["detail"]
    r = post(server, f"/whep/{cid}", "hello, I am not SDP", point)
    assert r.status_code == 400 and "v=0" in r.json()["detail"]
    r = post(server, f"/whep/{cid}", "", point)
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    r = post(server, f"/whep/{cid}", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", point)
    assert r.status_code == 400 and "m-line" in r.json()["detail"]
    broken = "\r\n".join(l for l in whep_offer.split("\r\n") if not l.startswith("a=fingerprint"))
    r = post(server, f"/whep/{cid}", broken, point)
    assert r.status_code == 400 and "fingerprint" in r.json()["detail"]
    # only a codec we cannot forward (PCMU audio, no video)
    pcmu = "\r\n".join(
        l
        for l in (await offer_sdp((("audio", "recvonly"),))).split("\r\n")
        if not (l.startswith("a=rtpmap") and "PCMU" not in l)
    )
    pcmu = pcmu.replace("m=audio 9 UDP/TLS/RTP/SAVPF 96 9 0 8", "m=audio 9 UDP/TLS/RTP/SAVPF 0")
    r = post(server, f"/whep/{cid}", pcmu, point)
    assert r.status_code == 400 and "no usable codec" in r.json()["detail"], r.text
    # a publisher offer sent to WHEP (wrong direction) is also unusable
    r = post(server, f"/whep/{cid}", await offer_sdp((("video", "sendonly"),)), point)
    assert r.status_code == 400 and "no usable codec" in r.json()["detail"]
    r = post(server, f"/whep/{cid}", "v=0\r\n" + "a=x\r\n" * 40000, point)
    assert r.status_code == 413
    r = post(server, f"/whep/{cid}", b"v=0\xff\xfe", point)
    assert r.status_code == 400


async def test_sessions_resources(server, conf):
    cid, speaker, point = conf
    r = httpx.options(f"{server.url}/whip/{cid}")
    assert r.status_code == 204 and r.headers["accept-post"] == "application/sdp"
    r = httpx.delete(f"{server.url}/whep/{cid}/nope", headers={"Authorization": f"Bearer {point}"})
    assert r.status_code == 404
    r = httpx.patch(f"{server.url}/whep/{cid}/nope", headers={"Authorization": f"Bearer {point}"})
    assert r.status_code == 405


async def test_server_keeps_serving_during_bad_requests(server, conf):
    cid, speaker, point = conf
    pub = await publish(server.url, cid, speaker, light_clip())
    sub = await subscribe(server.url, cid, point)
    try:
        assert await sub.wait_frames(30, timeout=15)
        for _ in range(20):
            post(server, f"/whep/{cid}", "garbage", point)
            post(server, f"/whip/{cid}", "v=0\r\n", "bad-token")
        start = sub.frames
        assert await sub.wait_frames(start + 30, timeout=10), (sub.frames, start)  # video went on
        late = await subscribe(server.url, cid, point)
        assert await late.wait_frames(10, timeout=10)
        # a session resource can be ended only by the token that created it (or the admin)
        other_point = server.token(cid, "point", "another point")
        r = httpx.delete(late.location, headers={"Authorization": f"Bearer {other_point}"})
        assert r.status_code == 403
        r = httpx.delete(late.location, headers={"Authorization": f"Bearer {point}"})
        assert r.status_code == 200
        r = httpx.delete(late.location, headers={"Authorization": f"Bearer {point}"})
        assert r.status_code == 404
        await late.close()
    finally:
        await sub.close()
        await pub.close()
