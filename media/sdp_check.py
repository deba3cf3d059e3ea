"""Validation of WHIP/WHEP offers before they reach aiortc, so bad input gets a precise 4xx."""

from __future__ import annotations

import functools

from aiortc import sdp

from media.codecs import SUPPORTED


class OfferError(ValueError):
    """The body is not a usable SDP offer; ``str()`` says why (sent to the client)."""


def check_offer(text: str, direction: str) -> sdp.SessionDescription:
    """``direction`` is what the client wants to do with media: "send" (WHIP) or "recv" (WHEP).

    The API checks an offer for its 4xx and the media engine checks it again as its own guard; the
    second check of the same text is a cache hit, as parsing is a tenth of the ingest's CPU per join
    in a storm. The description returned is shared: read it, do not change it.
    """
    return _checked(text, direction)


@functools.lru_cache(maxsize=32)
def _checked(text: str, direction: str) -> sdp.SessionDescription:
    if not text.strip():
        raise OfferError("empty body: expected an SDP offer")
    if not text.lstrip().startswith("v=0"):
        raise OfferError("not an SDP document: it must start with 'v=0'")
    try:
        desc = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc raises assorted errors on malformed lines
        raise OfferError(f"malformed SDP: {exc}") from exc
    media = [m for m in desc.media if m.kind in ("audio", "video")]
    if not media:
        raise OfferError("the offer has no audio or video m-line")
    usable = []
    for m in media:
        if not m.ice or not m.ice.usernameFragment or not m.ice.password:
            raise OfferError(f"m={m.kind}: missing a=ice-ufrag/a=ice-pwd")
        if not m.dtls or not m.dtls.fingerprints:
            raise OfferError(f"m={m.kind}: missing a=fingerprint (DTLS-SRTP is required)")
        wanted = ("sendonly", "sendrecv") if direction == "send" else ("recvonly", "sendrecv")
        if m.direction not in wanted:
            continue
        names = {c.mimeType.lower() for c in m.rtp.codecs}
        if names & set(SUPPORTED[m.kind]):
            usable.append(m)
    if not usable:
        offered = sorted({c.mimeType for m in media for c in m.rtp.codecs if "rtx" not in c.mimeType})
        verb = "send" if direction == "send" else "receive"
        raise OfferError(
            f"no usable codec: the offer does not {verb} H264/VP8 video or Opus audio "
            f"(offered: {', '.join(offered) or 'none'})"
        )
    return desc
