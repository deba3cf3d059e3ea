"""Recorder building blocks without a server: H.264 parsing, fMP4 boxes, playlists, the recorder's
runs and discontinuities, crash recovery, the MP4 remux, retention and signed links."""

from __future__ import annotations

import datetime as dt
import fractions
import itertools
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from media.recording import h264
from media.recording.audio import AudioProfile
from media.recording.fmp4 import parse_init, parse_moof, shift_tfdt
from media.recording.playlist import Segment, parse, render
from media.recording.recorder import PLAYLIST, Recorder
from media.recording.recovery import close_interrupted
from media.recording.remux import remux_to_mp4
from media.recording.retention import StoredRecording, select_expired
from server.domain.signed_links import Grant, LinkSigner
from bench.clip import Clip, test_clip
from bench.rtp_clip import RtpPublisher
from tests.support.hls_probe import duration, ffprobe, streams, tone_onset
from tests.support.waiting import wait_until


_publishers = itertools.count(1)


def feed(
    recorder: Recorder,
    seconds: float,
    audio_offset: float = 0.0,
    skip_video: int = 0,
    publisher: RtpPublisher | None = None,
    kinds: tuple[str, ...] = ("audio", "video"),
    clip: Clip | None = None,
    start: float = 0.0,
    keep_video: Callable[[int], bool] | None = None,
) -> RtpPublisher:
    """Hand the clip's packets to the recorder's reader the way the Router does (timestamps from
    ``start``, audio ``audio_offset`` after video on the sender's clock).

    A new publisher is added and given its clocks first; pass ``publisher`` to continue one. The
    n-th video packet is left out (lost) when ``keep_video(n)`` is false.
    """
    clip = clip or test_clip()
    if publisher is None:
        publisher = RtpPublisher(f"publisher-{next(_publishers)}", kinds)
        publisher.join(recorder, publisher.clocks(audio_offset))
    video_packets = 0
    for _at, source, seq, ts, marker, payload in publisher.clip(clip, seconds, start, skip_video):
        wait_until(lambda: recorder.backlog <= 1500, 30, "the recorder's backlog to drain", interval=0.001)
        if source.kind == "video":
            video_packets += 1
            if keep_video is not None and not keep_video(video_packets - 1):
                continue
        recorder.reader.on_packet(source, seq, ts, marker, payload, False)
    return publisher


# --- H.264 ---------------------------------------------------------------------------------------
def test_h264_access_unit_and_sps_of_the_clip() -> None:
    clip = test_clip()
    au = h264.inspect(clip.video[0][2])
    assert au.is_idr and au.sps and au.pps
    assert h264.parse_sps(au.sps) == h264.SpsInfo(66, 31, 1280, 720, 0, 90000 // clip.fps)
    assert not h264.inspect(clip.video[1][2]).is_idr
    nals = h264.split_nals(clip.video[0][2])
    types = [h264.nal_type(n) for n in nals]  # 3- and 4-byte start codes, two IDR slices
    assert types[:2] == [7, 8] and set(types) == {5, 6, 7, 8}
    assert h264.split_nals(h264.annexb(nals)) == nals


def test_sps_with_high_profile_and_cropping() -> None:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 100, 58, "yuv420p"
    codec.time_base = fractions.Fraction(1, 25)
    codec.options = {"profile": "high", "x264-params": "repeat-headers=1"}
    frame = av.VideoFrame(100, 58, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.pts = 0
    packets = codec.encode(frame) + codec.encode(None)
    sps = h264.inspect(bytes(packets[0])).sps
    assert sps is not None
    info = h264.parse_sps(sps)
    assert (info.profile_idc, info.width, info.height) == (100, 100, 58)


# --- playlists -----------------------------------------------------------------------------------
def _segments() -> list[Segment]:
    out, t = [], 0.0
    for i in range(10):
        run = 0 if i < 4 else 1 if i < 7 else 2
        out.append(Segment(f"seg{i:06d}.m4s", 2.0, t, f"init{run:03d}.mp4", discontinuity=i in (4, 7)))
        t += 2.0
    return out


def test_playlist_round_trip_and_live_window() -> None:
    segments = _segments()
    text = render(segments, nominal_duration=2.0, ended=True, playlist_type="VOD")
    back, ended = parse(text)
    assert ended and [s.uri for s in back] == [s.uri for s in segments]
    assert [s.discontinuity for s in back] == [s.discontinuity for s in segments]
    assert [s.map_uri for s in back] == [s.map_uri for s in segments]
    assert text.count("#EXT-X-DISCONTINUITY\n") == 2 and "#EXT-X-PLAYLIST-TYPE:VOD" in text

    window = render(segments, nominal_duration=2.0, ended=False, window=4, uri_prefix="r/", query="a=1")
    assert "#EXT-X-MEDIA-SEQUENCE:6" in window
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in window  # the one before seg 4 scrolled out
    assert window.count("#EXT-X-DISCONTINUITY\n") == 1  # the one before seg 7 is still shown
    assert '#EXT-X-MAP:URI="r/init001.mp4?a=1"' in window and "r/seg000009.m4s?a=1" in window
    assert "#EXT-X-ENDLIST" not in window


# --- the recorder --------------------------------------------------------------------------------
def test_recorder_reconnect_is_a_discontinuity_on_one_timeline(tmp_path: Path) -> None:
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    first = feed(recorder, 5.0)
    recorder.publisher_closed(first.producer_id)
    feed(recorder, 5.0, skip_video=10)  # joins mid-GOP: waits for the keyframe at 1 s
    recorder.stop()
    assert recorder.finished and recorder.stats.runs == 2
    text = (tmp_path / "rec" / PLAYLIST).read_text()
    segments, ended = parse(text)
    assert ended and text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert {s.map_uri for s in segments} == {"init000.mp4", "init001.mp4"}
    total = sum(s.duration for s in segments)
    assert total == pytest.approx(5.0 + 4.0, abs=0.1)
    # Timestamps continue across the discontinuity (the second run's tfdt was shifted).
    second = next(s for s in segments if s.discontinuity)
    init = (tmp_path / "rec" / second.map_uri).read_bytes()
    tracks = parse_init(init)
    moof = parse_moof((tmp_path / "rec" / second.uri).read_bytes())
    for track_id, frag in moof.items():
        assert frag.base_time / tracks[track_id].timescale == pytest.approx(second.start, abs=0.05)
    assert duration(tmp_path / "rec" / PLAYLIST) == pytest.approx(total, abs=0.1)



def test_audio_outlasting_video_at_a_switch_stays_in_order(tmp_path: Path) -> None:
    """A publisher whose audio goes on after its last video frame (it stopped its camera first, or
    its video was cut at a frame boundary): the next run starts after the later of the two, so every
    track's decode times increase over the whole recording and it remuxes into one MP4."""
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    first = feed(recorder, 4.0)
    feed(recorder, 0.5, publisher=first, start=4.0, keep_video=lambda n: False)  # audio only, half a second
    recorder.publisher_closed(first.producer_id)
    feed(recorder, 3.0)
    recorder.stop()
    assert recorder.stats.runs == 2
    playlist = tmp_path / "rec" / PLAYLIST
    packets = ffprobe(playlist, "packet=stream_index,dts_time")["packets"]
    for index in {p["stream_index"] for p in packets}:
        times = [float(p["dts_time"]) for p in packets if p["stream_index"] == index]
        assert all(b > a for a, b in zip(times, times[1:])), f"stream {index} goes back in time"
    mp4 = remux_to_mp4(playlist, tmp_path / "all.mp4")
    assert float(streams(mp4)["audio"]["duration"]) >= 4.4 + 3.0 - 0.2

def test_recorder_places_audio_by_the_publisher_clocks(tmp_path: Path) -> None:
    """Audio ts 0 half a second after video ts 0 must start half a second into the recording."""
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    feed(recorder, 4.0, audio_offset=0.5)
    recorder.stop()
    assert recorder.stats.runs == 1
    first = parse((tmp_path / "rec" / PLAYLIST).read_text())[0][0]
    joined = tmp_path / "first.mp4"
    joined.write_bytes((tmp_path / "rec" / first.map_uri).read_bytes() + (tmp_path / "rec" / first.uri).read_bytes())
    s = streams(joined)
    assert float(s["audio"]["start_time"]) == pytest.approx(float(s["video"]["start_time"]), abs=0.03)
    onset = tone_onset(joined)  # silence until the speaker's first audio
    assert onset == pytest.approx(0.5, abs=0.04)


def test_floor_switch_and_back(tmp_path: Path) -> None:
    """The Router hands over a second publisher's sources (at a keyframe), then the first one's again
    (still live, from its next keyframe): each switch ends the run, the next one continues the
    timeline. One timeline, one discontinuity per switch."""
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    speaker = feed(recorder, 3.0)
    point = feed(recorder, 3.0)
    recorder.publisher_closed(point.producer_id)
    feed(recorder, 3.0, publisher=speaker, start=6.0)
    recorder.stop()
    text = (tmp_path / "rec" / PLAYLIST).read_text()
    assert recorder.stats.runs == 3 and text.count("#EXT-X-DISCONTINUITY\n") == 2
    assert recorder.duration == pytest.approx(9.0, abs=0.15)
    assert duration(tmp_path / "rec" / PLAYLIST) == pytest.approx(recorder.duration, abs=0.15)


def test_audio_only_and_video_only_publishers(tmp_path: Path) -> None:
    for kinds in (("audio",), ("video",)):
        recorder = Recorder("r", "c", tmp_path / kinds[0], segment_seconds=2.0)
        feed(recorder, 3.0, kinds=kinds)
        recorder.stop()
        s = streams(tmp_path / kinds[0] / PLAYLIST)
        assert set(s) == {kinds[0]}
        assert recorder.duration == pytest.approx(3.0, abs=0.1)


def test_audio_profile_sets_channels_and_bitrate(tmp_path: Path) -> None:
    """Mono by default (half the AAC encode); stereo sources can keep both channels."""
    for profile in (AudioProfile(), AudioProfile(2, 128_000)):
        out = tmp_path / str(profile.channels)
        recorder = Recorder("r", "c", out, segment_seconds=2.0, audio=profile)
        feed(recorder, 4.0)
        recorder.stop()
        info = ffprobe(out / PLAYLIST, "stream=codec_name,channels,codec_type")
        audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
        assert (audio["codec_name"], audio["channels"]) == ("aac", profile.channels)
        size = sum(p.stat().st_size for p in out.glob("*.m4s"))
        assert size > 0
        # the tone is still there, at the start, on either layout
        assert tone_onset(out / PLAYLIST) == pytest.approx(0.0, abs=0.1)
    with pytest.raises(ValueError):
        AudioProfile(3)


def test_a_new_resolution_starts_a_new_run(tmp_path: Path) -> None:
    """Browsers lower the resolution under congestion: new SPS -> new init segment, same timeline."""
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    speaker = feed(recorder, 3.0)
    feed(recorder, 2.0, publisher=speaker, clip=test_clip(seconds=2.0, width=640, height=360, kbps=500), start=3.0)
    recorder.stop()
    segments = parse((tmp_path / "rec" / PLAYLIST).read_text())[0]
    assert recorder.stats.runs == 2 and sum(s.discontinuity for s in segments) == 1
    last = segments[-1]
    joined = tmp_path / "last.mp4"
    joined.write_bytes((tmp_path / "rec" / last.map_uri).read_bytes() + (tmp_path / "rec" / last.uri).read_bytes())
    video = streams(joined)["video"]
    assert (video["width"], video["height"]) == (640, 360)
    assert recorder.duration == pytest.approx(5.0, abs=0.1)


def test_lost_frames_wait_for_a_keyframe_and_ask_for_one(tmp_path: Path) -> None:
    """When a packet was lost (or dropped from a full inbox) the decoder chain is broken until the
    next IDR: frames in between are skipped and a keyframe is asked for."""
    requests: list[float] = []
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0,
                        request_keyframe=lambda: requests.append(time.monotonic()))
    feed(recorder, 3.0, keep_video=lambda n: n != 100)  # between the keyframes at 0 s and 1 s
    recorder.stop()
    assert recorder.stats.dropped_frames > 5
    assert requests  # at the start, and again for the gap
    assert len(requests) >= 2
    info = ffprobe(tmp_path / "rec" / PLAYLIST, "stream=nb_read_frames", "-count_frames", "-select_streams", "v")
    assert int(info["streams"][0]["nb_read_frames"]) == 90 - recorder.stats.dropped_frames


def test_shift_tfdt_moves_every_track(tmp_path: Path) -> None:
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    feed(recorder, 3.0)
    recorder.stop()
    seg = bytearray((tmp_path / "rec" / "seg000001.m4s").read_bytes())
    before = parse_moof(seg)
    shift_tfdt(seg, {tid: 1000 for tid in before})
    after = parse_moof(seg)
    assert all(after[t].base_time == before[t].base_time + 1000 for t in before)
    assert all(after[t].duration == before[t].duration for t in before)


def test_recovery_keeps_every_complete_segment(tmp_path: Path) -> None:
    """A writer killed mid-recording: tmp files dropped, listed and just-renamed segments kept."""
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    feed(recorder, 9.0)
    recorder.stop()
    rec = tmp_path / "rec"
    segments, _ = parse((rec / PLAYLIST).read_text())
    # State as if killed: playlist still live and one segment behind, a half-written temp file.
    (rec / PLAYLIST).write_text(render(segments[:-1], nominal_duration=2.0, ended=False, playlist_type="EVENT"))
    (rec / ".seg000099.m4s.tmp").write_bytes(b"\0" * 100)
    found = close_interrupted(rec, 2.0)
    assert found.segments == len(segments)
    assert found.duration == pytest.approx(sum(s.duration for s in segments), abs=0.01)
    assert not list(rec.glob(".*.tmp"))
    text = (rec / PLAYLIST).read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert duration(rec / PLAYLIST) == pytest.approx(found.duration, abs=0.1)


def test_remux_to_faststart_mp4(tmp_path: Path) -> None:
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    first = feed(recorder, 4.0)
    recorder.publisher_closed(first.producer_id)
    feed(recorder, 3.0)
    recorder.stop()
    out = remux_to_mp4(tmp_path / "rec" / PLAYLIST, tmp_path / "out.mp4")
    head = out.read_bytes()[:64]
    assert head[4:8] == b"ftyp" and b"moov" in head  # index first: playable while downloading
    info = ffprobe(out, "stream=codec_name,width,height:format=duration")
    assert {s["codec_name"] for s in info["streams"]} == {"h264", "aac"}
    assert float(info["format"]["duration"]) == pytest.approx(recorder.duration, abs=0.15)


def test_recorder_ignores_packets_after_stop(tmp_path: Path) -> None:
    recorder = Recorder("r", "c", tmp_path / "rec")
    publisher = RtpPublisher().join(recorder)
    recorder.stop()
    publisher.send(recorder.reader, publisher.clip(test_clip(), 0.5))
    assert recorder.backlog == 0 and recorder.reader.dropped > 0 and not (tmp_path / "rec").exists()


# --- retention and links -------------------------------------------------------------------------
def test_retention_by_age_and_by_size() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)
    recs = [
        StoredRecording("old", now - 40 * day, 100),
        StoredRecording("mid", now - 10 * day, 300),
        StoredRecording("new", now - 1 * day, 300),
        StoredRecording("live", now - 50 * day, 500, active=True),
    ]
    assert select_expired(recs, now, max_age_days=30) == ["old"]
    assert select_expired(recs, now, max_bytes=900) == ["old", "mid"]  # the active one is never picked
    assert select_expired(recs, now, max_age_days=30, max_bytes=10_000) == ["old"]
    assert select_expired(recs, now) == []


def test_signed_links(tmp_path: Path) -> None:
    signer = LinkSigner.load(tmp_path)
    assert LinkSigner.load(tmp_path)._key == signer._key  # persisted: links survive restarts
    query = dict(p.split("=") for p in signer.sign("replay:c/r", 3600, "tok1", now=1000).split("&"))
    assert signer.verify("replay:c/r", query["exp"], query["sig"], now=1000) == Grant("replay:c/r", 4800, "tok1")
    assert not signer.verify("replay:c/other", query["exp"], query["sig"], now=1000)
    assert not signer.verify("download:c/r", query["exp"], query["sig"], now=1000)  # scopes are separate
    assert not signer.verify("replay:c/r", query["exp"], query["sig"], now=int(query["exp"]) + 1)
    assert not signer.verify("replay:c/r", str(int(query["exp"]) + 600), query["sig"], now=1000)
    # The token a link was made for is part of what is signed: it cannot be swapped or dropped.
    mac = query["sig"].split(".", 1)[1]
    assert not signer.verify("replay:c/r", query["exp"], f"tok2.{mac}", now=1000)
    assert not signer.verify("replay:c/r", query["exp"], mac, now=1000)
    admin = dict(p.split("=") for p in signer.sign("live:c", 60, None, now=1000).split("&"))
    assert signer.verify("live:c", admin["exp"], admin["sig"], now=1000) == Grant("live:c", 1200, None)
    assert signer.sign("x", 3600, "t", now=1000) == signer.sign("x", 3600, "t", now=1100)  # stable for caching
    # The live playlist's shared segments signature: between ttl/2 and ttl, never past its link; the
    # same for everyone (no token) until the next ttl/2 boundary; not valid for the live playlist.
    shared = LinkSigner.shared("live-segments:c", 20, not_after=10_000, now=1003)
    assert shared == Grant("live-segments:c", 1020, None) and LinkSigner.shared("live-segments:c", 20, 10_000, now=1009) == shared
    assert LinkSigner.shared("live-segments:c", 20, not_after=1012, now=1003).exp == 1012
    q = dict(p.split("=") for p in signer.query(shared).split("&"))
    assert signer.verify("live-segments:c", q["exp"], q["sig"], now=1003) == shared
    assert not signer.verify("live:c", q["exp"], q["sig"], now=1003)


@pytest.fixture(autouse=True)
def _no_stray_dirs(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)
