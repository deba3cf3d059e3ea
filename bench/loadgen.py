"""A cheap WHEP load generator: many subscribers per process, no decoding, header-only counting.

Each subscriber is a real aiortc ``RTCPeerConnection`` (recvonly H.264 + Opus) that POSTs its offer to
the WHEP endpoint, so ICE, DTLS and SRTP are the real thing. Once DTLS is connected the subscriber
takes over its UDP socket: the process drains all its sockets every 10 ms itself (``recvmmsg``,
with kernel receive timestamps) and counts RTP packets from the clear RTP header (sequence number, timestamp, SSRC are not
encrypted by SRTP). STUN, DTLS and RTCP datagrams still go to aioice/aiortc, so ICE consent
freshness and the server's sender reports keep working. Video packets are decrypted only until the
first keyframe has been seen, and only the first packet of each frame.

Like a browser, each subscriber sends a receiver report every second (the server drops subscribers
whose RTCP goes silent) and NACKs sequence gaps (the server answers from its history); a gap that
is still open when the results are collected counts as loss.

Forwarding delay: the server's sender reports map each consumer's RTP timestamps onto the
publisher's clock (it forwards the publisher's SR mapping with the consumer's timestamp offset),
and the publisher's SR maps RTP time to the wall clock at which it sent that packet. So for every
packet ``delay = kernel arrival time - (SR wall clock + (rtp_ts - SR rtp_ts) / clock rate)``:
publisher send -> subscriber socket, on one machine clock. The same mapping classifies packets
into the measurement window by their *send* time, which is how the publisher counts what it sent.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import random
import re
import select
import socket
import struct
import threading
import time
import types
from typing import Any

import aiortc.rtcrtpreceiver
import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_RTPFB,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    pack_rtcp_packet,
)

from bench import ipc, rx
from media.core.source import NTP_EPOCH_OFFSET
from bench.procstat import udp_socket_drops
from media.transport import dtls_identity
from media.core.codecs import h264_is_keyframe
from media.transport.ice import restrict_host_addresses
from media.transport.webrtc_transport import patient_consent

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; not exported by Python's socket module
SOL_UDP, UDP_GRO = 17, 104  # Linux (not exported either)
HIST_BIN = 0.00005  # delay histogram: 50 us bins ...
HIST_BINS = 40_000  # ... up to 2 s (the last bin collects everything later)
DRAIN_BATCH = 512  # at most this many datagrams per socket and pass
TICK = 0.01  # the sockets are drained every 10 ms (arrival times come from the kernel, not from us)
NACK_RETRIES = 2
NACK_MAX = 64  # sequence numbers NACKed per gap
CLOCKS = {"video": 90000, "audio": 48000}
_rtp_header = struct.Struct("!HII")  # seq, timestamp, ssrc at offset 2
_timespec = struct.Struct("@qq")


class _iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_iovec)),
        ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _msghdr), ("len", ctypes.c_uint)]


class BatchReceiver:
    """``recvmmsg(2)`` through ctypes: up to BATCH datagrams, their source addresses and kernel
    receive timestamps per system call, into one reusable buffer (parsed in place, not copied)."""

    BATCH = 64
    SIZE = 2048
    CTL = 64
    MSG_DONTWAIT = 0x40

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._recvmmsg = libc.recvmmsg
        self._recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        self._recvmmsg.restype = ctypes.c_int
        n = self.BATCH
        self.buf = ctypes.create_string_buffer(n * self.SIZE)
        self.ctl = ctypes.create_string_buffer(n * self.CTL)
        self.names = ctypes.create_string_buffer(n * 16)
        self.iov = (_iovec * n)()
        self.msgs = (_mmsghdr * n)()
        base, cbase, nbase = (ctypes.addressof(x) for x in (self.buf, self.ctl, self.names))
        for i in range(n):
            self.iov[i].base = base + i * self.SIZE
            self.iov[i].len = self.SIZE
            h = self.msgs[i].hdr
            h.iov = ctypes.pointer(self.iov[i])
            h.iovlen = 1
            h.control = cbase + i * self.CTL
            h.controllen = self.CTL
            h.name = nbase + i * 16
            h.namelen = 16
        self.ptr = ctypes.addressof(self.msgs)
        self.view = memoryview(self.buf).cast("B")
        self.ctl_view = memoryview(self.ctl).cast("B")
        self.names_view = memoryview(self.names).cast("B")

    def recv(self, fd: int) -> int:
        return self._recvmmsg(fd, self.ptr, self.BATCH, self.MSG_DONTWAIT, None)

    def reset(self, k: int) -> None:
        msgs = self.msgs
        for i in range(k):
            h = msgs[i].hdr
            h.controllen = self.CTL
            h.namelen = 16

    def addr(self, i: int) -> tuple[str, int]:
        v = self.names_view[i * 16 : i * 16 + 8]
        return f"{v[4]}.{v[5]}.{v[6]}.{v[7]}", (v[2] << 8) | v[3]


class _NoThread:
    """Stands in for aiortc's per-receiver decoder thread: the load generator never decodes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return False


def _no_decoder_threads() -> None:
    aiortc.rtcrtpreceiver.threading = types.SimpleNamespace(Thread=_NoThread, Event=threading.Event)  # type: ignore[attr-defined]


class Window:
    """What to count: per kind, packets *sent* in [start, end); and datagrams *arriving* in a window."""

    def __init__(self) -> None:
        self.kinds: dict[str, tuple[float, float]] = {}
        self.arrival = (float("inf"), float("inf"))


class Stream:
    __slots__ = (
        "ssrc", "kind", "clock", "bm", "started", "hi", "ext_hi", "unique", "dups", "repaired",
        "nacks", "rx", "keyframe", "kf_ts", "ref_rtp", "base", "lsr", "lsr_time", "last_ts", "last_mapped",
        "w0", "w1", "win_unique", "win_min", "win_max", "rx_win", "rx_win_bytes", "unmapped",
        "prior_expected", "prior_unique", "base_ext", "hist",
    )

    def __init__(self, ssrc: int, kind: str, window: Window, hist: list[int]) -> None:
        self.ssrc = ssrc
        self.kind = kind
        self.clock = CLOCKS[kind]
        self.bm = bytearray(65536)  # seen sequence numbers (slots half a cycle ahead are cleared)
        self.started = False
        self.hi = 0
        self.ext_hi = 0
        self.base_ext = 0
        self.unique = 0
        self.dups = 0
        self.repaired = 0
        self.nacks = 0
        self.rx = 0
        self.keyframe = kind != "video"
        self.kf_ts = -1  # timestamp of the last frame whose first packet was checked for a keyframe
        self.ref_rtp = 0  # RTP timestamp of the first sender report ...
        self.base: float | None = None  # ... and the earliest wall clock any SR mapped it to
        self.lsr = 0
        self.lsr_time = 0.0
        self.last_ts = -1
        self.last_mapped = 0.0
        self.w0, self.w1 = window.kinds.get(kind, (float("inf"), float("inf")))
        self.win_unique = 0
        self.win_min = None
        self.win_max = None
        self.rx_win = 0
        self.rx_win_bytes = 0
        self.unmapped = 0
        self.prior_expected = 0
        self.prior_unique = 0
        self.hist = hist

    def result(self) -> dict:
        holes = 0
        if self.win_min is not None:
            holes = (self.win_max - self.win_min + 1) - self.win_unique
        return {
            "win_unique": self.win_unique,
            "holes": holes,
            "rx_win": self.rx_win,
            "rx_win_bytes": self.rx_win_bytes,
            "rx": self.rx,
            "unique": self.unique,
            "dups": self.dups,
            "repaired": self.repaired,
            "nacks": self.nacks,
            "unmapped": self.unmapped,
        }


def receiver_info(st: Any) -> RtcpReceiverInfo:
    """The report block of one received stream (a ``Stream`` or a C-backed ``rx.CStream``)."""
    expected = st.ext_hi - st.base_ext + 1
    lost = max(-0x800000, min(0x7FFFFF, expected - st.unique))
    exp_int = expected - st.prior_expected
    lost_int = exp_int - (st.unique - st.prior_unique)
    st.prior_expected, st.prior_unique = expected, st.unique
    fraction = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
    dlsr = 0
    if st.lsr_time:
        dlsr = int((time.time() - st.lsr_time) * 65536) & 0xFFFFFFFF
    return RtcpReceiverInfo(
        ssrc=st.ssrc,
        fraction_lost=min(fraction, 255),
        packets_lost=lost,
        highest_sequence=st.ext_hi & 0xFFFFFFFF,
        jitter=0,
        lsr=st.lsr,
        dlsr=dlsr,
    )


def _nack_packet(ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """Generic NACK (RFC 4585) that also handles sequence numbers wrapping past 65535."""
    payload = struct.pack("!LL", ssrc, media_ssrc)
    pid, blp = lost[0], 0
    for p in lost[1:]:
        d = (p - pid - 1) & 0xFFFF
        if d < 16:
            blp |= 1 << d
        else:
            payload += struct.pack("!HH", pid, blp)
            pid, blp = p, 0
    payload += struct.pack("!HH", pid, blp)
    return pack_rtcp_packet(RTCP_RTPFB, RTCP_RTPFB_NACK, payload)


def _sdp_ssrcs(sdp: str) -> dict[int, str]:
    """The media SSRCs of an answer by kind. RTX SSRCs (second of an ``a=ssrc-group:FID``) are left
    out: their packets are retransmissions under their own numbers, not a stream of their own (they
    are not decrypted here, so they are not counted as repairs either)."""
    kinds: dict[int, str] = {}
    rtx = {int(m.group(1)) for m in re.finditer(r"a=ssrc-group:FID \d+ (\d+)", sdp)}
    kind = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=ssrc:") and kind in CLOCKS:
            m = re.match(r"a=ssrc:(\d+)", line)
            if m and int(m.group(1)) not in rtx:
                kinds.setdefault(int(m.group(1)), kind)
    return kinds


def _prefer(pc: RTCPeerConnection) -> None:
    """Offer only H.264 (+RTX) and Opus, as the publisher sends: both servers then forward as they are."""
    for t in pc.getTransceivers():
        caps = RTCRtpSender.getCapabilities(t.kind).codecs
        want = "video/h264" if t.kind == "video" else "audio/opus"
        prefs = [c for c in caps if c.mimeType.lower() == want]
        prefs += [c for c in caps if c.mimeType.lower() == f"{t.kind}/rtx"]
        t.setCodecPreferences(prefs)


def _take_queued_rtp(conn: Any, handle: Any) -> None:
    """RTP that arrived while DTLS was finishing sits in aioice's queue: count it; leave the rest."""
    queue = conn._queue
    keep = []
    while not queue.empty():
        item = queue.get_nowait()
        data = item[0]
        if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 209:
            handle(data)
        else:
            keep.append(item)
    for item in keep:
        queue.put_nowait(item)


class Subscriber:
    def __init__(self, gen: "LoadGen", index: int, token: str) -> None:
        self.gen = gen
        self.index = index
        self.token = token
        self.pc: RTCPeerConnection | None = None
        self.offer = ""
        self.dtls: Any = None
        self.streams: dict[int, Stream] = {}
        self.sdp_kinds: dict[int, str] = {}
        self.pt_kinds: dict[int, str] = {}
        self.rtcp_ssrc = random.getrandbits(32) or 1
        self.port = 0
        self.status = 0
        self.error = ""
        self.location = ""  # the WHEP session's URL (Location of the 201), for a DELETE
        self.t_post: float | None = None
        self.t_201: float | None = None
        self.t_connected: float | None = None
        self.t_key: float | None = None
        self.taken = False
        self.closed = False
        self.fd: int | None = None
        self.csock: Any = None  # the socket's C state when the C receive loop reads it

    async def prepare(self) -> None:
        # one certificate per load-generator process, like the server: the storm measures the relay's
        # joins, not the harness generating keys for 250 simulated points
        pc = dtls_identity.peer_connection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        _prefer(pc)
        patient_consent(pc)  # like a browser at a connection point: consent lost after ~30 s (RFC 7675)
        await pc.setLocalDescription(await pc.createOffer())
        self.offer = pc.localDescription.sdp

    async def join(self, url: str, fire_at: float) -> None:
        await asyncio.sleep(max(0.0, fire_at - time.time()))
        headers = {"Content-Type": "application/sdp"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.t_post = time.time()
        try:
            async with self.gen.http().post(url, data=self.offer, headers=headers) as r:
                status, answer = r.status, await r.text()
                self.location = r.headers.get("Location", "")
        except Exception as exc:  # noqa: BLE001 - reported per subscriber
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            return
        self.t_201 = time.time()
        self.status = status
        if status != 201:
            self.error = f"HTTP {status}: {answer[:200]}"
            return
        pc = self.pc
        assert pc is not None
        self.sdp_kinds = _sdp_ssrcs(answer)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:  # noqa: BLE001
            self.error = f"setRemoteDescription: {exc}"[:300]
            return
        for t in pc.getTransceivers():
            for c in t._codecs:
                if not c.mimeType.lower().endswith("/rtx"):
                    self.pt_kinds[c.payloadType] = t.kind
        dtls = pc.getTransceivers()[0].receiver.transport
        self.dtls = dtls
        dtls.on("statechange", self._dtls_state)  # sync handler: runs the moment DTLS connects
        original_rtcp = dtls._handle_rtcp_data

        async def handle_rtcp(data: bytes) -> None:
            try:
                for packet in RtcpPacket.parse(data):
                    if isinstance(packet, RtcpSrPacket):
                        st = self._stream(packet.ssrc, None)
                        if st is not None:
                            self._sender_report(st, packet.sender_info)
            except Exception:  # noqa: BLE001 - never break aiortc's receive loop
                pass
            await original_rtcp(data)

        dtls._handle_rtcp_data = handle_rtcp

    @staticmethod
    def _sender_report(st: Stream, info: Any) -> None:
        """Keep the earliest RTP -> wall clock mapping seen.

        Each SR maps RTP time to the moment the publisher sent a packet; the publisher is never
        early, only sometimes late, so the earliest mapping is the one of a packet sent exactly on
        time: it gives the frame's due time. Delay is then measured from there (the publisher's own
        lateness is reported separately).
        """
        now = time.time()
        ntp = info.ntp_timestamp
        st.lsr = (ntp >> 16) & 0xFFFFFFFF
        st.lsr_time = now
        wall = ntp / (1 << 32) - NTP_EPOCH_OFFSET
        if not ntp or abs(wall - now) > 60:
            return  # no packet sent yet, or nonsense
        if st.base is None:
            st.ref_rtp = info.rtp_timestamp
            st.base = wall
        else:
            d = (((info.rtp_timestamp - st.ref_rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000) / st.clock
            if wall - d < st.base:
                st.base = wall - d
                st.last_ts = -1

    def _dtls_state(self) -> None:
        state = self.dtls.state
        if state == "connected" and not self.taken:
            self.t_connected = time.time()
            try:
                self._takeover()
            except Exception as exc:  # noqa: BLE001
                self.error = f"takeover: {type(exc).__name__}: {exc}"
        elif state in ("closed", "failed"):
            self.closed = True
            if self.fd is not None:
                self.gen.remove_socket(self.fd)
                self.fd = None

    def _stream(self, ssrc: int, pt: int | None) -> Stream | None:
        st = self.streams.get(ssrc)
        if st is None:
            kind = self.sdp_kinds.get(ssrc) or (self.pt_kinds.get(pt) if pt is not None else None)
            if kind not in CLOCKS:
                return None
            gen = self.gen
            if gen.crx is not None:
                ident = len(gen.cstreams)
                window = gen.window.kinds.get(kind, (float("inf"), float("inf")))
                st = rx.CStream(ident, ssrc, kind, CLOCKS[kind], window, gen.chist[kind])
                gen.cstreams.append((self, st))
                if self.csock is not None:
                    gen.crx.add_stream(self.csock, st)
            else:
                st = Stream(ssrc, kind, gen.window, gen.hist[kind])
            self.streams[ssrc] = st
        return st

    # --- the receive path ------------------------------------------------------------------------
    def _takeover(self) -> None:
        """Read the nominated pair's socket ourselves; hand everything that is not RTP to aioice."""
        dtls = self.dtls
        conn = dtls.transport._connection
        pair = conn._nominated.get(1)
        protocol = pair.protocol
        original = protocol.datagram_received
        tsock = protocol.transport.get_extra_info("socket")
        sock = getattr(tsock, "_sock", tsock)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # capped by net.core.rmem_max
        if self.gen.gro:
            sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        self.port = sock.getsockname()[1]
        self.gen.ports.add(self.port)
        loop = asyncio.get_running_loop()
        fd = sock.fileno()
        if self.gen.crx is not None:
            self._takeover_c(conn, fd, original)
            return
        handle_rtp = self._make_rtp_handler()
        rx = self.gen.rx
        view, ctl, msgs, size, ctl_size = rx.view, rx.ctl_view, rx.msgs, rx.SIZE, rx.CTL
        unpack_ts = _timespec.unpack_from
        batch = rx.BATCH

        def drain() -> None:
            for _ in range(DRAIN_BATCH // batch):
                k = rx.recv(fd)
                if k <= 0:
                    return
                for i in range(k):
                    m = msgs[i]
                    length = m.len
                    off = i * size
                    if length < 12 or not 127 < view[off] < 192 or 191 < view[off + 1] < 209:
                        original(bytes(view[off : off + length]), rx.addr(i))  # STUN, DTLS, SRTCP
                        continue
                    if m.hdr.controllen:
                        sec, nsec = unpack_ts(ctl, i * ctl_size + 16)
                        handle_rtp(view, off, length, sec + nsec * 1e-9)
                    else:
                        handle_rtp(view, off, length, time.time())
                rx.reset(k)
                if k < batch:
                    return

        loop._remove_reader(fd)  # the datagram transport's reader: LoadGen's batch reader replaces it
        self.gen.add_socket(fd, drain)
        self.fd = fd
        self.taken = True
        _take_queued_rtp(conn, lambda data: handle_rtp(data, 0, len(data), time.time()))

    def _takeover_c(self, conn: Any, fd: int, original: Any) -> None:
        """The C receive loop reads the socket from now on (``LoadGen._on_event`` gets the rest)."""
        gen = self.gen
        crx = gen.crx
        asyncio.get_running_loop()._remove_reader(fd)
        self.csock = crx.add_socket(fd, gen.gro)
        for st in self.streams.values():
            crx.add_stream(self.csock, st)
        gen.by_fd[fd] = (self, original)
        gen.epoll.register(fd, select.EPOLLIN)
        self.fd = fd
        self.taken = True
        _take_queued_rtp(conn, lambda data: gen.on_event(rx.UNKNOWN_SSRC, fd, -1, data, time.time(), 0, 0, None))
        for event in crx.events():
            gen.on_event(*event)

    def _make_rtp_handler(self):  # type: ignore[no-untyped-def]
        streams = self.streams
        unpack_hdr = _rtp_header.unpack_from
        window = self.gen.window
        sub = self

        def handle_rtp(buf: Any, off: int, length: int, arrival: float) -> None:
            seq, ts, ssrc = unpack_hdr(buf, off + 2)
            st = streams.get(ssrc)
            if st is None:
                st = sub._stream(ssrc, buf[off + 1] & 0x7F)
                if st is None:
                    return
            st.rx += 1
            if not st.keyframe and ts != st.kf_ts:
                # Only a frame's first packet can start a keyframe (STAP-A with SPS, or the IDR's
                # first fragment): decrypting just those keeps the storm cheap for the load generator.
                st.kf_ts = ts
                sub._check_keyframe(st, bytes(buf[off : off + length]), arrival)
            a0, a1 = window.arrival
            if a0 <= arrival < a1:
                st.rx_win += 1
                st.rx_win_bytes += length
            bm = st.bm
            if not st.started:
                st.started = True
                st.hi = seq
                st.ext_hi = st.base_ext = seq + 65536
                ext = st.ext_hi
                bm[seq] = 1
                st.unique += 1
            else:
                d = (seq - st.hi) & 0xFFFF
                if 0 < d < 0x8000:
                    if d > 1:
                        sub._gap(st, d)
                    else:
                        bm[seq ^ 0x8000] = 0
                    st.hi = seq
                    st.ext_hi += d
                    ext = st.ext_hi
                    bm[seq] = 1
                    st.unique += 1
                elif bm[seq]:
                    st.dups += 1
                    return
                else:  # a retransmission filling a gap
                    bm[seq] = 1
                    st.unique += 1
                    st.repaired += 1
                    ext = st.ext_hi - ((st.hi - seq) & 0xFFFF)
            if arrival < st.w0 - 1.0:
                return  # window not started yet: skip the clock mapping
            if ts != st.last_ts:
                if st.base is None:
                    st.unmapped += 1
                    return
                st.last_ts = ts
                st.last_mapped = st.base + (
                    ((ts - st.ref_rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                ) / st.clock
            sent = st.last_mapped
            if st.w0 <= sent < st.w1:
                st.win_unique += 1
                if st.win_min is None or ext < st.win_min:
                    st.win_min = ext
                if st.win_max is None or ext > st.win_max:
                    st.win_max = ext
                i = int((arrival - sent) / HIST_BIN)
                st.hist[i if 0 <= i < HIST_BINS else (0 if i < 0 else HIST_BINS)] += 1
                if i < 0:
                    sub.gen.negative_delays += 1

        return handle_rtp

    def _check_keyframe(self, st: Stream, data: bytes, arrival: float) -> None:
        srtp = self.dtls._rx_srtp
        if srtp is None:
            return
        try:
            clear = srtp.unprotect(data)
        except Exception:  # noqa: BLE001 - not decryptable (yet): ignore
            return
        offset = 12 + 4 * (clear[0] & 0x0F)
        if clear[0] & 0x10 and len(clear) >= offset + 4:
            offset += 4 + 4 * struct.unpack_from("!H", clear, offset + 2)[0]
        if h264_is_keyframe(clear[offset:]):
            st.keyframe = True
            if self.t_key is None:
                self.t_key = arrival

    def _gap(self, st: Stream, d: int) -> None:
        bm = st.bm
        hi = st.hi
        for i in range(1, d + 1):
            bm[((hi + i) & 0xFFFF) ^ 0x8000] = 0
        self._missing(st, hi, d)

    def _missing(self, st: Any, hi: int, d: int) -> None:
        """Sequence numbers hi+1 .. hi+d-1 did not arrive: NACK them (the bitmap is already cleared)."""
        if d - 1 > NACK_MAX:
            self.gen.long_gaps += 1  # a receiver would ask for a keyframe rather than NACK this
            return
        self._nack(st, [(hi + i) & 0xFFFF for i in range(1, d)], 0)

    def _nack(self, st: Stream, missing: list[int], tries: int) -> None:
        missing = [s for s in missing if not st.bm[s]]
        if not missing or self.closed:
            return
        st.nacks += len(missing)
        self.gen.send_rtcp(self, _nack_packet(self.rtcp_ssrc, st.ssrc, missing))
        if tries + 1 < NACK_RETRIES:
            asyncio.get_running_loop().call_later(0.1, self._nack, st, missing, tries + 1)

    def receiver_report(self) -> bytes | None:
        reports = [receiver_info(st) for st in self.streams.values() if st.started]
        if not reports:
            return None
        return bytes(RtcpRrPacket(ssrc=self.rtcp_ssrc, reports=reports))

    def result(self) -> dict:
        kinds: dict[str, dict] = {}
        for st in self.streams.values():
            if st.started:
                kinds[st.kind] = st.result()
        return {
            "index": self.index,
            "status": self.status,
            "error": self.error,
            "t_post": self.t_post,
            "t_201": self.t_201,
            "t_connected": self.t_connected,
            "t_key": self.t_key,
            "closed": self.closed,
            "kinds": kinds,
        }

    async def close(self) -> None:
        if self.pc is not None:
            try:
                await asyncio.wait_for(self.pc.close(), 5)
            except Exception:  # noqa: BLE001
                pass


class LoadGen:
    """One load-generator process: its subscribers, their sockets and the counts."""

    subscriber_class: type[Subscriber] = Subscriber  # a variant's subscribers (bench.switch_watch)

    def __init__(self) -> None:
        self.subs: list[Subscriber] = []
        self._http: aiohttp.ClientSession | None = None
        # UDP_GRO on the subscribers' sockets (C receive loop only): the kernel hands each GSO send
        # over as one buffer instead of cutting it into datagrams on the sender's time (loopback)
        self.gro = False
        self.window = Window()
        self.hist = {kind: [0] * (HIST_BINS + 1) for kind in CLOCKS}
        self.ports: set[int] = set()
        self.negative_delays = 0
        self.rtcp_errors = 0
        self.tasks: list[asyncio.Task] = []
        self.long_gaps = 0
        self.epoll = select.epoll()
        self.rx = BatchReceiver()
        self.readers: dict[int, Any] = {}
        self.passes = 0
        use_c = rx.AVAILABLE and os.environ.get("DIEMCAU_BENCH_RX", "c") != "python"
        self.crx = rx.CReceiver(HIST_BIN, HIST_BINS) if use_c else None
        self.chist = {kind: self.crx.new_hist() for kind in CLOCKS} if self.crx is not None else {}
        self.cstreams: list[tuple[Subscriber, Any]] = []
        self.by_fd: dict[int, tuple[Subscriber, Any]] = {}

    def http(self) -> aiohttp.ClientSession:
        """The process's HTTP client for the WHEP POSTs. aiohttp, not httpx: in a join storm httpx
        spent ~1.3-1.9 ms of CPU per POST against aiohttp's ~0.5 (100 concurrent POSTs, alternating),
        and the load generator shares the server's two cores."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
            )
        return self._http

    def on_event(self, kind: int, fd: int, stream: int, data: bytes, arrival: float, hi: int, gap: int,
                 addr: Any) -> None:
        """What the C receive loop hands back to Python."""
        if kind == rx.GAP:
            sub, st = self.cstreams[stream]
            sub._missing(st, hi, gap)
        elif kind == rx.KEYFRAME_CHECK:
            sub, st = self.cstreams[stream]
            sub._check_keyframe(st, data, arrival)
        elif kind == rx.NOT_RTP:
            entry = self.by_fd.get(fd)
            if entry is not None:
                entry[1](data, addr)  # STUN, DTLS, SRTCP: aioice's own handler
        elif kind == rx.UNKNOWN_SSRC:
            entry = self.by_fd.get(fd)
            if entry is None or entry[0].csock is None:
                return
            sub = entry[0]
            if sub._stream(struct.unpack_from("!I", data, 8)[0], data[1] & 0x7F) is not None:
                self.crx.packet(sub.csock, data, arrival)

    def add_socket(self, fd: int, drain: Any) -> None:
        self.readers[fd] = drain
        self.epoll.register(fd, select.EPOLLIN)

    def remove_socket(self, fd: int) -> None:
        self.readers.pop(fd, None)
        self.by_fd.pop(fd, None)
        if self.crx is not None:
            self.crx.remove_socket(fd)
        try:
            self.epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    async def _read(self) -> None:
        """Drain every readable subscriber socket each TICK: one wake-up for all of them.

        Reacting to each datagram (asyncio's way) would cost an event-loop callback per packet;
        arrival times come from kernel timestamps, so batching changes nothing that is measured.
        Socket buffers (up to 4 MiB each) hold seconds of media.
        """
        poll = self.epoll.poll
        readers = self.readers
        crx = self.crx
        while True:
            await asyncio.sleep(TICK)
            self.passes += 1
            if crx is not None:
                crx.drain_all(self.epoll.fileno(), self.on_event)
                continue
            for fd, _ev in poll(0):
                drain = readers.get(fd)
                if drain is not None:
                    drain()

    def send_rtcp(self, sub: Subscriber, data: bytes) -> None:
        dtls = sub.dtls
        if dtls is None or dtls._tx_srtp is None:
            return
        asyncio.ensure_future(self._send_rtcp(dtls, data))

    async def _send_rtcp(self, dtls: Any, data: bytes) -> None:
        try:
            await dtls._send_rtp(data)  # SRTCP-protects RTCP (is_rtcp) and sends it
        except Exception:  # noqa: BLE001 - e.g. ConnectionError after close
            self.rtcp_errors += 1

    async def _reports(self) -> None:
        """One receiver report per subscriber per second, spread over the second."""
        while True:
            subs = [s for s in self.subs if s.taken and not s.closed]
            slices = 10
            for k in range(slices):
                for sub in subs[k::slices]:
                    data = sub.receiver_report()
                    if data is not None:
                        self.send_rtcp(sub, data)
                await asyncio.sleep(1.0 / slices)

    async def handle(self, m: dict) -> dict:
        op = m["op"]
        if op == "prepare":
            t0 = time.time()
            self.gro = bool(m.get("gro")) and self.crx is not None
            self.subs = [self.subscriber_class(self, i, tok) for i, tok in m["subs"]]
            for sub in self.subs:
                await sub.prepare()
            self.tasks.append(asyncio.ensure_future(self._reports()))
            self.tasks.append(asyncio.ensure_future(self._read()))
            return {"prepared": len(self.subs), "seconds": time.time() - t0, "pid": os.getpid()}
        if op == "join":
            fire = {int(k): v for k, v in m["fire"].items()}
            for sub in self.subs:
                self.tasks.append(asyncio.ensure_future(sub.join(m["url"], fire[sub.index])))
            return {}
        if op == "status":
            return {
                "answered": sum(1 for s in self.subs if s.t_201 is not None),
                "failed": sum(1 for s in self.subs if s.error),
                "connected": sum(1 for s in self.subs if s.taken),
                "keyframe": sum(1 for s in self.subs if s.t_key is not None),
                "closed": sum(1 for s in self.subs if s.closed),
            }
        if op == "window":
            _steady_priority(True)
            self.window.kinds = {k: tuple(v) for k, v in m["kinds"].items()}
            self.window.arrival = tuple(m["arrival"])
            if self.crx is not None:
                self.crx.set_arrival_window(*self.window.arrival)
            for sub in self.subs:
                for st in sub.streams.values():
                    st.w0, st.w1 = self.window.kinds.get(st.kind, (float("inf"), float("inf")))
            return {}
        if op == "collect":
            _steady_priority(False)
            hists = self.hist
            if self.crx is not None:
                hists = {k: self.crx.hist_counts(h, HIST_BINS + 1) for k, h in self.chist.items()}
            hist = {k: {i: n for i, n in enumerate(h) if n} for k, h in hists.items()}
            return {
                "subs": [s.result() for s in self.subs],
                "hist": hist,
                "hist_bin": HIST_BIN,
                "socket_drops": udp_socket_drops(self.ports),
                "negative_delays": self.negative_delays + (self.crx.negative_delays if self.crx else 0),
                "receive_loop": "c" if self.crx is not None else "python",
                "rtcp_errors": self.rtcp_errors,
                "long_gaps": self.long_gaps,
            }
        if op == "close":
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*(s.close() for s in self.subs))
            if self._http is not None:
                await self._http.close()
            return {}
        raise ValueError(f"unknown op {op}")


def _steady_priority(on: bool) -> None:
    """SCHED_IDLE while the steady window is measured, nice +10 otherwise.

    At nice +10 a busy load generator still delayed the media workers: the kernel let it finish
    its slice before a woken worker ran, which showed in the forwarding delay (N=500, A/B in one
    session: p99 27.7 / 30.9 ms at nice +10, 21.2 / 23.2 ms at SCHED_IDLE). In the window the load
    generator only counts packets (arrival times are kernel timestamps, its sockets hold seconds of
    media), so it can wait for idle CPU. During the join storm it keeps nice +10: the clients'
    half of each handshake belongs to the measured join time.
    """
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, 0, 10)
    except (OSError, AttributeError):
        pass


def main(conn: Any) -> None:
    ipc.child_setup()
    # The load shares the server's cores: let the server have them first. Arrival times are
    # kernel timestamps and socket buffers hold seconds of media, so running late changes no
    # measurement; dropping does, and is counted (per-socket kernel drop counters).
    _steady_priority(False)
    restrict_host_addresses(["127.0.0.1"])
    _no_decoder_threads()

    async def run() -> None:
        gen = LoadGen()
        await ipc.serve(conn, gen.handle)

    asyncio.run(run())
