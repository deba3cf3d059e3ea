"""Just enough ISO-BMFF to cut PyAV's fragmented-MP4 byte stream into HLS files.

PyAV's mp4 muxer (``movflags=frag_keyframe+empty_moov+default_base_moof``) writes ``ftyp moov``
once and then one ``moof mdat`` pair per fragment. :class:`FragmentSplitter` is the file object the
muxer writes into: it hands back the init segment and each complete fragment, so every fragment
becomes one HLS media segment without a second pass over the data. ``parse_moof`` reads each track's
decode time and duration (for ``#EXTINF``), and ``shift_tfdt`` moves a fragment on the recording's
timeline, because every new muxer (after a reconnect) starts its own clock at zero.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_HEADER = struct.Struct(">I4s")


@dataclass(frozen=True)
class TrackInfo:
    track_id: int
    handler: str  # "vide" or "soun"
    timescale: int


@dataclass(frozen=True)
class TrackFragment:
    track_id: int
    base_time: int  # tfdt, in the track's timescale
    duration: int  # sum of the sample durations, same unit
    samples: int


def iter_boxes(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None):
    """Yield ``(type, payload_start, box_end)`` for the boxes laid out in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"truncated box {kind!r} at {pos}")
        yield kind.decode("latin-1"), pos + header, pos + size
        pos += size


def _child(data: bytes | bytearray, start: int, end: int, kind: str) -> tuple[int, int] | None:
    for k, s, e in iter_boxes(data, start, end):
        if k == kind:
            return s, e
    return None


def parse_init(init: bytes) -> dict[int, TrackInfo]:
    """Track id → handler and timescale, from an init segment's ``moov``."""
    tracks: dict[int, TrackInfo] = {}
    moov = _child(init, 0, len(init), "moov")
    if moov is None:
        raise ValueError("no moov box")
    for kind, s, e in iter_boxes(init, *moov):
        if kind != "trak":
            continue
        tkhd = _child(init, s, e, "tkhd")
        mdia = _child(init, s, e, "mdia")
        if tkhd is None or mdia is None:
            continue
        version = init[tkhd[0]]
        track_id = struct.unpack_from(">I", init, tkhd[0] + (20 if version == 1 else 12))[0]
        mdhd = _child(init, *mdia, "mdhd")
        hdlr = _child(init, *mdia, "hdlr")
        if mdhd is None or hdlr is None:
            continue
        mversion = init[mdhd[0]]
        timescale = struct.unpack_from(">I", init, mdhd[0] + (20 if mversion == 1 else 12))[0]
        handler = bytes(init[hdlr[0] + 8 : hdlr[0] + 12]).decode("latin-1")
        tracks[track_id] = TrackInfo(track_id, handler, timescale)
    return tracks


def _traf_fragment(data: bytes | bytearray, start: int, end: int) -> TrackFragment:
    tfhd = _child(data, start, end, "tfhd")
    if tfhd is None:
        raise ValueError("traf without tfhd")
    flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
    track_id = struct.unpack_from(">I", data, tfhd[0] + 4)[0]
    pos = tfhd[0] + 8
    if flags & 0x01:
        pos += 8  # base-data-offset
    if flags & 0x02:
        pos += 4  # sample-description-index
    default_duration = struct.unpack_from(">I", data, pos)[0] if flags & 0x08 else 0
    base_time = 0
    tfdt = _child(data, start, end, "tfdt")
    if tfdt is not None:
        if data[tfdt[0]] == 1:
            base_time = struct.unpack_from(">Q", data, tfdt[0] + 4)[0]
        else:
            base_time = struct.unpack_from(">I", data, tfdt[0] + 4)[0]
    duration = samples = 0
    for kind, s, _e in iter_boxes(data, start, end):
        if kind != "trun":
            continue
        tflags = int.from_bytes(data[s + 1 : s + 4], "big")
        count = struct.unpack_from(">I", data, s + 4)[0]
        pos = s + 8 + (4 if tflags & 0x01 else 0) + (4 if tflags & 0x04 else 0)
        per_sample = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if tflags & bit)
        if tflags & 0x100:
            for i in range(count):
                duration += struct.unpack_from(">I", data, pos + i * per_sample)[0]
        else:
            duration += default_duration * count
        samples += count
    return TrackFragment(track_id, base_time, duration, samples)


def parse_moof(moof: bytes | bytearray) -> dict[int, TrackFragment]:
    """Track id → decode time and duration of one fragment (``moof`` box first in ``moof``)."""
    box = _child(moof, 0, len(moof), "moof")
    if box is None:
        raise ValueError("no moof box")
    result: dict[int, TrackFragment] = {}
    for kind, s, e in iter_boxes(moof, *box):
        if kind == "traf":
            frag = _traf_fragment(moof, s, e)
            result[frag.track_id] = frag
    return result


def fragment_sequence(moof: bytes | bytearray) -> int:
    """The ``mfhd`` sequence number: 1 for the first fragment of each run (each muxer counts anew)."""
    box = _child(moof, 0, len(moof), "moof")
    mfhd = _child(moof, *box, "mfhd") if box is not None else None
    if mfhd is None or mfhd[1] - mfhd[0] < 8:
        raise ValueError("no mfhd box")
    return struct.unpack_from(">I", moof, mfhd[0] + 4)[0]


def shift_tfdt(moof: bytearray, offsets: dict[int, int]) -> None:
    """Add ``offsets[track_id]`` to each traf's decode time, in place (sizes never change)."""
    box = _child(moof, 0, len(moof), "moof")
    if box is None:
        raise ValueError("no moof box")
    for kind, s, e in iter_boxes(moof, *box):
        if kind != "traf":
            continue
        tfhd = _child(moof, s, e, "tfhd")
        tfdt = _child(moof, s, e, "tfdt")
        if tfhd is None or tfdt is None:
            continue
        offset = offsets.get(struct.unpack_from(">I", moof, tfhd[0] + 4)[0], 0)
        if not offset:
            continue
        if moof[tfdt[0]] == 1:
            value = struct.unpack_from(">Q", moof, tfdt[0] + 4)[0] + offset
            struct.pack_into(">Q", moof, tfdt[0] + 4, value)
        else:
            value = struct.unpack_from(">I", moof, tfdt[0] + 4)[0] + offset
            if value >= 1 << 32:
                raise ValueError("32-bit tfdt overflow")
            struct.pack_into(">I", moof, tfdt[0] + 4, value)


class FragmentSplitter:
    """A write-only, non-seekable file object for PyAV that splits out init and fragments.

    ``init`` is set once ``ftyp``+``moov`` are complete; ``fragments`` collects ``moof+mdat`` byte
    strings until the owner takes them with :meth:`take`. Anything else (``mfra`` at the trailer) is
    dropped: HLS has no use for it.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._init = bytearray()
        self.init: bytes | None = None
        self._moof: bytes | None = None
        self.fragments: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._buf += data
        self._pos += len(data)
        buf = self._buf
        while len(buf) >= 8:
            size, kind = _HEADER.unpack_from(buf, 0)
            if size == 1:
                if len(buf) < 16:
                    break
                size = struct.unpack_from(">Q", buf, 8)[0]
            if size < 8 or len(buf) < size:
                break
            box = bytes(buf[:size])
            del buf[:size]
            self._on_box(kind, box)
        return len(data)

    def _on_box(self, kind: bytes, box: bytes) -> None:
        if kind in (b"ftyp", b"moov"):
            self._init += box
            if kind == b"moov":
                self.init = bytes(self._init)
        elif kind == b"moof":
            self._moof = box
        elif kind == b"mdat" and self._moof is not None:
            self.fragments.append(self._moof + box)
            self._moof = None

    def take(self) -> list[bytes]:
        out, self.fragments = self.fragments, []
        return out

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def seekable(self) -> bool:
        return False
