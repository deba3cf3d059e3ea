"""The recorder as a reader of the conference Router: the reader's inbox, frames reassembled from
packets that arrive reordered, duplicated or lost, the publisher clocks from sender reports, and a
second publisher taking over a live recording through the Router."""

from __future__ import annotations

import collections
import random
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from aiortc.codecs.h264 import h264_depayload

from bench.clip import test_clip
from bench.rtp_clip import Packet, RtpPublisher
from media.core.source import NTP_EPOCH_OFFSET, SourceStream
from media.recording import h264
from media.recording.files import PLAYLIST
from media.recording.playlist import parse
from media.recording.reader import RecordingReader
from media.recording.reassembly import AUDIO_DEPTH, VIDEO_DEPTH, FrameAssembler
from media.recording.recorder import Recorder
from media.recording.sync import MAX_SKEW, arrival_clocks, sender_clocks
from tests.support.background import BackgroundPublisher
from tests.support.hls_probe import ffprobe
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until


def _assemble(packets: list[Packet], video: bool = True) -> tuple[list[tuple[int, bytes | None]], FrameAssembler]:
    frames = FrameAssembler(video)
    out = []
    for _at, _source, seq, ts, marker, payload in packets:
        out += frames.push(seq, ts, marker, payload)
    return out, frames


def _clip_video(seconds: float = 2.0) -> tuple[list[Packet], list[tuple[int, bytes]]]:
    """The clip's video packets and, per frame, its timestamp and access unit as a depayloader makes it."""
    packets = RtpPublisher(kinds=("video",)).clip(test_clip(), seconds)
    frames: dict[int, list[bytes]] = {}
    for _at, _source, _seq, ts, _marker, payload in packets:
        frames.setdefault(ts, []).append(h264_depayload(payload))
    return packets, [(ts, b"".join(parts)) for ts, parts in frames.items()]


def _shuffled(packets: list[Packet], window: int, seed: int = 7) -> list[Packet]:
    """Packets reordered within windows of ``window`` (the jitter of a network path)."""
    rng, out = random.Random(seed), []
    for start in range(0, len(packets), window):
        chunk = packets[start : start + window]
        rng.shuffle(chunk)
        out += chunk
    return out


# --- reassembly ----------------------------------------------------------------------------------
def test_frames_are_the_clip_access_units_across_the_sequence_wrap() -> None:
    packets, expected = _clip_video()
    assert packets[0][2] > packets[-1][2]  # the sequence numbers wrapped, and so did the timestamps
    assert packets[0][3] > packets[-1][3]
    frames, assembler = _assemble(packets)
    assert frames == expected and assembler.lost == 0
    clip = test_clip()
    assert [h264.split_nals(data) for _ts, data in frames[:3]] == [h264.split_nals(au) for _pts, _key, au in clip.video[:3]]


def test_reordered_and_duplicated_packets_give_the_same_frames() -> None:
    packets, expected = _clip_video()
    noisy = _shuffled(packets, 12)
    noisy[40:40] = noisy[20:25]  # late duplicates (a retransmission that crossed the original)
    frames, assembler = _assemble(noisy)
    assert frames == expected and assembler.lost == 0


def test_a_lost_packet_breaks_its_frame_and_one_lost_at_a_frame_end_the_next_too() -> None:
    packets, expected = _clip_video()
    starts = [n for n, p in enumerate(packets) if n == 0 or p[3] != packets[n - 1][3]]
    mid_frame_10 = starts[10] + 1
    end_of_frame_20 = starts[21] - 1  # its marker packet: where frame 21 begins is not known
    kept = [p for n, p in enumerate(packets) if n not in (mid_frame_10, end_of_frame_20)]
    frames, assembler = _assemble(_shuffled(kept, 6))
    assert assembler.lost == 2
    broken = [n for n, (_ts, data) in enumerate(frames) if data is None]
    assert broken == [10, 20, 21]
    assert [f for n, f in enumerate(frames) if n not in broken] == [f for n, f in enumerate(expected) if n not in broken]
    assert len(frames) == len(expected)


def test_a_gap_is_given_up_only_after_depth_packets() -> None:
    packets, _expected = _clip_video()
    kept = packets[:10] + packets[11:]
    frames = FrameAssembler(True)
    for n, (_at, _source, seq, ts, marker, payload) in enumerate(kept[10:], start=1):
        if n == 1:
            for early in kept[:10]:
                frames.push(*early[2:])
        frames.push(seq, ts, marker, payload)
        assert frames.lost == (1 if n > VIDEO_DEPTH else 0)


def test_audio_packets_come_out_in_order_and_a_lost_one_is_missing() -> None:
    packets = RtpPublisher(kinds=("audio",)).clip(test_clip(), 3.0)
    lost = packets[50]
    frames, assembler = _assemble(_shuffled([p for p in packets if p is not lost], AUDIO_DEPTH // 2), video=False)
    assert [ts for ts, _data in frames] == [p[3] for p in packets if p is not lost]
    assert assembler.lost == 1


def test_a_sender_that_restarts_its_numbering_goes_on() -> None:
    packets, expected = _clip_video()
    half = len(packets) // 2
    restarted = packets[:half] + [(at, src, (seq - 5000) & 0xFFFF, ts, m, p) for at, src, seq, ts, m, p in packets[half:]]
    frames, _assembler = _assemble(restarted)
    assert len(frames) == len(expected) and sum(data is None for _ts, data in frames) <= 1


# --- the reader and the recorder -----------------------------------------------------------------
def test_the_reader_never_blocks_and_counts_what_it_drops() -> None:
    inbox: collections.deque = collections.deque()
    reader = RecordingReader(inbox, 10)
    source = SourceStream("audio", "audio/opus", 48000, "p")
    for seq in range(15):
        reader.on_packet(source, seq, seq * 960, 0, b"\xf8", False)
    assert len(inbox) == 10 and reader.dropped == 5
    inbox.clear()
    reader.close()
    reader.on_packet(source, 15, 0, 0, b"\xf8", False)
    assert not inbox and reader.dropped == 6


def test_a_recording_from_reordered_packets_keeps_every_frame(tmp_path: Path) -> None:
    requests: list[int] = []
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0, request_keyframe=lambda: requests.append(1))
    publisher = RtpPublisher().join(recorder)
    publisher.send(recorder.reader, _shuffled(publisher.clip(test_clip(), 3.0), 10))
    recorder.stop()
    assert recorder.stats.runs == 1 and recorder.stats.dropped_frames == 0 and recorder.stats.frames_video == 90
    assert len(requests) == 1  # at the publisher's start; no gap, and a keyframe every second
    assert recorder.duration == pytest.approx(3.0, abs=0.1)
    info = ffprobe(tmp_path / "rec" / PLAYLIST, "stream=nb_read_frames", "-count_frames", "-select_streams", "v")
    assert int(info["streams"][0]["nb_read_frames"]) == 90


def test_a_new_video_source_epoch_is_a_switch(tmp_path: Path) -> None:
    """Epochs, not publishers, mark switches: a new SourceStream of the same producer (as the Router
    hands it over, at a keyframe) ends the run and the next one continues the timeline."""
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    publisher = RtpPublisher(kinds=("video",)).join(recorder, {})
    clip = test_clip()
    for start in (0.0, 2.0):
        if start:
            publisher.sources["video"] = SourceStream("video", "video/h264", 90000, publisher.producer_id)
        publisher.send(recorder.reader, publisher.clip(clip, 2.0, start=start))
    recorder.stop()
    segments = parse((tmp_path / "rec" / PLAYLIST).read_text())[0]
    assert recorder.stats.runs == 2 and sum(s.discontinuity for s in segments) == 1
    assert recorder.duration == pytest.approx(4.0, abs=0.1)


# --- clocks --------------------------------------------------------------------------------------
def _source(kind: str, rate: int, last_ts: int, arrival: float, report: tuple[int, float] | None) -> SourceStream:
    source = SourceStream(kind, "audio/opus" if kind == "audio" else "video/h264", rate, "p")
    source.packets, source.last_ts, source.last_arrival = 100, last_ts, arrival
    if report is not None:
        rtp, wall = report
        source.on_sender_report(round((wall + NTP_EPOCH_OFFSET) * (1 << 32)), rtp)
    return source


def test_clocks_from_sender_reports_unless_they_disagree_with_arrival() -> None:
    # The sender's wall clock is an hour ahead of ours; both kinds' latest packets left at 3650.1.
    video = _source("video", 90000, 90_000 + 9000, 50.1, (90_000, 3650.0))
    audio = _source("audio", 48000, 48_000 + 4800, 50.1, (48_000, 3650.0))
    clocks = sender_clocks({"audio": audio, "video": video})
    assert clocks is not None and clocks["video"].at(90_000 + 9000) == pytest.approx(3650.1)
    assert clocks["audio"].at(48_000 + 4800) == pytest.approx(3650.1, abs=1e-6)
    assert sender_clocks({"audio": audio, "video": _source("video", 90000, 0, 50.1, None)}) is None
    skewed = _source("audio", 48000, 48_000 + 4800, 50.1, (48_000, 3650.0 + MAX_SKEW))
    assert sender_clocks({"audio": skewed, "video": video}) is None
    fallback = arrival_clocks({"audio": skewed, "video": video})
    assert fallback["audio"].at(48_000 + 4800) == fallback["video"].at(90_000 + 9000) == pytest.approx(50.1)


# --- through a server ----------------------------------------------------------------------------
def _live(server: ServerProcess, conference: str, token: str) -> str:
    r = httpx.get(f"{server.url}/hls/{conference}/index.m3u8", params={"token": token}, timeout=10)
    return r.text if r.status_code == 200 else ""


def test_a_second_publisher_takes_over_the_recording_at_its_keyframe(server: ServerProcess) -> None:
    """A new publish replaces the live one: the Router switches the sources at the newcomer's
    keyframe and the recording follows it behind one discontinuity, every segment decodable."""
    conference = server.create_conference("Takeover")
    speaker, viewer = server.token(conference, "speaker"), server.token(conference, "viewer")
    first = BackgroundPublisher(server.url, conference, speaker).start()
    second = None
    try:
        wait_until(lambda: _live(server, conference, viewer).count("#EXTINF") >= 1, 20, "the first publisher's segment")
        second = BackgroundPublisher(server.url, conference, speaker).start()
        wait_until(
            lambda: (t := _live(server, conference, viewer)).count("#EXT-X-DISCONTINUITY\n") == 1
            and t.split("#EXT-X-DISCONTINUITY\n")[-1].count("#EXTINF") >= 2,
            25,
            "the second publisher's segments behind a discontinuity",
        )
    finally:
        if second is not None:
            second.stop()
        first.stop()
    with server.admin() as c:
        stopped = c.post(f"/api/v1/conferences/{conference}/recording/stop")
        assert stopped.status_code == 200, stopped.text
        detail = c.get(f"/api/v1/recordings/{stopped.json()['id']}").json()
        assert len(c.get("/api/v1/recordings", params={"conference_id": conference}).json()) == 1
    url = server.url + detail["playlist_url"]
    vod = httpx.get(url, timeout=10).text
    assert vod.count("#EXT-X-DISCONTINUITY\n") == 1
    assert len({s.map_uri for s in parse(vod)[0]}) == 2
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr[-2000:]
    video = next(s for s in ffprobe(url, "stream=codec_type,nb_read_frames", "-count_frames")["streams"]
                 if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) >= 25 * detail["duration_seconds"]


@pytest.fixture(autouse=True)
def _no_stray_dirs(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)
