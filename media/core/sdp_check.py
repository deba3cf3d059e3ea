"""Validation of WHIP/WHEP offers before they reach aiortc, so bad input gets a precise 4xx."""

from __future__ import annotations

import functools
import re

from aiortc import sdp

from media.core.codecs import SUPPORTED


_M_LINE = re.compile(r"m=[^ ]+ [0-9]+ [A-Z/]+ .+$")  # RFC 8866 5.14's m-line, in the shape aiortc parses
# Tracks a WHIP publisher may send per kind: its sound, its picture and its own low rendition of it
# (the second video m-line, media.ingest.producer).
PUBLISHED_TRACKS = {"audio": 1, "video": 2}


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
    for line in text.splitlines():
        if line.startswith("m=") and not _M_LINE.match(line):
            raise OfferError(f"malformed m-line: {line[:80]!r} (expected 'm=<media> <port> <proto> <fmt> ...')")
    try:
        desc = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc raises assorted errors on malformed lines (some without a message)
        raise OfferError(f"malformed SDP{_where(text)}: {str(exc) or type(exc).__name__}") from exc
    media = [m for m in desc.media if m.kind in ("audio", "video")]
    if not media:
        raise OfferError("the offer has no audio or video m-line")
    _check_mids(desc)
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
    if direction == "send":
        for kind, most in PUBLISHED_TRACKS.items():
            sent = sum(1 for m in usable if m.kind == kind)
            if sent > most:
                raise OfferError(
                    f"the offer sends {sent} {kind} tracks: a publisher sends at most one audio track and two "
                    "video tracks (the picture, then its own low rendition)"
                )
    return desc


def _check_mids(desc: sdp.SessionDescription) -> None:
    """Every m-line names itself (a=mid, RFC 8843) and a group names only those: aiortc answers
    neither otherwise, and a group naming a missing mid left its peer connection unable to close."""
    mids = []
    for m in desc.media:
        if not m.rtp.muxId:
            raise OfferError(f"m={m.kind}: missing a=mid")
        mids.append(m.rtp.muxId)
    repeated = sorted({mid for mid in mids if mids.count(mid) > 1})
    if repeated:
        raise OfferError(f"a=mid:{repeated[0]} is on more than one m-line")
    for group in desc.group:
        missing = [str(mid) for mid in group.items if str(mid) not in mids]
        if missing:
            raise OfferError(f"a=group:{group.semantic} names mid {', '.join(missing)}, which no m-line has")


def _fails(text: str) -> bool:
    try:
        sdp.SessionDescription.parse(text)
    except Exception:
        return True
    return False


def _where(text: str) -> str:
    """' at line N ('...')': the first line whose prefix aiortc cannot parse (a bisection: a dozen
    parses for the longest body the API takes), as aiortc's own messages do not say."""
    lines = text.splitlines()
    lo, hi = 1, len(lines)
    while lo < hi:
        mid = (lo + hi) // 2
        if _fails("\r\n".join(lines[:mid]) + "\r\n"):
            hi = mid
        else:
            lo = mid + 1
    return f" at line {lo} ({lines[lo - 1][:80]!r})" if lines else ""
