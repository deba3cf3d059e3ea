"""Sections of docs/benchmarks.md that one harness writes and another must carry over.

``bench.run`` rewrites the whole report; the soak (``bench.soak``), the floor switch
(``bench.floor_switch``) and the HLS viewers (``bench.hls_viewers``) each own one marked block in it.
Each keeps the others' figures instead of dropping them on the next run.
"""

from __future__ import annotations

SOAK = ("<!-- soak:start -->", "<!-- soak:end -->")
FLOOR = ("<!-- floor:start -->", "<!-- floor:end -->")
HLS = ("<!-- hls:start -->", "<!-- hls:end -->")


def extract(text: str, markers: tuple[str, str]) -> str | None:
    """The marked block in ``text``, markers included, or None."""
    start, end = markers
    if start not in text or end not in text.split(start, 1)[1]:
        return None
    return start + text.split(start, 1)[1].split(end, 1)[0] + end


def put(text: str, block: str, markers: tuple[str, str]) -> str:
    """``text`` with its marked block replaced by ``block`` (appended when it has none)."""
    old = extract(text, markers)
    if old is not None:
        return text.replace(old, block, 1)
    return text.rstrip("\n") + "\n\n" + block + "\n"
