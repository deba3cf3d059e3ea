"""Live HLS and recordings as a multivariant playlist: the full variant and the low rendition.

One server of this module's own (the test servers leave the low variant off unless told:
tests/support/server.py) and one speaker publishing the 1280x720 test clip (so the server's
transcoder really scales it to 640x360) serve the tests in file order: the live master playlist
parses with the ``m3u8`` package and names both variants; a segment of each is H.264 at its size
with AAC, and the variants' segments start at the same times; Chromium's hls.js on the viewer page
plays the master and each level when forced; after the recording stops the archive's master names
both, a recording made before variants (no ``master.m3u8``) still plays its one playlist, and
recovery after a crash closes both variants. A last test publishes to the session's server, where
``hls_low_variant`` is off: one variant, no transcoder. The first test checks the Router's low-track
readers on their own, without a server.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urljoin

import httpx
import m3u8
import pytest

from bench.clip import test_clip
from bench.server_process import ServerProcess
from media.core.router import Router
from media.core.source import SourceStream
from media.recording.recovery import close_interrupted
from media.egress.fanout_group import FanoutGroup
from tests.support.background import BackgroundPublisher
from tests.support.hls_probe import streams
from tests.support.server import ServerFactory
from tests.support.threaded_browser import Page, with_page
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

IDR = bytes([0x65, 0x88, 0x84])  # an H.264 IDR slice (NAL type 5)
FULL, LOW = (1280, 720), (640, 360)


class Collector:
    def __init__(self) -> None:
        self.got: list[SourceStream] = []

    def on_packet(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        self.got.append(source)


def test_low_track_readers_get_the_low_video_and_the_program_audio_and_are_demand() -> None:
    router = Router("c", FanoutGroup)
    demand: list[int] = []
    router.demand_listeners.append(lambda track, count: demand.append(count))
    video, audio = SourceStream("video", "video/h264", 90000, "p"), SourceStream("audio", "audio/opus", 48000, "p")
    low = SourceStream("video", "video/h264", 90000, "p")
    router.add_source(video)
    router.add_source(audio)
    router.add_source(low, select=False)
    router.select(low, "low")
    program, variant = Collector(), Collector()
    router.add_reader(program)
    router.add_reader(variant, track="low")
    assert demand == [1] and router.low_demand() == 1
    for seq, source in enumerate((video, audio, low)):
        router.on_rtp(source, seq, 0, 1, IDR)
    assert program.got == [video, audio]
    assert variant.got == [audio, low]
    router.remove_reader(variant)
    router.on_rtp(audio, 3, 960, 1, b"\x00")
    assert demand == [1, 0] and variant.got == [audio, low]
    assert program.got == [video, audio, audio]


# --- the server ------------------------------------------------------------------------------------
class Live:
    """The module's server, conference and publish, and what the tests learn along the way."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.conference = server.create_conference("Hội nghị hai chất lượng")
        self.viewer = server.token(self.conference, "viewer", name="viewer")
        self.organiser = server.token(self.conference, "organiser", name="organiser")
        self.publisher = BackgroundPublisher(server.url, self.conference, server.token(self.conference, "speaker"),
                                             test_clip(seconds=10, width=1280, height=720)).start()
        self.recording = ""

    def get(self, url: str) -> httpx.Response:
        return httpx.get(urljoin(self.server.url, url), timeout=15)

    def live_master(self) -> tuple[str, m3u8.M3U8]:
        """The live master's URL (for its relative URIs) and the parsed playlist, once it is served."""
        url = f"{self.server.url}/hls/{self.conference}/master.m3u8?token={self.viewer}"
        r = wait_until(lambda: httpx.get(url, timeout=10), 30, "the live master playlist",
                       check=lambda r: r.status_code == 200, interval=0.25)
        return url, m3u8.loads(r.text, uri=url)


@pytest.fixture(scope="module")
def live(start_server: ServerFactory):  # type: ignore[no-untyped-def]
    with start_server("variants", workers=1, hls_low_variant=True) as server:
        scenario = Live(server)
        yield scenario
        scenario.publisher.stop()


def _variants(playlist: m3u8.M3U8) -> dict[tuple[int, int], m3u8.Playlist]:
    assert playlist.is_variant
    return {variant.stream_info.resolution: variant for variant in playlist.playlists}


def _segment_file(base: str, media: m3u8.M3U8, index: int, path: Path) -> Path:
    """Init segment + media segment ``index`` of a media playlist, as one file ffprobe reads."""
    segment = media.segments[index]
    path.write_bytes(httpx.get(urljoin(base, segment.init_section.uri), timeout=10).content
                     + httpx.get(urljoin(base, segment.uri), timeout=10).content)
    return path


def test_live_master_names_both_variants_aligned(live: Live, tmp_path: Path) -> None:
    url, master = live.live_master()
    variants = _variants(master)
    assert set(variants) == {FULL, LOW}, master.dumps()
    for variant in variants.values():
        info = variant.stream_info
        assert info.bandwidth >= info.average_bandwidth > 0
        assert info.codecs.startswith("avc1.") and "mp4a.40.2" in info.codecs
        assert 20 <= info.frame_rate <= 31, info.frame_rate
    assert variants[LOW].stream_info.average_bandwidth < variants[FULL].stream_info.average_bandwidth / 2

    media = {}
    for size, variant in variants.items():
        variant_url = urljoin(url, variant.uri)
        playlist = wait_until(lambda u=variant_url: m3u8.loads(httpx.get(u, timeout=10).text, uri=u), 20,
                              f"3 segments of the {size} variant", check=lambda p: len(p.segments) >= 3)
        media[size] = (variant_url, playlist)
        s = streams(_segment_file(variant_url, playlist, -1, tmp_path / f"{size[1]}.mp4"))
        assert s["video"]["codec_name"] == "h264" and (s["video"]["width"], s["video"]["height"]) == size
        assert s["audio"]["codec_name"] == "aac"
    live.recording = media[FULL][1].segments[-1].uri.split("/")[0]

    # Aligned: the low variant's segment starts at the same time as one of the full one's, as long.
    low_url, low = media[LOW]
    low_start = float(streams(_segment_file(low_url, low, -2, tmp_path / "low.mp4"))["video"]["start_time"])
    full_url, full = media[FULL]
    starts = {}
    for i in range(-min(4, len(full.segments)), 0):
        path = _segment_file(full_url, full, i, tmp_path / f"full{i}.mp4")
        starts[float(streams(path)["video"]["start_time"])] = full.segments[i].duration
    match = min(starts, key=lambda start: abs(start - low_start))
    assert abs(match - low_start) < 0.05, (low_start, starts)
    assert starts[match] == pytest.approx(low.segments[-2].duration, abs=0.05)

    # The transcoder runs for the recording's low variant (nobody watches over WebRTC).
    stats = httpx.get(f"{live.server.url}/api/v1/media/stats", timeout=10,
                      headers={"Authorization": f"Bearer {live.server.admin_token}"}).json()
    assert stats["workers"][0]["transcoders"][live.conference]["size"] == "640x360"


@pytest.mark.browser
def test_viewer_page_plays_the_master_and_each_level(live: Live) -> None:
    def check(page: Page) -> list[dict]:
        page.wait_until("window.viewer && viewer.hls && viewer.hls.levels.length === 2", timeout=30,
                        what="hls.js read the master")
        page.wait_until("document.getElementById('video').currentTime > 0.5", timeout=30, what="playback")
        played = []
        for i in range(2):
            page.evaluate(f"viewer.hls.currentLevel = {i}")
            height = page.evaluate(f"viewer.hls.levels[{i}].height")
            page.wait_until(f"document.getElementById('video').videoHeight === {height}", timeout=20,
                            what=f"level {i}'s picture")
            before = page.evaluate("(() => { const v = document.getElementById('video');"
                                   " return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames]; })()")
            after = page.wait_until(
                f"(() => {{ const v = document.getElementById('video'); const f = v.getVideoPlaybackQuality().totalVideoFrames;"
                f" return v.currentTime > {before[0] + 1.5} && f > {before[1] + 30} && [v.currentTime, f]; }})()",
                timeout=20, what=f"level {i} plays")
            played.append({"height": height, "level": page.evaluate("viewer.level"), "advanced": after[0] - before[0]})
        return played

    url = f"{live.server.url}/viewer.html#conference={live.conference}&token={live.viewer}"
    played = with_page(url, check)
    assert [p["height"] for p in played] == [360, 720], played
    assert [p["level"] for p in played] == ["640x360", "1280x720"], played


def test_archive_master_names_both_variants(live: Live) -> None:
    live.publisher.stop()
    headers = {"Authorization": f"Bearer {live.organiser}"}
    r = httpx.post(f"{live.server.url}/api/v1/conferences/{live.conference}/recording/stop", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    detail = httpx.get(f"{live.server.url}/api/v1/recordings/{r.json()['id']}", headers=headers, timeout=10).json()
    assert detail["id"] == live.recording
    url = live.server.url + detail["master_url"]
    master = m3u8.loads(httpx.get(url, timeout=10).text, uri=url)
    variants = _variants(master)
    assert set(variants) == {FULL, LOW}
    for size, variant in variants.items():
        media = m3u8.loads(httpx.get(urljoin(url, variant.uri), timeout=10).text)
        assert media.is_endlist and media.playlist_type == "vod" and media.segments, size
    assert httpx.get(urljoin(url, "low/index.m3u8")).status_code == 401  # signed, or a token
    # A damaged master.m3u8 is passed over; without one (a recording made before variants) the
    # replay page plays index.m3u8.
    directory = live.server.data_dir / "recordings" / live.conference / live.recording
    (directory / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=x\nindex.m3u8\n")
    r = httpx.get(f"{live.server.url}/api/v1/recordings/{live.recording}", headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["master_url"] is None
    (directory / "master.m3u8").unlink()
    detail = httpx.get(f"{live.server.url}/api/v1/recordings/{live.recording}", headers=headers, timeout=10).json()
    assert detail["master_url"] is None
    assert live.get(url).status_code == 404
    played = m3u8.loads(live.get(detail["playlist_url"]).text)
    assert not played.is_variant and played.is_endlist
    assert detail["size_bytes"] > sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def test_an_interrupted_recording_is_closed_with_its_low_variant(live: Live, tmp_path: Path) -> None:
    """After a crash (playlists without ENDLIST) recovery closes both variants' playlists."""
    copy = tmp_path / "recording"
    shutil.copytree(live.server.data_dir / "recordings" / live.conference / live.recording, copy)
    for playlist in (copy / "index.m3u8", copy / "low" / "index.m3u8"):
        playlist.write_text(playlist.read_text().replace("#EXT-X-ENDLIST\n", "").replace("VOD", "EVENT"))
    found = close_interrupted(copy, 2.0)
    assert found.problems == [] and found.segments > 0
    assert found.size_bytes == sum(p.stat().st_size for p in copy.rglob("*") if p.is_file())
    low = m3u8.loads((copy / "low" / "index.m3u8").read_text())
    assert low.is_endlist and low.playlist_type == "vod" and low.segments


def test_without_the_low_variant_one_variant_and_no_transcoder(server: ServerProcess) -> None:
    """The session's server records no low variant (tests/support/server.py)."""
    scenario = Live(server)
    try:
        url, master = scenario.live_master()
        assert list(_variants(master)) == [FULL]
        stats = httpx.get(f"{server.url}/api/v1/media/stats", timeout=10,
                          headers={"Authorization": f"Bearer {server.admin_token}"}).json()
        assert scenario.conference not in stats["workers"][0]["transcoders"]
        rid = m3u8.loads(httpx.get(urljoin(url, master.playlists[0].uri), timeout=10).text).segments[0].uri
        assert not (server.data_dir / "recordings" / scenario.conference / rid.split("/")[0] / "low").exists()
    finally:
        scenario.publisher.stop()
