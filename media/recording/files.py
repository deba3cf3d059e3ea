"""The names of a recording's files, in one place for the writer, crash recovery and the HLS routes.

Runs (one per switch of publisher, parameter change or pause) are numbered from 0 and segments across the whole
recording; both names are zero-padded for a sorted listing but grow past the padding (``init1000``,
``seg1000000``), so a long conference with many reconnects stays reachable. A low variant's files
have the same names in the recording's ``low/`` directory.
"""

from __future__ import annotations

import re

PLAYLIST = "index.m3u8"
MASTER = "master.m3u8"  # the multivariant playlist (media.recording.variants)
LOW_DIRECTORY = "low"  # the low variant's own playlist, init and media segments, named as above
INIT = re.compile(r"^init(\d{3,9})\.mp4$")
SEGMENT = re.compile(r"^seg(\d{6,12})\.m4s$")


def init_name(run: int) -> str:
    return f"init{run:03d}.mp4"


def segment_name(number: int) -> str:
    return f"seg{number:06d}.m4s"


def is_media_file(name: str) -> bool:
    """An init or media segment name the writer could have made (what the HLS routes serve)."""
    return bool(INIT.match(name) or SEGMENT.match(name))
