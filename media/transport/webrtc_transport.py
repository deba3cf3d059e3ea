"""WebRtcTransport: one peer's ICE/DTLS transport, and every datagram on its socket sorted in one place.

A WebRTC peer's media, DTLS and ICE share one UDP 5-tuple. aiortc takes every datagram through
aioice's STUN parse attempt, an asyncio queue and a wake-up of the DTLS transport's receive task
before it unprotects it: for the speaker that hop is paid on ~300 packets a second in the ingest,
for a point on every receiver report (times hundreds of points in a media worker). So once ICE has
completed, the nominated pair's datagrams go to :meth:`WebRtcTransport.datagram_received`, which
sorts them by their first byte (RFC 7983) and hands each to the one handler for its kind:

- STUN (0-3): a peer's consent check to :class:`ConsentAnswer`, the answer to ours to
  :class:`ConsentCheck`; anything else (nominations, role conflicts, bad integrity) to aioice;
- DTLS (20-63): to aiortc's DTLS transport, through aioice's receive queue as before;
- SRTCP and SRTP (128-191), once DTLS is up and the keys are ours (:meth:`take`): unprotected,
  parsed and routed to aiortc's senders and receivers right there, exactly as the receive loop
  of aiortc's ``RTCDtlsTransport`` would (plain receiver reports go to ``on_report`` as blocks);
  SRTP only on a publisher's socket, a point's RTP (there is none) keeps aiortc's way.

The transport also holds what the consumer sends with (socket, remote address, SRTP session, the
AES-GCM master key), the pinned path (media.transport.pinned_path), the drained read of the
speaker's socket (media.transport.socket_drain) and consent both ways. With BUNDLE (browsers, OBS,
aiortc) a peer has one; an offer without it gets one per m-line's ICE transport.

What it needs of aiortc's and aioice's internals (the nominated pair, the receive queue, the
SRTP sessions, the senders' and receivers' handlers) it reaches through media.aiortc_compat.
"""

from __future__ import annotations

import asyncio
import logging
import socket as socket_module
import struct
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc.rtp import RtcpPacket, RtpPacket, is_rtcp

from media import aiortc_compat
from media.aiortc_compat import count_received, rtcp_handler, rtp_handler
from media.core.source import NTP_EPOCH_OFFSET
from media.transport import consent_check, pinned_path
from media.transport.consent_answer import ConsentAnswer
from media.transport.consent_check import ConsentCheck
from media.transport.drive import drive
from media.transport.receiver_reports import ReportBlock, receiver_reports
from media.transport.socket_drain import BurstSink, SocketDrain
from media.transport.udp_mux import UdpMux, mux_of

log = logging.getLogger(__name__)

NTP_EPOCH_MS = NTP_EPOCH_OFFSET * 1000  # aiortc.clock.current_ms without datetime
# OpenSSL SRTP profile name -> (master key length, master salt length) of the AES-GCM ones (RFC 7714)
GCM_PROFILES = {b"SRTP_AEAD_AES_128_GCM": (16, 12), b"SRTP_AEAD_AES_256_GCM": (32, 12)}


class WebRtcTransport:
    """One ICE connection's nominated pair, from ICE completion on; its SRTP from :meth:`take` on."""

    __slots__ = (
        "_connection", "_to_aioice", "_to_dtls", "_component", "protocol", "socket", "fd", "sendto",
        "remote_addr", "received_queue", "dtls", "tx_srtp", "_rx_srtp", "_rtp_router", "_extensions", "_rtp",
        "on_report", "consent_answer", "consent_check", "drain", "_pinned", "stun", "dtls_records", "srtp",
        "srtcp", "short_reports", "mux",
    )

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._to_aioice: Callable[[bytes, tuple], None] | None = None  # the pair protocol's own callback
        self._to_dtls: Callable[[bytes, int], None] | None = None  # aioice's queue, read by aiortc's DTLS
        self._component = 1
        self.protocol: Any = None  # aioice's protocol of the nominated pair (None: ICE not completed)
        self.socket: socket_module.socket | None = None  # None when our side relays through TURN
        self.fd = -1
        self.sendto: Callable[[Any, tuple], None] | None = None
        self.remote_addr: tuple | None = None
        self.received_queue: asyncio.Queue | None = None  # read but not yet handled by aiortc
        self.dtls: Any = None  # aiortc's RTCDtlsTransport, once its SRTP is ours
        self.tx_srtp: pylibsrtp.Session | None = None
        self._rx_srtp: pylibsrtp.Session | None = None
        self._rtp_router: Any = None
        self._extensions: Any = None
        self._rtp = False  # SRTP is ours too (a publisher's socket)
        self.on_report: Callable[[ReportBlock], None] | None = None  # plain receiver reports, block by block
        self.consent_answer: ConsentAnswer | None = None
        self.consent_check: ConsentCheck | None = None
        self.drain: SocketDrain | None = None
        self._pinned = False
        self.stun = self.dtls_records = self.srtp = self.srtcp = 0  # datagrams this transport sorted, by kind
        self.short_reports = 0  # SRTCP datagrams that went to ``on_report``
        self.mux: UdpMux | None = None  # the process's shared socket the pair is on (media.transport.udp_mux)

    @classmethod
    def take(cls, dtls: Any, rtp: bool = False, burst: BurstSink | None = None) -> WebRtcTransport | None:
        """The transport under aiortc's connected ``dtls``, its SRTP taken off the socket (and its
        RTP too with ``rtp``; with ``burst`` its socket is drained a burst at a time). The same
        object for every m-line of a bundle; None while ICE or DTLS is not up."""
        connection, keys = aiortc_compat.ice_connection(dtls), aiortc_compat.srtp_state(dtls)
        if connection is None or keys[0] is None:
            return None
        transport = cls.of(connection)
        if not transport._bind():
            return None
        transport._adopt(dtls, keys, rtp)
        if burst is not None and transport.drain is None and transport.socket is not None:
            if transport.mux is not None:  # the shared socket is drained already: the burst hears its reads
                transport.drain = transport.mux.drain_into(transport.protocol, burst)
            else:
                transport.drain = SocketDrain.take(transport.protocol.transport, burst, transport.datagram_received)
        return transport

    @classmethod
    def find(cls, pc: Any) -> WebRtcTransport | None:
        """The first of a peer connection's transports whose ICE has completed (None: none yet)."""
        for connection in ice_connections(pc):
            transport = cls.of(connection)
            if transport._bind():
                return transport
        return None

    @classmethod
    def of(cls, connection: Any) -> WebRtcTransport:
        """The transport of an aioice connection, made on first use."""
        transport = getattr(connection, "webrtc_transport", None)
        if transport is None:
            transport = connection.webrtc_transport = cls(connection)
        return transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        """Every datagram of the nominated pair, whoever read it (asyncio or the drain)."""
        if not data:
            return  # an empty datagram (anyone can send one): nothing to route, no byte to sort on
        first = data[0]
        if 127 < first < 192:  # RTP or RTCP
            if self.dtls is not None:
                if is_rtcp(data):
                    self.srtcp += 1
                    self._receive_rtcp(data)
                    return
                if self._rtp:
                    self.srtp += 1
                    self._receive_rtp(data)
                    return
            self._to_dtls(data, self._component)  # aiortc's way: its DTLS transport drops it until keyed
        elif first < 4:  # STUN
            self.stun += 1
            if first == 0:  # a request or an indication
                answer = self.consent_answer
                if answer is not None and answer.answer(data, addr):
                    return
            elif first == 1:  # a response or an error
                check = self.consent_check
                if check is not None and check.response(data, addr):
                    return
            self._to_aioice(data, addr)
        elif 19 < first < 64:  # DTLS
            self.dtls_records += 1
            self._to_dtls(data, self._component)
        else:
            self._to_aioice(data, addr)  # no kind of ours: aioice passes it on as data, aiortc drops it

    def pin(self) -> bool:
        """Connect the socket to the peer so the kernel keeps the route (media.transport.pinned_path);
        never a socket shared by every peer of the process."""
        if not self._pinned and self.socket is not None and self.remote_addr is not None and self.mux is None:
            self._pinned = pinned_path.pin(self.socket, self.remote_addr)
        return self._pinned

    def path_pinned(self) -> bool:
        """Whether the kernel holds the socket connected to the peer (read back)."""
        return self._pinned and pinned_path.is_pinned(self.socket, self.remote_addr)

    def stats(self) -> dict:
        """Datagrams sorted by kind, consent both ways, the drained reads, the pinned path."""
        answer, check, drain = self.consent_answer, self.consent_check, self.drain
        return {
            "stun": self.stun, "dtls": self.dtls_records, "srtp": self.srtp, "srtcp": self.srtcp,
            "short_reports": self.short_reports,
            "consent_answered": answer.answered if answer is not None else 0,
            "consent_checks": ({"sent": check.sent, "answered": check.answered, "lost": check.lost}
                               if check is not None else None),
            "drain_wakeups": drain.wakeups if drain is not None else 0,
            "drain_datagrams": drain.datagrams if drain is not None else 0,
            "path_pinned": self.path_pinned(),
        }

    def _adopt(self, dtls: Any, keys: tuple[Any, Any, Any, Any], rtp: bool) -> None:
        """Take the SRTP of the first DTLS transport keyed on this pair (``keys``: its sessions, RTP
        router and header extensions); with ``rtp`` the SRTP packets too, not only SRTCP."""
        if self.dtls is None:
            self.dtls = dtls
            self._rx_srtp, self.tx_srtp, self._rtp_router, self._extensions = keys
        self._rtp = self._rtp or rtp

    def _bind(self) -> bool:
        """Take the nominated pair's datagrams (once); False while ICE has not completed."""
        if self.protocol is not None:
            return True
        connection = self._connection
        pair = aiortc_compat.nominated_pair(connection, 1)
        if pair is None or pair.protocol.transport is None:
            return False
        protocol = self.protocol = pair.protocol
        self._component = pair.component
        self.socket = protocol_socket(protocol)
        self.mux = mux_of(protocol)
        if self.socket is not None:
            self.sendto, self.fd = self.socket.sendto, self.socket.fileno()
        else:  # our side relays through TURN: the Python path, through aioice's relay
            self.sendto = relayed_sendto(protocol.transport)
        self.remote_addr = pair.remote_addr
        self.received_queue = aiortc_compat.receive_queue(connection)
        self._to_dtls = connection.data_received
        self._to_aioice = protocol.datagram_received
        protocol.datagram_received = self.datagram_received
        return True

    def alive(self) -> bool:
        """The pair is still the connection's: not closing, still nominated."""
        return aiortc_compat.ice_alive(self._connection, self._component)

    def own_consent(self) -> None:
        """Our consent checks and answers instead of aioice's task, from when ICE completes (aioice
        then starts ``query_consent``); the checks leave their schedule when the connection closes,
        not at their next turn (seconds later, holding the session's objects until then)."""
        connection = self._connection
        if connection.query_consent == self._ice_completed:
            return
        original_close = connection.close

        async def close() -> None:
            if self.consent_check is not None:
                consent_check.schedule().remove(self.consent_check)
            await original_close()

        connection.query_consent = self._ice_completed
        connection.close = close

    async def _ice_completed(self) -> None:
        if not self._bind():
            return
        connection = self._connection
        local = connection.local_username
        remote = connection.remote_username
        self.consent_check = ConsentCheck(
            self.sendto, self.remote_addr, f"{remote}:{local}".encode(), connection.remote_password.encode("utf8"),
            connection.ice_controlling, aiortc_compat.tie_breaker(connection), self.alive, self._consent_expired, self._component,
        )
        consent_check.schedule().add(self.consent_check)
        if not connection.ice_controlling and remote is not None:  # answerers only (WHEP/WHIP)
            self.consent_answer = ConsentAnswer(self.sendto, self.remote_addr, f"{local}:{remote}".encode(),
                                                connection.local_password.encode("utf8"), self.alive)

    def _consent_expired(self) -> None:
        aiortc_compat.forget_consent_task(self._connection)
        asyncio.ensure_future(self._connection.close())

    def _receive_rtp(self, data: bytes) -> None:
        """Unprotect, parse and route one SRTP datagram to its aiortc receiver."""
        arrival_time_ms = int(time.time() * 1000) + NTP_EPOCH_MS
        count_received(self.dtls, len(data))  # aiortc's transport stats (getStats) count every datagram
        try:
            plain = self._rx_srtp.unprotect(data)
        except pylibsrtp.Error:
            return  # not authentic (or a replay): dropped, as aiortc does
        try:
            packet = RtpPacket.parse(plain, self._extensions)
        except ValueError:
            return
        receiver = self._rtp_router.route_rtp(packet)
        if receiver is not None:
            drive(rtp_handler(receiver)(packet, arrival_time_ms))

    def _receive_rtcp(self, data: bytes) -> None:
        """Unprotect, parse and route one SRTCP datagram as RTCDtlsTransport would, without its queue."""
        count_received(self.dtls, len(data))
        try:
            plain = self._rx_srtp.unprotect_rtcp(data)
        except pylibsrtp.Error:
            return
        on_report = self.on_report
        if on_report is not None:
            blocks = receiver_reports(plain)
            if blocks:  # (an empty report still goes the long way: it must reach liveness there)
                self.short_reports += 1
                for block in blocks:
                    on_report(block)
                return
        try:
            packets = RtcpPacket.parse(plain)
        except (ValueError, struct.error):
            return
        for packet in packets:
            try:
                recipients = self._rtp_router.route_rtcp(packet)
            except (ValueError, struct.error):  # aiortc reads a REMB's SSRCs as many as it claims
                continue
            for recipient in recipients:
                drive(rtcp_handler(recipient)(packet))

    def tx_master(self) -> tuple[bytes, bytes] | None:
        """The sending master key and salt when the SRTP profile is AES-GCM (else None), for the
        fan-out's own per-stream contexts (media.egress.srtp_gcm).

        Mirrors how aiortc 1.16's ``RTCDtlsTransport`` keys its SRTP sessions: the exporter gives
        client key, server key, client salt, server salt; the DTLS server sends with the second of each.
        """
        dtls = self.dtls
        ssl = aiortc_compat.dtls_ssl(dtls)
        if ssl is None:
            return None
        try:
            lengths = GCM_PROFILES.get(ssl.get_selected_srtp_profile())
            if lengths is None:
                return None
            key_len, salt_len = lengths
            material = ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (key_len + salt_len))
        except Exception:  # noqa: BLE001 - no usable DTLS state: libsrtp keeps the stream
            return None
        idx = 1 if aiortc_compat.dtls_is_server(dtls) else 0
        key = bytes(material[idx * key_len:(idx + 1) * key_len])
        salt_start = 2 * key_len + idx * salt_len
        return key, bytes(material[salt_start:salt_start + salt_len])


def ice_connections(pc: object) -> list:
    """The aioice connections under a peer connection's transceivers (one when bundled)."""
    found: list = []
    for transceiver in getattr(pc, "getTransceivers", lambda: [])():
        connection = aiortc_compat.ice_connection(transceiver.receiver.transport)
        if connection is not None and all(connection is not c for c in found):
            found.append(connection)
    return found


def protocol_socket(protocol: Any) -> socket_module.socket | None:
    """The UDP socket under one of aioice's ICE protocols; None when it relays through TURN:
    aioice's ``TurnTransport`` then sends through the TURN server and there is no socket of ours
    to send on (or connect, or size) directly."""
    transport = getattr(protocol, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    return getattr(sock, "_sock", sock)  # asyncio wraps the socket in a TransportSocket


def relayed_sendto(transport: Any) -> Callable[[Any, tuple], None]:
    """``sendto`` for a TURN-relayed pair. aioice sends from a task, after the caller has returned,
    and the relay reuses its packet buffer at once: so the bytes are copied first."""
    return lambda data, addr: transport.sendto(bytes(data), addr)


def patient_consent(pc: object) -> None:
    """ICE consent as RFC 7675 means it: lost after about 30 s without any answer, not 3 s.

    aioice sends each consent check once, counts it lost after 0.5 s and closes after six losses
    in a row. A join storm of hundreds of subscribers can delay an event loop past that for long
    enough, and the peer is then dropped although it is fine (for the speaker, that ends the
    conference for everyone). Here each check is retransmitted (0.5 + 1 + 2 s) and four lost
    checks in a row (about 35 s) end the connection. Browsers and OBS behave the same way. The
    checks are ours, packed from bytes on one timer per process (media.transport.consent_check),
    and so are the answers to the peer's plain checks (media.transport.consent_answer).
    """
    for connection in ice_connections(pc):
        WebRtcTransport.of(connection).own_consent()
