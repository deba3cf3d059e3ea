"""H.264 Annex-B helpers for the recorder: split NAL units, spot IDR pictures, read SPS dimensions.

The recorder never decodes video. The muxer needs the picture size for ``tkhd``/``avc1`` and the
parameter sets for ``avcC``, so the SPS is parsed here (a few hundred bytes of exp-Golomb per
keyframe, far cheaper than opening a decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B buffer, without start codes (3- or 4-byte)."""
    nals: list[bytes] = []
    n = len(data)
    i = data.find(b"\x00\x00\x01")
    if i < 0:
        return [data] if data else []
    start = i + 3
    while True:
        j = data.find(b"\x00\x00\x01", start)
        if j < 0:
            nal = data[start:n]
            if nal:
                nals.append(nal)
            return nals
        end = j - 1 if j > 0 and data[j - 1] == 0 else j  # a 4-byte start code's leading zero
        nal = data[start:end]
        if nal:
            nals.append(nal)
        start = j + 3


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else 0


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def _unescape(rbsp: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 → 00 00)."""
    if b"\x00\x00\x03" not in rbsp:
        return rbsp
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("SPS truncated")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


@dataclass(frozen=True)
class SpsInfo:
    profile_idc: int
    level_idc: int
    width: int
    height: int


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def parse_sps(nal: bytes) -> SpsInfo:
    """Profile, level and cropped picture size of an SPS NAL unit (header byte included)."""
    if nal_type(nal) != NAL_SPS or len(nal) < 4:
        raise ValueError("not an SPS")
    bits = _Bits(_unescape(nal[1:]))
    profile_idc = bits.bits(8)
    bits.bits(8)  # constraint flags
    level_idc = bits.bits(8)
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_colour_plane = 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            separate_colour_plane = bits.bit()
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if bits.bit():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        if chroma_format_idc == 0 or separate_colour_plane:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            sub_w = 1 if chroma_format_idc == 3 else 2
            sub_h = 2 if chroma_format_idc == 1 else 1
            crop_x, crop_y = sub_w, sub_h * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    if width <= 0 or height <= 0:
        raise ValueError("bad SPS dimensions")
    return SpsInfo(profile_idc, level_idc, width, height)


@dataclass(frozen=True)
class AccessUnit:
    """What the recorder needs to know about one depayloaded picture."""

    is_idr: bool
    sps: bytes | None
    pps: bytes | None


def inspect(data: bytes) -> AccessUnit:
    """IDR flag and in-band parameter sets of an access unit (only NAL headers are read)."""
    is_idr = False
    sps = pps = None
    for nal in split_nals(data):
        t = nal_type(nal)
        if t == NAL_IDR:
            is_idr = True
        elif t == NAL_SPS:
            sps = nal
        elif t == NAL_PPS:
            pps = nal
    return AccessUnit(is_idr, sps, pps)
