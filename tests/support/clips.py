"""A light clip for tests whose subject is not the picture (signalling, tokens, timeouts, sessions).

The default ``test_clip()`` is 720p at 2 Mb/s: every aiortc subscriber in the test process decodes it,
which on two cores starves the receivers (a 3 s consent timeout test saw 83 % loss on a healthy
point). 320x180 at 400 kb/s is the clip the floor, metrics and webhook tests already use, so it is
encoded once.
"""

from __future__ import annotations

from bench.clip import Clip, test_clip


def light_clip() -> Clip:
    return test_clip(seconds=6, width=320, height=180, fps=30, kbps=400)
