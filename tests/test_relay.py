"""End-to-end relay: aiortc publisher -> server (raw RTP forwarding) -> aiortc subscribers that decode."""

from __future__ import annotations

import asyncio

import pytest

from bench.clip import test_clip
from bench.whip_publisher import publish
from tests.support.peers import delete_session, install_sync_probe, subscribe, sync_offset
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


@pytest.fixture(scope="module")
def clip():
    return test_clip()


@pytest.fixture(params=["sharded", "single"])
def relay_server(request):
    """Every relay test runs against both modes: 2 media processes, and one process."""
    return request.getfixturevalue("server" if request.param == "sharded" else "single_server")


def media_stats(server) -> dict:
    with server.admin() as c:
        return c.get("/api/v1/media/stats").json()


def _ours(server, conf: str) -> list[dict]:
    """The media stats of the conference's consumers."""
    return [v for v in media_stats(server)["consumers"].values() if v["conference"] == conf]


async def test_three_subscribers_decode_720p30(relay_server, clip):
    server = relay_server
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    subs = [await subscribe(server.url, conf, server.token(conf, "point", f"Xã {i}")) for i in range(3)]
    try:
        for sub in subs:
            assert await sub.wait_frames(90, timeout=20), f"only {sub.frames} frames"
        await asyncio.sleep(3)
        for sub in subs:
            assert sub.sizes == {(1280, 720)}
            assert sub.fps(3.0) >= 25, f"{sub.fps(3.0)} fps"
            assert sub.audio_frames > 0
        stats = media_stats(server)
        assert stats["routers"][conf]["sources"]["video"]["codec"] == "video/h264"
        assert stats["routers"][conf]["consumers"] == 3
        ours = [v for v in stats["consumers"].values() if v["conference"] == conf]
        # aiortc negotiates AES-GCM: every stream is protected by its own context (media.egress.srtp_gcm)
        assert {v[kind]["srtp"] for v in ours for kind in ("audio", "video")} == {"aes-gcm"}
        # their receiver reports are taken off the socket directly (media.transport.webrtc_transport) and still
        # reach the link-quality numbers
        assert all(v["rtcp_datagrams"] > 0 and "fraction_lost" in v["video"] for v in ours)
        assert all(v["rtcp_short_reports"] > 0 for v in ours)  # plain reports: no aiortc objects
        # ... and answer our sender reports: the round trip on loopback is a few ms at most
        assert all(0 <= v["video"]["rtt_ms"] < 500 for v in ours), ours
        # the speaker's packets, too, were taken where they arrive (and still reached everyone)
        (speaker,) = [p for p in stats["producers"].values() if p["conference"] == conf]
        assert speaker["srtp_intake_datagrams"] > 200
        # ... read a burst per wake-up (media.transport.socket_drain): a frame's packets in one read
        assert speaker["drain_datagrams"] >= speaker["srtp_intake_datagrams"]
        assert speaker["drain_datagrams"] > 1.5 * speaker["drain_wakeups"], speaker
        # every process froze its start-up objects, so full collections skip them (media.runtime.gc_pauses)
        assert all(w["gc"]["frozen"]["count"] > 10_000 for w in stats["workers"])
        # a point's audio and video share its socket: the C loop sends them together (media.egress.fanout)
        assert all(v["paired"] for v in ours)
        # ... on the socket connected to the point once DTLS was up (media.transport.pinned_path)
        assert all(v["path_pinned"] for v in ours)
        # the points' ICE consent checks (every 4-6 s) are answered from the bytes (media.transport.consent_answer)
        ours = await wait_until_async(lambda: _ours(server, conf), 10, "the points' consent checks answered",
                                      check=lambda ours: all(v["consent_answered"] > 0 for v in ours), interval=0.25)
        # ... and ours to them (media.transport.consent_check) are answered: none lost, no aioice transaction
        await wait_until_async(lambda: _ours(server, conf), 10, "our consent checks answered",
                               check=lambda ours: all(v["consent_checks"]["answered"] > 0 for v in ours), interval=0.25)
        assert all(v["consent_checks"]["lost"] == 0 for v in _ours(server, conf))
        workers = {v.get("worker", 0) for v in ours}
        # spread over both workers; the ingest keeps none (INGEST_SHARE 0) while they are up
        assert workers == ({1, 2} if len(stats["workers"]) == 3 else {0})
        for worker in stats["workers"][1:]:  # the worker reads its packets in batches and sends with GSO
            assert worker["reads"]["packets"] >= worker["reads"]["batches"] > 0
            assert worker["reads"]["send"] == "gso"
    finally:
        for sub in subs:
            await sub.close()
        await pub.close()


async def test_relay_creates_no_decoder_or_encoder(relay_server, clip):
    """The server's codec audit stays empty while it relays to subscribers that do decode."""
    server = relay_server
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    sub = await subscribe(server.url, conf, server.token(conf, "point"))
    try:
        assert await sub.wait_frames(60, timeout=20)
        stats = media_stats(server)
        assert stats["routers"][conf]["sources"]["video"]["packets"] > 100
        assert stats["codec_instances"] == {}
        assert stats["forwarding"] == "c"  # make builds the C fan-out loop; the suite runs on it
        with server.admin() as c:
            metrics = c.get("/metrics").text
        assert "diemcau_consumers" in metrics
        assert 'diemcau_codec_instances_created{codec="decoder' not in metrics
    finally:
        await sub.close()
        await pub.close()


def test_codec_audit_counts_aiortc_codecs():
    """Positive control for the test above: the audit does see codecs aiortc creates."""
    import aiortc.rtcrtpreceiver
    from aiortc.codecs import get_capabilities

    from media.runtime import codec_audit

    codec_audit.install()
    before = sum(codec_audit.created.values())
    h264 = next(c for c in get_capabilities("video").codecs if c.mimeType == "video/H264")
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    params = RTCRtpCodecParameters(mimeType=h264.mimeType, clockRate=90000, payloadType=102)
    aiortc.rtcrtpreceiver.get_decoder(params)
    assert sum(codec_audit.created.values()) == before + 1


async def test_subscriber_waits_for_speaker_and_survives_reconnect(relay_server, clip):
    server = relay_server
    conf = server.create_conference()
    speaker = server.token(conf, "speaker")
    sub = await subscribe(server.url, conf, server.token(conf, "point"))
    try:
        await asyncio.sleep(1.5)
        assert sub.frames == 0
        pub = await publish(server.url, conf, speaker, clip)
        assert await sub.wait_frames(30, timeout=15), "no video once the speaker went live"
        consumers_before = set(media_stats(server)["consumers"])
        assert await delete_session(pub.location, speaker) == 200
        await pub.close()
        await asyncio.sleep(1.0)
        stalled = sub.frames
        await asyncio.sleep(1.0)
        assert sub.frames - stalled <= 2, "frames kept arriving with no speaker"
        pub2 = await publish(server.url, conf, speaker, clip)
        try:
            assert await sub.wait_frames(stalled + 45, timeout=15), "video did not resume"
            assert sub.sizes == {(1280, 720)}
            assert set(media_stats(server)["consumers"]) == consumers_before  # no re-signalling
        finally:
            await pub2.close()
    finally:
        await sub.close()


async def test_nack_served_from_server_history(relay_server, clip):
    server = relay_server
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    sub = await subscribe(server.url, conf, server.token(conf, "point"), drop_every=20)
    try:
        assert await sub.wait_frames(120, timeout=25)
        dropped, repaired = len(sub.dropped), len(sub.repaired)
        assert dropped >= 20
        assert repaired >= 0.9 * dropped, f"{repaired}/{dropped} repaired"
        stats = media_stats(server)
        consumer = next(v for v in stats["consumers"].values() if v["conference"] == conf)
        assert consumer["video"]["retransmits"] >= repaired
        assert consumer["video"]["rtx"]  # aiortc offers RTX: repairs leave under their own SSRC
        join = consumer["join"]  # when each step of joining happened, on the server's clock
        assert join["created"] <= join["answered"] <= join["connected"] <= join["first_keyframe"]
        assert sub.fps(2.0) >= 20
    finally:
        await sub.close()
        await pub.close()


async def test_late_joiners_start_at_keyframe_and_pli_is_merged(relay_server, clip):
    server = relay_server
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    points = [server.token(conf, "point", f"Xã {i}") for i in range(8)]  # one session per point token
    subs = []
    try:
        await asyncio.sleep(1.3)
        before = pub.video.keyframe_requests
        subs = await asyncio.gather(*[subscribe(server.url, conf, point) for point in points])
        for sub in subs:
            assert await sub.wait_frames(10, timeout=10)
        # Each join either started from the current GOP (fast start: the last keyframe is < 1 s old)
        # or asked for a keyframe; 8 joins within ~1 s -> at most a couple of PLIs upstream.
        requests = pub.video.keyframe_requests - before
        joins = [c["join"] for c in media_stats(server)["consumers"].values() if c["conference"] == conf]
        fast = sum(1 for j in joins if j["fast_start"])
        assert len(joins) == 8 and requests <= 3
        assert requests >= 1 or fast == 8, (requests, fast)
    finally:
        for sub in subs:
            await sub.close()
        await pub.close()


async def test_sender_reports_keep_audio_and_video_in_sync(relay_server, clip):
    server = relay_server
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    sub = await subscribe(server.url, conf, server.token(conf, "point"))
    install_sync_probe(sub)
    try:
        await wait_until_async(lambda: len(sub.sr) == 2 and sub.frames > 60, 10, "both sender reports, 60 frames")
        await asyncio.sleep(2.0)
        assert set(sub.sr) == {"audio", "video"}
        offset = sync_offset(sub)
        print(f"A/V offset via sender reports: {offset * 1000:.1f} ms")
        assert abs(offset) < 0.08
    finally:
        await sub.close()
        await pub.close()


async def test_obs_style_high_profile_offer_is_accepted(server, clip):
    """OBS offers H.264 High; nothing is decoded, so the relay accepts any packetization-mode=1 profile."""
    from media.aiortc_compat import register_forwarding_codecs

    register_forwarding_codecs()  # our aiortc stand-in for OBS must understand a High-profile answer
    conf = server.create_conference()
    seen = {}

    def high_profile_only(sdp: str) -> str:
        lines = sdp.split("\r\n")
        out = [l.replace("profile-level-id=42e01f", "profile-level-id=640032").replace(
            "profile-level-id=42001f", "profile-level-id=64001f") for l in lines]
        seen["offer"] = "\r\n".join(out)
        return seen["offer"]

    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip, munge=high_profile_only)
    sub = await subscribe(server.url, conf, server.token(conf, "point"))
    try:
        assert "42e01f" not in seen["offer"] and "640032" in seen["offer"]
        assert await sub.wait_frames(30, timeout=15)
        assert sub.sizes == {(1280, 720)}
    finally:
        await sub.close()
        await pub.close()
