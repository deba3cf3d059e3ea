"""Codec choices for a forward-only relay, and keyframe detection on RTP payloads.

aiortc offers H.264 Baseline/Constrained Baseline only, and rejects Main/High offers (OBS offers High).
Nothing is decoded here, so every profile with packetization-mode=1 can be accepted: the profiles
below are added to aiortc's table by media.aiortc_compat.register_forwarding_codecs.
"""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

EXTRA_H264_PROFILES = ("4d001f", "640c1f", "64001f", "f4001f")
PREFERRED_VIDEO = ("video/h264", "video/vp8")
SUPPORTED = {"audio": ("audio/opus",), "video": PREFERRED_VIDEO}


def codec_key(codec: RTCRtpCodecParameters) -> str:
    return codec.mimeType.lower()


def is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def prefer_codecs(codecs: list[RTCRtpCodecParameters], kind: str, only_best: bool) -> list:
    """Order negotiated codecs by our preference (H.264 first); optionally keep only the best family.

    RTX entries stay right after the codec they repair. Returns a new list.
    """
    order = SUPPORTED.get(kind, ())
    primary = [c for c in codecs if not is_rtx(c) and codec_key(c) in order]
    primary.sort(key=lambda c: order.index(codec_key(c)))
    if only_best and primary:
        best = codec_key(primary[0])
        primary = [c for c in primary if codec_key(c) == best]
    result = []
    for codec in primary:
        result.append(codec)
        result += [c for c in codecs if is_rtx(c) and c.parameters.get("apt") == codec.payloadType]
    return result


def h264_is_keyframe(payload: bytes) -> bool:
    """True when the packet starts an IDR picture or carries SPS (RFC 6184 single NAL, STAP-A, FU-A)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A: [hdr][size16][nal]...
        pos = 1
        end = len(payload)
        while pos + 2 < end:
            size = (payload[pos] << 8) | payload[pos + 1]
            if pos + 2 >= end:
                break
            if payload[pos + 2] & 0x1F in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A start of an IDR slice
        return bool(payload[1] & 0x80) and (payload[1] & 0x1F) == 5
    return False


def vp8_is_keyframe(payload: bytes) -> bool:
    """True for the first packet of a VP8 key frame (RFC 7741 payload descriptor + P bit)."""
    if len(payload) < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S bit set and partition index 0
        return False
    pos = 1
    if first & 0x80:  # X: extended control bits
        ext = payload[pos]
        pos += 1
        if ext & 0x80:  # I: picture id
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K
            pos += 1
    return pos < len(payload) and not payload[pos] & 0x01


def is_keyframe(key: str, payload: bytes) -> bool:
    if key == "video/h264":
        return h264_is_keyframe(payload)
    if key == "video/vp8":
        return vp8_is_keyframe(payload)
    return False
