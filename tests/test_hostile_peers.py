"""Hostile datagrams at the server's media ports disturb no one and crash nothing.

A live conference (a speaker on the ingest, points on both media workers) takes, on the speaker's
and one point's server-side ICE ports (found from the candidates of their SDP answers): random
bytes, truncated RTP/RTCP/STUN/DTLS headers, empty datagrams, replays of the peers' own SRTP and
SRTCP, tampered copies, and, sent by the peers themselves with their SRTP keys, RTP and RTCP with
wrong SSRCs, malformed RTCP and huge NACK lists. The other points must receive every packet (no
gap in their sequence numbers), the server must log no traceback and keep serving.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct

import httpx
import pytest
from aiortc.rtp import (RtcpByePacket, RtcpPsfbPacket, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket,
                        RtpPacket)

from bench.clip import test_clip
from bench.whip_publisher import publish
from media.core.codecs import is_rtx
from tests.support.peers import subscribe

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

SEED = 21


@pytest.fixture(scope="module")
def clip():
    return test_clip()


def answer_port(pc) -> int:  # type: ignore[no-untyped-def]
    """The server's port for this peer, from the host candidate of its SDP answer."""
    ports = {int(p) for p in re.findall(r"a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 (\d+) typ host",
                                        pc.remoteDescription.sdp, re.I)}
    assert len(ports) == 1, pc.remoteDescription.sdp
    return ports.pop()


class Peer:
    """One of our aiortc peers seen from below: its nominated socket and its SRTP keys."""

    def __init__(self, pc, port: int) -> None:  # type: ignore[no-untyped-def]
        transceiver = pc.getTransceivers()[0]
        self.dtls = transceiver.sender.transport
        ice = self.dtls.transport
        pair = ice._connection._nominated[1]
        assert pair.remote_addr[1] == port  # the answer's candidate is the one in use
        self.addr = ("127.0.0.1", port)
        self._sendto = pair.protocol.transport.sendto
        self.sent: list[bytes] = []  # what the peer itself sent (SRTP/SRTCP), to replay
        original = ice._send

        async def send(data: bytes) -> None:
            if len(self.sent) < 400:
                self.sent.append(bytes(data))
            await original(data)

        ice._send = send

    def send(self, data: bytes) -> None:
        self._sendto(data, self.addr)

    def rtcp(self, plain: bytes) -> bytes | None:
        try:
            return self.dtls._tx_srtp.protect_rtcp(plain)
        except Exception:  # libsrtp refuses some (too short, too long): nothing to send then
            return None

    def rtp(self, plain: bytes) -> bytes | None:
        try:
            return self.dtls._tx_srtp.protect(plain)
        except Exception:
            return None


class SeqLog:
    """The sequence numbers a subscriber's receivers were handed, per kind (unwrapped)."""

    def __init__(self, sub) -> None:  # type: ignore[no-untyped-def]
        self.seqs: dict[str, set[int]] = {"audio": set(), "video": set()}
        self.recording = False
        self._last: dict[str, int] = {}
        for transceiver in sub.pc.getTransceivers():
            receiver, kind = transceiver.receiver, transceiver.kind
            original = receiver._handle_rtp_packet
            # A retransmission over RTX has sequence numbers of its own: what it repairs is the
            # original sequence number in front of its payload (RFC 4588).
            rtx = {c.payloadType for c in transceiver._codecs if is_rtx(c)}

            async def handle(packet, arrival_time_ms, kind=kind, original=original, rtx=rtx):  # type: ignore[no-untyped-def]
                if self.recording:
                    seq = packet.sequence_number
                    if packet.payload_type in rtx:
                        if len(packet.payload) < 2:
                            await original(packet, arrival_time_ms)
                            return
                        seq = int.from_bytes(packet.payload[:2], "big")
                    self.seqs[kind].add(self._unwrap(kind, seq))
                await original(packet, arrival_time_ms)

            receiver._handle_rtp_packet = handle

    def _unwrap(self, kind: str, seq: int) -> int:
        last = self._last.get(kind)
        if last is None:
            value = seq
        else:
            value = last + ((seq - last + 0x8000) & 0xFFFF) - 0x8000
        if last is None or value > last:
            self._last[kind] = value
        return value

    def ranges(self, kind: str) -> list[tuple[int, int]]:
        """The runs of consecutive sequence numbers received (for failure messages)."""
        out: list[tuple[int, int]] = []
        for s in sorted(self.seqs[kind]):
            if out and s == out[-1][1] + 1:
                out[-1] = (out[-1][0], s)
            else:
                out.append((s, s))
        return out

    def gaps(self, kind: str) -> list[int]:
        seqs = self.seqs[kind]
        return [s for s in range(min(seqs), max(seqs)) if s not in seqs] if seqs else [-1]


def rtp_header(pt: int, seq: int, ts: int, ssrc: int, first: int = 0x80) -> bytes:
    return struct.pack("!BBHII", first, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)


def garbage(rng: random.Random, target_ssrcs: list[int]) -> list[bytes]:
    """Unauthenticated datagrams: what anyone who learns the port can send."""
    out = [b"", b"\x00", b"\x80", b"\x16", b"\xff" * 3]
    for first in range(256):  # every first byte: STUN, DTLS, RTP/RTCP and the rest
        out.append(bytes([first]) + rng.randbytes(rng.randrange(0, 1400)))
    for n in range(1, 12):  # truncated RTP headers
        out.append(rtp_header(96, n, n, rng.choice(target_ssrcs))[:n])
    for pt in range(192, 208):  # truncated and lying RTCP headers
        out += [bytes([0x81, pt]), bytes([0x81, pt, 0xFF, 0xFF]) + rng.randbytes(8),
                bytes([0x9F, pt, 0, 1, 0, 0, 0, 0])]
    for kind in (0x0001, 0x0101, 0x0111, 0x0011):  # STUN: truncated, lying lengths, junk attributes
        head = struct.pack("!HHI12s", kind, 0, 0x2112A442, rng.randbytes(12))
        out += [head[:n] for n in (2, 8, 19)]
        out.append(struct.pack("!HHI12s", kind, 4000, 0x2112A442, rng.randbytes(12)) + rng.randbytes(40))
        body = b"".join(struct.pack("!HH", rng.choice((0x0006, 0x0008, 0x0024, 0x8028, 0x0001, 0x7FFF)),
                                    rng.choice((0, 3, 20, 0xFFFF))) + rng.randbytes(8) for _ in range(6))
        out.append(struct.pack("!HHI12s", kind, len(body), 0x2112A442, rng.randbytes(12)) + body)
    for content in (20, 21, 22, 23, 25):  # DTLS records: truncated, lying lengths, junk handshakes
        out += [bytes([content, 0xFE, 0xFD]),
                bytes([content, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) + rng.randbytes(30),
                bytes([content, 0xFE, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0, 12, 1, 0, 0, 0xFF]) + rng.randbytes(8)]
    for ssrc in target_ssrcs + [rng.getrandbits(32) for _ in range(4)]:  # SRTP/SRTCP that fails to authenticate
        out.append(rtp_header(96, rng.getrandbits(16), 0, ssrc) + rng.randbytes(rng.randrange(0, 1200)))
        out.append(struct.pack("!BBHI", 0x81, 201, 7, ssrc) + rng.randbytes(40))
    return out


def replays(rng: random.Random, sent: list[bytes]) -> list[bytes]:
    """The peer's own datagrams again (libsrtp's replay window), and copies with one byte changed."""
    out = list(sent)
    for data in sent[:100]:
        tampered = bytearray(data)
        tampered[rng.randrange(len(tampered))] ^= 1 << rng.randrange(8)
        out.append(bytes(tampered))
        out.append(data[: rng.randrange(1, len(data))])  # truncated
    return out


def hostile_rtcp(rng: random.Random, own_ssrc: int, media_ssrcs: list[int]) -> list[bytes]:
    """Plain RTCP a peer could authenticate: wrong SSRCs, malformed bodies, huge NACK lists."""
    wrong = [rng.getrandbits(32) for _ in range(3)]
    out = []
    for media in media_ssrcs + wrong:
        for start in range(0, 65536, 5440):  # every sequence number, 340 FCI entries a packet
            lost = [s for s in range(start, min(start + 5440, 65536))]
            out.append(bytes(RtcpRtpfbPacket(fmt=1, ssrc=own_ssrc, media_ssrc=media, lost=lost)))
        out.append(bytes(RtcpPsfbPacket(fmt=1, ssrc=own_ssrc, media_ssrc=media)))  # PLI
        out.append(bytes(RtcpPsfbPacket(fmt=4, ssrc=own_ssrc, media_ssrc=media, fci=rng.randbytes(4))))  # FIR, short
        out.append(bytes(RtcpPsfbPacket(fmt=15, ssrc=own_ssrc, media_ssrc=media, fci=b"REMB" + rng.randbytes(4))))
        out.append(bytes(RtcpPsfbPacket(fmt=15, ssrc=own_ssrc, media_ssrc=media, fci=b"REMB\xff" + rng.randbytes(3))))
        out.append(bytes(RtcpRrPacket(ssrc=rng.getrandbits(32), reports=[
            RtcpReceiverInfo(ssrc=media, fraction_lost=255, packets_lost=-(1 << 23), highest_sequence=rng.getrandbits(32),
                             jitter=rng.getrandbits(32), lsr=rng.getrandbits(32), dlsr=rng.getrandbits(32))])))
    out.append(bytes(RtcpByePacket(sources=media_ssrcs + wrong)))
    for pt in range(192, 208):  # bodies that lie about their counts and lengths, inside valid SRTCP
        for count in (0, 1, 31):
            body = rng.randbytes(rng.choice((0, 4, 8, 20, 64)))
            out.append(struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body)
            out.append(struct.pack("!BBH", 0xA0 | count, pt, len(body) // 4) + body)  # bad padding
        out.append(struct.pack("!BBH", 0x81, pt, 0xFFFF) + rng.randbytes(16))
    out.append(bytes([0x81, 205, 0, 2]) + struct.pack("!II", own_ssrc, media_ssrcs[0]))  # NACK without FCI
    out.append(bytes([0x81, 205, 0, 3]) + struct.pack("!II", own_ssrc, media_ssrcs[0]) + b"\xff\xff")
    return out


def malformed_rtp(rng: random.Random, ssrcs: list[int], pts: list[int]) -> list[bytes]:
    """Plain RTP a peer could authenticate, with headers that lie about what follows: CSRCs, an
    extension or padding longer than the packet (none of it can be parsed)."""
    out = []
    for ssrc in ssrcs:
        for _ in range(5):
            head = rtp_header(rng.choice(pts), rng.getrandbits(16), rng.getrandbits(32), ssrc, 0x8F)
            out.append(head + rng.randbytes(rng.randrange(0, 56)))  # 15 CSRCs announced
            head = rtp_header(rng.choice(pts), rng.getrandbits(16), rng.getrandbits(32), ssrc, 0x90)
            out.append(head + b"\xbe\xde\xff\xff" + rng.randbytes(rng.randrange(0, 64)))  # extension
            head = rtp_header(rng.choice(pts), rng.getrandbits(16), rng.getrandbits(32), ssrc, 0xA0)
            out.append(head + rng.randbytes(rng.randrange(0, 20)) + b"\xff")  # padding
            out.append(head + rng.randbytes(rng.randrange(0, 20)) + b"\x00")
    return out


def log_size(server) -> int:  # type: ignore[no-untyped-def]
    return server.log_path.stat().st_size


def log_since(server, offset: int) -> str:  # type: ignore[no-untyped-def]
    with open(server.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def media_stats(server) -> dict:  # type: ignore[no-untyped-def]
    with server.admin() as c:
        return c.get("/api/v1/media/stats").json()


async def paced(send, datagrams: list[bytes], per_tick: int = 40) -> None:  # type: ignore[no-untyped-def]
    """Send in small groups, so this is malformed traffic, not a flood (a flood is another test)."""
    for i in range(0, len(datagrams), per_tick):
        for data in datagrams[i:i + per_tick]:
            if data is not None:
                send(data)
        await asyncio.sleep(0.01)


def ssrcs_in(sdp: str) -> list[int]:
    return sorted({int(s) for s in re.findall(r"a=ssrc:(\d+) ", sdp)})


def payload_types(sdp: str) -> list[int]:
    return sorted({int(p) for p in re.findall(r"a=rtpmap:(\d+) ", sdp)})


async def test_empty_datagrams_are_ignored(server, clip):
    """An empty UDP datagram at the speaker's or a point's port is dropped without a traceback."""
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    sub = await subscribe(server.url, conf, server.token(conf, "point", "Xã Tân Lập"))
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert await sub.wait_frames(30, timeout=20)
        speaker, point = Peer(pub.pc, answer_port(pub.pc)), Peer(sub.pc, answer_port(sub.pc))
        offset = log_size(server)
        for _ in range(5):
            speaker.send(b"")
            point.send(b"")
            foreign.sendto(b"", speaker.addr)
            await asyncio.sleep(0.05)
        frames = sub.frames
        assert await sub.wait_frames(frames + 30, timeout=10), "the point stopped receiving"
        await asyncio.sleep(0.5)
        log = log_since(server, offset)
        assert "Traceback" not in log and "Exception in callback" not in log, log
    finally:
        foreign.close()
        await sub.close()
        await pub.close()


async def test_empty_datagrams_during_the_handshake_are_ignored(server, clip):
    """Empty datagrams from the moment the answer names the port (ICE, DTLS, then connected): aiortc's
    own receive loop, which reads the socket until the intake takes over, must not die of one."""
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    offset = log_size(server)
    sub = await subscribe(server.url, conf, server.token(conf, "point", "Xã Tân Lập"))
    try:
        addr = ("127.0.0.1", answer_port(sub.pc))
        for _ in range(300):  # 3 s: the handshake and the first frames
            foreign.sendto(b"", addr)
            foreign.sendto(b"", ("127.0.0.1", answer_port(pub.pc)))
            await asyncio.sleep(0.01)
            if sub.frames >= 30:
                break
        assert await sub.wait_frames(30, timeout=20), f"only {sub.frames} frames: the point never connected"
        log = log_since(server, offset)
        assert "Traceback" not in log and "Exception in callback" not in log, log
    finally:
        foreign.close()
        await sub.close()
        await pub.close()


async def test_hostile_datagrams_disturb_no_one(server, clip):
    rng = random.Random(SEED)
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    subs = [await subscribe(server.url, conf, server.token(conf, "point", f"Xã {i}")) for i in range(3)]
    victim, observers = subs[0], subs[1:]
    logs = [SeqLog(sub) for sub in observers]
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for sub in subs:
            assert await sub.wait_frames(30, timeout=20), f"only {sub.frames} frames"
        ours = [v for v in media_stats(server)["consumers"].values() if v["conference"] == conf]
        assert {v["worker"] for v in ours} == {1, 2}  # points on both workers, one beside the victim
        speaker, point = Peer(pub.pc, answer_port(pub.pc)), Peer(sub_pc := victim.pc, answer_port(victim.pc))
        speaker_ssrcs, point_ssrcs = ssrcs_in(pub.pc.localDescription.sdp), ssrcs_in(sub_pc.remoteDescription.sdp)
        point_own = ssrcs_in(sub_pc.localDescription.sdp)[0]
        await asyncio.sleep(1.0)  # some SRTP and SRTCP of both peers to replay
        for log in logs:
            log.recording = True
        offset = log_size(server)

        await paced(lambda d: foreign.sendto(d, speaker.addr), garbage(rng, speaker_ssrcs))
        await paced(speaker.send, garbage(rng, speaker_ssrcs))
        await paced(point.send, garbage(rng, point_ssrcs))
        await paced(speaker.send, replays(rng, speaker.sent))
        await paced(point.send, replays(rng, point.sent))
        await paced(point.send, [point.rtcp(p) for p in hostile_rtcp(rng, point_own, point_ssrcs)], per_tick=10)
        await paced(point.send, [point.rtp(p) for p in malformed_rtp(rng, [point_own, 1234], [96, 111])])
        await paced(point.send, [point.rtp(rtp_header(rng.choice((96, 97, 111)), rng.getrandbits(16), 0, ssrc)
                                           + rng.randbytes(rng.randrange(0, 1200)))  # a point sends no media
                                 for ssrc in point_ssrcs + [rng.getrandbits(32) for _ in range(20)]])
        await paced(speaker.send, [speaker.rtcp(p) for p in hostile_rtcp(rng, speaker_ssrcs[0], [1, 2])])
        # (under SSRCs of its own: packets of the real streams would take indexes the speaker's
        # sender is yet to use, and libsrtp would then refuse its real packets, on both sides)
        await paced(speaker.send, [speaker.rtp(p) for p in malformed_rtp(rng, [rng.getrandbits(32) for _ in range(4)],
                                                                        payload_types(pub.pc.localDescription.sdp))])
        # well-formed RTP under SSRCs of its own and the real payload types: aiortc would learn each
        # new SSRC by payload type and mix its packets into the source (media.ingest.producer drops them)
        await paced(speaker.send, [speaker.rtp(rtp_header(pt, rng.getrandbits(16), rng.getrandbits(32), ssrc)
                                               + bytes([0x41]) + rng.randbytes(rng.randrange(20, 1100)))
                                   for ssrc in [rng.getrandbits(32) for _ in range(4)]
                                   for pt in payload_types(pub.pc.localDescription.sdp) for _ in range(10)])
        await asyncio.sleep(2.0)  # NACKed packets come back, the last ones arrive
        for log in logs:
            log.recording = False

        for n, log in enumerate(logs):
            for kind in ("video", "audio"):
                assert len(log.seqs[kind]) > 50, f"observer {n} got {len(log.seqs[kind])} {kind} packets"
                assert not log.gaps(kind), f"observer {n} missed {kind} packets: received {log.ranges(kind)[:20]}"
        frames = [sub.frames for sub in subs]
        for sub, before in zip(subs, frames):  # the victim, too, is still served
            assert await sub.wait_frames(before + 30, timeout=10), f"{sub.frames} frames, {before} before"
        log_text = log_since(server, offset)
        assert "Traceback" not in log_text and "Exception in callback" not in log_text, log_text[-4000:]
        # the server keeps serving: a new point joins and decodes
        late = await subscribe(server.url, conf, server.token(conf, "point", "Xã mới"))
        try:
            assert await late.wait_frames(30, timeout=20)
        finally:
            await late.close()
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{server.url}/healthz")).status_code == 200
    finally:
        foreign.close()
        for sub in subs:
            await sub.close()
        await pub.close()
