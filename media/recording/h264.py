"""H.264 Annex-B helpers for the recorder: split NAL units, spot IDR pictures, read the SPS.

The recorder never decodes video. The muxer needs the picture size for ``tkhd``/``avc1`` and the
parameter sets for ``avcC``, and the recorder needs the stream's reorder depth (how many pictures a
B-frame stream sends ahead of their display) to derive decode timestamps, so the SPS is parsed here
(a few hundred bytes of exp-Golomb per keyframe, far cheaper than opening a decoder).
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


# Table A-1: MaxDpbMbs per level_idc (9 is level 1b), for the reorder depth of an SPS without one.
_MAX_DPB_MBS = {
    9: 396, 10: 396, 11: 900, 12: 2376, 13: 2376, 20: 2376, 21: 4752, 22: 8100, 30: 8100, 31: 18000,
    32: 20480, 40: 32768, 41: 32768, 42: 34816, 50: 110400, 51: 184320, 52: 184320, 60: 696320,
    61: 696320, 62: 696320,
}
_INTRA_PROFILES = {44, 86, 100, 110, 122, 244}  # constraint_set3 makes these intra-only


@dataclass(frozen=True)
class SpsInfo:
    profile_idc: int
    level_idc: int
    width: int
    height: int
    # Pictures that may precede another in decode order and follow it in display order: the VUI's
    # max_num_reorder_frames, or what the spec infers without it (E.2.1): 0 for streams that cannot
    # reorder, otherwise the level's whole picture buffer.
    reorder_frames: int = 0
    frame_ticks: int | None = None  # 90 kHz ticks per frame, from the VUI timing info when given


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
    constraint_set3 = bool(bits.data[1] & 0x10)
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
    reorder: int | None = None
    frame_ticks: int | None = None
    try:
        if bits.bit():  # vui_parameters_present_flag
            reorder, frame_ticks = _parse_vui(bits)
    except ValueError:
        pass  # a truncated VUI: the sizes above are still good
    if reorder is None:
        if poc_type == 2 or profile_idc == 66 or (profile_idc in _INTRA_PROFILES and constraint_set3):
            reorder = 0  # output order is decode order (POC type 2), or no B-slices at all
        else:
            level = 9 if level_idc == 11 and constraint_set3 and profile_idc in (66, 77, 88) else level_idc
            frame_mbs = width_mbs * (2 - frame_mbs_only) * height_map_units
            reorder = min(_MAX_DPB_MBS.get(level, 16 * frame_mbs) // frame_mbs, 16)
    return SpsInfo(profile_idc, level_idc, width, height, min(reorder, 16), frame_ticks)


def _skip_hrd(bits: _Bits) -> None:
    count = bits.ue() + 1  # cpb_cnt_minus1
    bits.bits(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(count):
        bits.ue()  # bit_rate_value_minus1
        bits.ue()  # cpb_size_value_minus1
        bits.bit()  # cbr_flag
    bits.bits(20)  # four delay/offset lengths of 5 bits


def _parse_vui(bits: _Bits) -> tuple[int | None, int | None]:
    """max_num_reorder_frames (``None`` without bitstream_restriction) and 90 kHz ticks per frame."""
    if bits.bit():  # aspect_ratio_info_present_flag
        if bits.bits(8) == 255:  # Extended_SAR
            bits.bits(32)
    if bits.bit():  # overscan_info_present_flag
        bits.bit()
    if bits.bit():  # video_signal_type_present_flag
        bits.bits(4)
        if bits.bit():  # colour_description_present_flag
            bits.bits(24)
    if bits.bit():  # chroma_loc_info_present_flag
        bits.ue()
        bits.ue()
    frame_ticks = None
    if bits.bit():  # timing_info_present_flag
        units, scale = bits.bits(32), bits.bits(32)
        bits.bit()  # fixed_frame_rate_flag
        if units and scale and 1 <= scale / (2 * units) <= 240:  # a field is one tick: frame = 2 ticks
            frame_ticks = round(90000 * 2 * units / scale)
    nal_hrd = bits.bit()
    if nal_hrd:
        _skip_hrd(bits)
    vcl_hrd = bits.bit()
    if vcl_hrd:
        _skip_hrd(bits)
    if nal_hrd or vcl_hrd:
        bits.bit()  # low_delay_hrd_flag
    bits.bit()  # pic_struct_present_flag
    if not bits.bit():  # bitstream_restriction_flag
        return None, frame_ticks
    bits.bit()  # motion_vectors_over_pic_boundaries_flag
    for _ in range(4):  # max_bytes_per_pic_denom, max_bits_per_mb_denom, log2_max_mv_length_h/v
        bits.ue()
    return bits.ue(), frame_ticks  # max_num_reorder_frames (max_dec_frame_buffering follows)


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
