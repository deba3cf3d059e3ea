"""Every private name of aiortc, aioice and pylibsrtp the media plane uses, and every patch of their globals.

The relay terminates WebRTC with aiortc but forwards, protects and answers much of it itself, which
needs their internals: the senders' and receivers' handlers and state, aioice's nominated pair and
receive queue, the DTLS transport's SRTP sessions, libsrtp's contexts through pylibsrtp's binding.
Those names change between releases without notice, so they are used only here, and the versions
they were read from are checked when this module is imported: another version fails at start-up
with a message saying which, instead of misbehaving on the first packet.

Two asyncio internals live here too, for the same reason: the drained read of the speaker's socket
takes over a selector datagram transport's read callback (media.transport.socket_drain), and the
in-place SRTP handlers resume a coroutine that waited on a future as a Task would
(media.transport.drive).

The process-wide patches (codec table, decoder thread, bitrate estimator, codec factories, host
addresses, aioice's datagram and STUN handling, the peer connection's certificate) are applied by
the functions below, called by their owners (media.engine, media.transport.ice, ...).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import operator
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}


def check_versions(version: Callable[[str], str] = importlib.metadata.version) -> None:
    """Raise ImportError unless the installed versions are the ones this module was written against."""
    found = {}
    for name in PINNED:
        try:
            found[name] = version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    wrong = [f"{name} {found[name]} (needs {want})" for name, want in PINNED.items() if found[name] != want]
    if wrong:
        raise ImportError(
            "media/aiortc_compat.py uses private names of aiortc, aioice and pylibsrtp and was written "
            f"against {', '.join(f'{n}=={v}' for n, v in PINNED.items())}; installed: {', '.join(wrong)}. "
            "Install the pinned versions (pip install -e .) or port media/aiortc_compat.py."
        )


check_versions()

import aioice.ice  # noqa: E402 - only once the versions are known to be the pinned ones
import aioice.stun  # noqa: E402
import aioice.utils  # noqa: E402
import aiortc.codecs  # noqa: E402
import aiortc.rtcpeerconnection  # noqa: E402
import aiortc.rtcrtpreceiver  # noqa: E402
import aiortc.rtcrtpsender  # noqa: E402
import pylibsrtp  # noqa: E402
import pylibsrtp._binding  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, rtp  # noqa: E402
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint  # noqa: E402
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters  # noqa: E402

from media.core.codecs import EXTRA_H264_PROFILES  # noqa: E402

# ---- pylibsrtp: libsrtp's cffi binding and a session's context

srtp_ffi = pylibsrtp._binding.ffi
srtp_lib = pylibsrtp._binding.lib


def srtp_library_path() -> str:
    """The shared object of pylibsrtp's binding (libsrtp and the OpenSSL it bundles)."""
    return pylibsrtp._binding.__file__


def srtp_context(session: pylibsrtp.Session) -> Any:
    """A session's libsrtp ``srtp_t`` (what ``srtp_protect`` takes)."""
    return session._srtp[0]


# ---- transceivers, senders and receivers


def codecs(transceiver: Any) -> list[RTCRtpCodecParameters]:
    """The codecs aiortc negotiated for a transceiver (what its answer will offer)."""
    return transceiver._codecs


def set_codecs(transceiver: Any, chosen: list[RTCRtpCodecParameters]) -> None:
    """Narrow what a transceiver answers with (before ``createAnswer``)."""
    transceiver._codecs = chosen


def sender_ssrcs(sender: aiortc.rtcrtpsender.RTCRtpSender) -> tuple[int, int]:
    """(media SSRC, RTX SSRC) aiortc's answer announces for a sender."""
    return sender._ssrc, sender._rtx_ssrc


def sender_cname(sender: aiortc.rtcrtpsender.RTCRtpSender) -> str:
    return sender._RTCRtpSender__cname


# Called per packet by media.transport.webrtc_transport: attribute getters (C), not Python calls;
# the instance's attribute, so a receiver's handler replaced by the Producer is the one called.
rtp_handler: Callable[[Any], Callable[..., Awaitable[None]]] = operator.attrgetter("_handle_rtp_packet")
rtcp_handler: Callable[[Any], Callable[[Any], Awaitable[None]]] = operator.attrgetter("_handle_rtcp_packet")


def set_receiver_handlers(receiver: Any, handle_rtp: Callable[..., Awaitable[None]],
                          handle_rtcp: Callable[[Any], Awaitable[None]]) -> None:
    """Replace one receiver's RTP and RTCP handlers (read the originals first: ``rtp_handler``)."""
    receiver._handle_rtp_packet = handle_rtp
    receiver._handle_rtcp_packet = handle_rtcp


def send_pli(receiver: Any, ssrc: int) -> Awaitable[None]:
    """A picture loss indication to the sender of ``ssrc``, through the receiver's RTCP."""
    return receiver._send_rtcp_pli(ssrc)


def set_decoder_queue(receiver: Any, queue: Any) -> None:
    """What the receiver puts reassembled frames into (its decoder thread reads it)."""
    receiver._RTCRtpReceiver__decoder_queue = queue


def share_bitrate_estimator(receiver: Any, first: Any) -> None:
    """``receiver`` feeds ``first``'s bitrate estimator: one estimate (one REMB) over both tracks."""
    receiver._RTCRtpReceiver__remote_bitrate_estimator = first._RTCRtpReceiver__remote_bitrate_estimator


def park_sender(sender: aiortc.rtcrtpsender.RTCRtpSender, *, retransmit: Callable[[int], Awaitable[None]],
                handle_rtcp: Callable[[Any], Awaitable[None]], send_keyframe: Callable[[], None],
                reports_start: Callable[[], None], reports_stop: Callable[[], None]) -> None:
    """Replace a sender's RTP loop (parked: it never sends), RTCP loop (``reports_start`` when it
    starts, ``reports_stop`` when it ends), NACK, RTCP and keyframe handling."""

    async def run_rtp(codec: Any) -> None:
        sender._RTCRtpSender__rtp_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        sender._RTCRtpSender__rtp_exited.set()

    async def run_rtcp() -> None:
        sender._RTCRtpSender__rtcp_started.set()
        reports_start()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            reports_stop()
            sender._RTCRtpSender__rtcp_exited.set()

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]
    sender._retransmit = retransmit  # type: ignore[method-assign]
    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]
    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


RTT_ALPHA = 0.85  # aiortc's smoothing of the round-trip time (rtcrtpsender.RTT_ALPHA)


def round_trip(sender: aiortc.rtcrtpsender.RTCRtpSender, lsr: int, dlsr: int) -> float | None:
    """The smoothed round-trip time from a report block answering our last sender report (RFC 3550
    6.4.1: now - LSR time - DLSR), kept on the sender as aiortc does; None before the first one."""
    if lsr and dlsr and lsr == sender._RTCRtpSender__lsr:
        sample = time.time() - sender._RTCRtpSender__lsr_time - dlsr / 65536
        rtt = sender._RTCRtpSender__rtt
        sender._RTCRtpSender__rtt = sample if rtt is None else RTT_ALPHA * rtt + (1 - RTT_ALPHA) * sample
    return sender._RTCRtpSender__rtt


def note_sender_report(sender: aiortc.rtcrtpsender.RTCRtpSender, ntp: int, wall: float, packets: int) -> None:
    """Record a sender report we sent for the sender, as aiortc's own RTCP loop would: its LSR is
    what receiver reports answer (``round_trip``), its packet count what getStats shows."""
    sender._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF
    sender._RTCRtpSender__lsr_time = wall
    sender._RTCRtpSender__packet_count = packets


# ---- ICE and DTLS under a peer connection


def ice_connection(dtls: Any) -> Any:
    """The aioice connection under aiortc's RTCDtlsTransport (None if it has none)."""
    return getattr(getattr(dtls, "transport", None), "_connection", None)


def ice_protocols(connection: aioice.ice.Connection) -> list:
    """A connection's ICE protocols, one per local socket (or TURN allocation)."""
    return connection._protocols


def nominated_pair(connection: aioice.ice.Connection, component: int) -> Any:
    """The nominated candidate pair of a component (None before ICE completes)."""
    return connection._nominated.get(component)


def receive_queue(connection: aioice.ice.Connection) -> asyncio.Queue:
    """Where aioice queues a connection's data for ``recvfrom`` (aiortc's DTLS transport reads it)."""
    return connection._queue


def ice_alive(connection: aioice.ice.Connection, component: int) -> bool:
    """Not closing, and the component still has its nominated pair."""
    return not connection._closing and connection._nominated.get(component) is not None


def tie_breaker(connection: aioice.ice.Connection) -> int:
    """The ICE tie-breaker our consent checks carry (ICE-CONTROLLING/-CONTROLLED)."""
    return connection._tie_breaker


def forget_consent_task(connection: aioice.ice.Connection) -> None:
    """aioice's close cancels its consent task: called from ours, it must not cancel the caller."""
    connection._query_consent_task = None


def srtp_state(dtls: Any) -> tuple[Any, Any, Any, Any]:
    """(receive session, send session, RTP router, header extensions map) of a DTLS transport;
    the sessions are None until DTLS is up."""
    return dtls._rx_srtp, dtls._tx_srtp, dtls._rtp_router, dtls._rtp_header_extensions_map


def count_received(dtls: Any, size: int) -> None:
    """Count a datagram in aiortc's transport stats (getStats), as its receive task would."""
    dtls._RTCDtlsTransport__rx_bytes += size
    dtls._RTCDtlsTransport__rx_packets += 1


def dtls_ssl(dtls: Any) -> Any:
    """The DTLS transport's OpenSSL connection (None before the handshake began)."""
    return getattr(dtls, "_ssl", None)


def dtls_is_server(dtls: Any) -> bool:
    return dtls._role == "server"


# ---- asyncio's selector datagram transport and future protocol
def drainable(transport: Any) -> bool:
    """Whether ``transport`` is a plain selector datagram transport whose reads we can take over."""
    return getattr(transport, "_sock", None) is not None and hasattr(getattr(transport, "_loop", None), "_add_reader")


def take_reads(transport: Any, read_ready: Callable[[], None]) -> Any:
    """Replace the transport's read callback with ``read_ready``; returns its socket."""
    loop = transport._loop
    loop._remove_reader(transport._sock_fd)
    loop._add_reader(transport._sock_fd, read_ready)
    return transport._sock


def transport_lost(transport: Any) -> bool:
    return bool(transport._conn_lost)


def report_read_error(transport: Any, exc: OSError) -> None:
    """Hand a read error to the transport's protocol, as asyncio would."""
    transport._protocol.error_received(exc)


def release_future(future: Any) -> None:
    """What a Task does with a future its coroutine yielded before waiting on it."""
    future._asyncio_future_blocking = False


# ---- process-wide patches

_original_host_addresses = aioice.ice.get_host_addresses


def set_host_addresses(addresses: list[str]) -> None:
    """aioice gathers host candidates only on these addresses (empty list: on every interface again)."""
    if not addresses:
        aioice.ice.get_host_addresses = _original_host_addresses
        return
    fixed = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: list(fixed)


def host_addresses() -> list[str]:
    """The addresses aioice gathers host candidates on (after ``set_host_addresses``)."""
    return aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)


def stun_protocol(connection: aioice.ice.Connection) -> aioice.ice.StunProtocol:
    """A new ICE protocol of ``connection`` (its transport and local candidate still to be given)."""
    return aioice.ice.StunProtocol(connection)


HostGatherer = Callable[[Any, int, list[str]], Awaitable[tuple[list, list]]]
_original_component_candidates = aioice.ice.Connection.get_component_candidates


def set_host_gatherer(gatherer: HostGatherer | None) -> None:
    """Host candidates come from ``gatherer(connection, component, addresses)`` -> (the ICE protocols
    it made, each with its ``local_candidate``; the candidates to advertise), and aioice adds only
    its TURN candidates (none server-reflexive: those need aioice's own host sockets). None
    restores aioice's own gathering (a socket on an ephemeral port per address)."""
    if gatherer is None:
        aioice.ice.Connection.get_component_candidates = _original_component_candidates  # type: ignore[method-assign]
        return

    async def get_component_candidates(self: aioice.ice.Connection, component: int, addresses: list[str],
                                       timeout: int = 5) -> list:
        protocols, candidates = await gatherer(self, component, addresses)
        self._protocols += protocols
        return candidates + await _original_component_candidates(self, component, [], timeout)

    aioice.ice.Connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


def long_ufrags(length: int = 16) -> None:
    """Every ICE connection made from now on gets a ``length``-character username fragment (aioice's
    own are 4: among hundreds of peers on one shared socket, two would share one now and then)."""
    original = aioice.ice.Connection.__init__
    if getattr(original, "long_ufrags", False):
        return

    def __init__(self: aioice.ice.Connection, *args: Any, local_username: str | None = None, **kwargs: Any) -> None:
        original(self, *args, local_username=local_username or aioice.utils.random_string(length), **kwargs)

    __init__.long_ufrags = True  # type: ignore[attr-defined]
    aioice.ice.Connection.__init__ = __init__  # type: ignore[method-assign]


def drop_empty_datagrams() -> None:
    """Drop empty datagrams where aioice queues a connection's data (for aiortc, which reads its
    first byte to sort DTLS from SRTP and dies of an IndexError on an empty one, taking the
    connection with it). Anyone who learns a peer's port can send one: during the handshake that
    closed the peer. Once ICE has completed, the pair's datagrams are sorted by
    media.transport.webrtc_transport first."""
    original = aioice.ice.Connection.data_received
    if getattr(original, "drops_empty", False):
        return

    def data_received(self: aioice.ice.Connection, data: bytes, component: int) -> None:
        if data:
            original(self, data, component)

    data_received.drops_empty = True  # type: ignore[attr-defined]
    aioice.ice.Connection.data_received = data_received  # type: ignore[method-assign]


def strict_stun_parsing() -> None:
    """Make every way a datagram fails to parse as STUN a ``ValueError``, the one aioice catches
    (it then hands the datagram on as data, where it is dropped). Its attribute readers raise
    ``struct.error`` on an attribute shorter than its type needs (a PRIORITY of 3 bytes): that
    escaped the socket's read callback as a logged traceback per datagram, for anyone to send."""
    original = aioice.stun.parse_message
    if getattr(original, "strict", False):
        return

    def parse_message(data: bytes) -> aioice.stun.Message:
        try:
            return original(data)
        except ValueError:
            raise
        except Exception as exc:  # struct.error, IndexError, KeyError... from a malformed attribute
            raise ValueError(f"malformed STUN message: {exc}") from exc

    parse_message.strict = True  # type: ignore[attr-defined]
    aioice.stun.parse_message = parse_message


_registered = False


def register_forwarding_codecs() -> None:
    """Add H.264 Main/High (+RTX) to aiortc's codec table and widen its dynamic PT range; idempotent.

    aiortc offers H.264 Baseline/Constrained Baseline only and rejects Main/High offers (OBS offers
    High); nothing is decoded here, so every profile with packetization-mode=1 can be accepted."""
    global _registered
    if _registered:
        return
    # Chromium puts some H.264 profiles at payload types 35-63 (RFC 8829 lets it). aiortc adopts the
    # offerer's number only in 96-127 and otherwise answers with its own, which can collide with
    # another offered codec ("Duplicate payload type" in Chromium). Treat 35-63 as dynamic too.
    rtp.DYNAMIC_PAYLOAD_TYPES = [*range(35, 64), *range(96, 128)]  # type: ignore[assignment]
    table = aiortc.codecs.CODECS
    used = {c.payloadType for kind in table.values() for c in kind}
    pt = 96
    for profile in EXTRA_H264_PROFILES:
        while pt in used or pt + 1 in used:
            pt += 1
        table["video"] += [
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=90000,
                payloadType=pt,
                rtcpFeedback=[
                    RTCRtcpFeedback(type="nack"),
                    RTCRtcpFeedback(type="nack", parameter="pli"),
                    RTCRtcpFeedback(type="goog-remb"),
                ],
                parameters={
                    "level-asymmetry-allowed": "1",
                    "packetization-mode": "1",
                    "profile-level-id": profile,
                },
            ),
            RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90000, payloadType=pt + 1, parameters={"apt": pt}
            ),
        ]
        used.update((pt, pt + 1))
    _registered = True


def replace_decoder_worker(worker: Callable[..., None]) -> None:
    """The body of every receiver's decoder thread from now on."""
    aiortc.rtcrtpreceiver.decoder_worker = worker


def replace_bitrate_estimator(factory: Callable[[], Any]) -> None:
    """What every video receiver made from now on builds as its ``RemoteBitrateEstimator``."""
    aiortc.rtcrtpreceiver.RemoteBitrateEstimator = factory  # type: ignore[misc,assignment]


def replace_codec_factories(get_decoder: Callable[[Any], Any], get_encoder: Callable[[Any], Any]) -> None:
    """Where aiortc's receivers and senders get their decoders and encoders from now on."""
    aiortc.codecs.get_decoder = get_decoder
    aiortc.codecs.get_encoder = get_encoder
    aiortc.rtcrtpreceiver.get_decoder = get_decoder
    aiortc.rtcrtpsender.get_encoder = get_encoder


class SharedCertificate(RTCCertificate):
    """An RTCCertificate whose fingerprints and OpenSSL contexts are computed once, to be shared by
    every peer connection of a process (media.transport.dtls_identity)."""

    def __init__(self, key: Any, cert: Any) -> None:
        super().__init__(key, cert)
        self._fingerprints: list[RTCDtlsFingerprint] | None = None
        self._contexts: dict[tuple[bytes, ...], Any] = {}

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        if self._fingerprints is None:
            self._fingerprints = super().getFingerprints()
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list) -> Any:
        """One context per SRTP profile list: OpenSSL contexts are made to be shared by connections."""
        key = tuple(p.openssl_profile for p in srtp_profiles)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = super()._create_ssl_context(srtp_profiles)
        return context


def peer_connection(configuration: RTCConfiguration | None,
                    certificate: Callable[[], SharedCertificate]) -> RTCPeerConnection:
    """An RTCPeerConnection that uses ``certificate()`` instead of generating its own.

    aiortc's constructor calls ``RTCCertificate.generateCertificate()`` through its module's name;
    the name is swapped only for that synchronous call, so nothing else sees it.
    """
    module = aiortc.rtcpeerconnection
    original = module.RTCCertificate
    module.RTCCertificate = SimpleNamespace(generateCertificate=certificate)  # type: ignore[misc,assignment]
    try:
        return RTCPeerConnection(configuration)
    finally:
        module.RTCCertificate = original  # type: ignore[misc]
