"""HLS recording → one progressive MP4 (``faststart``), packets copied, nothing re-encoded.

The district committees get a single file that any player opens. FFmpeg's HLS demuxer reads the
recording's own playlist (init segments, discontinuities and all; timestamps are already continuous
across runs) and the mp4 muxer moves the index to the front in a second pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import av

PROGRESS_EVERY = 500  # packets between two progress calls


def remux_to_mp4(playlist: Path, output: Path, progress: Callable[[float], None] | None = None) -> Path:
    """Write ``output`` atomically (temp file + rename) from the VOD ``playlist``; returns it.
    ``progress`` is called now and then with the share done (0-1), by media time."""
    tmp = output.with_name(f".{output.name}.tmp")
    source = av.open(str(playlist), format="hls")
    total = source.duration / av.time_base if source.duration else 0.0
    start = (source.start_time or 0) / av.time_base
    try:
        target = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            mapping = {}
            for stream in source.streams:
                if stream.type in ("video", "audio"):
                    mapping[stream.index] = target.add_stream_from_template(stream)
            for n, packet in enumerate(source.demux(*[source.streams[i] for i in mapping])):
                if packet.dts is None or packet.size == 0:
                    continue
                if progress is not None and total and n % PROGRESS_EVERY == 0:
                    progress(min(1.0, max(0.0, float(packet.dts * packet.time_base) - start) / total))
                packet.stream = mapping[packet.stream.index]
                target.mux(packet)
        finally:
            target.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    os.replace(tmp, output)
    return output
