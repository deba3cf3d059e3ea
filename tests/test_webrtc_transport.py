"""WebRtcTransport: every datagram of a peer's socket sorted in one function, between real aiortc peers.

A publisher (an aiortc peer sending audio) connects to an aiortc answerer set up as the Producer
sets up its peer: our consent from the answer on, its SRTP (and the drained read) once connected.
Whatever handlers exist, the pair's protocol has one datagram callback, the transport's, and every
datagram read off the socket is counted there under one kind: STUN (consent both ways), SRTP and
SRTCP (to aiortc's receiver), DTLS.
"""

from __future__ import annotations

import asyncio

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from media.transport.ice import restrict_host_addresses
from media.transport.webrtc_transport import WebRtcTransport, ice_connections, patient_consent
from tests.support.waiting import wait_until_async


class Burst:
    """The drain's burst sink (media.ingest.burst_boundary in the ingest): counts the reads."""

    def __init__(self) -> None:
        self.reads = 0

    def begin(self) -> None:
        self.reads += 1

    def end(self) -> None:
        pass


async def test_every_datagram_is_sorted_by_the_one_callback(monkeypatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)  # consent checks both ways, often
    restrict_host_addresses(["127.0.0.1"])
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    ingest = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        publisher.addTrack(AudioStreamTrack())
        await publisher.setLocalDescription(await publisher.createOffer())
        await ingest.setRemoteDescription(publisher.localDescription)
        patient_consent(ingest)  # consent first, as the Producer and Consumer do
        await ingest.setLocalDescription(await ingest.createAnswer())
        await publisher.setRemoteDescription(ingest.localDescription)
        await wait_until_async(lambda: ingest.connectionState, 10, "the ingest connected",
                               check=lambda state: state == "connected", interval=0.05)
        burst = Burst()
        dtls = ingest.getTransceivers()[0].receiver.transport
        transport = WebRtcTransport.take(dtls, rtp=True, burst=burst)
        assert transport is not None and WebRtcTransport.take(dtls, rtp=True, burst=burst) is transport
        (connection,) = ice_connections(ingest)
        assert transport.protocol is connection._nominated[1].protocol
        assert transport.protocol.datagram_received == transport.datagram_received  # one callback, not a chain
        before = transport.stats()

        def sorted_since() -> dict:
            now = transport.stats()
            return {kind: now[kind] - before[kind] for kind in ("stun", "dtls", "srtp", "srtcp")}

        await wait_until_async(sorted_since, 10, "STUN, SRTP and SRTCP through the transport",
                               check=lambda seen: seen["stun"] >= 4 and seen["srtp"] >= 50 and seen["srtcp"] >= 2,
                               interval=0.05)
        seen, stats = sorted_since(), transport.stats()
        assert stats["drain_datagrams"] - before["drain_datagrams"] == sum(seen.values())  # nothing else read
        assert stats["drain_wakeups"] == burst.reads
        assert stats["consent_answered"] > 0  # the publisher's checks, answered from the bytes
        assert stats["consent_checks"]["answered"] > 0 and stats["consent_checks"]["lost"] == 0  # ours, answered
        assert not stats["path_pinned"]  # only a consumer pins its path
        inbound = [s for s in (await ingest.getStats()).values() if s.type == "inbound-rtp"]
        assert inbound and inbound[0].packetsReceived >= seen["srtp"]  # aiortc's receiver got the packets
    finally:
        await asyncio.gather(publisher.close(), ingest.close())
