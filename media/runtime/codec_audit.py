"""Counts every decoder/encoder aiortc creates in this process.

The relay promises never to decode or re-encode; these counters (exported as metrics) let a test
and an operator verify it on a live server instead of trusting it.
"""

from __future__ import annotations

from collections import Counter

import aiortc.codecs

from media import aiortc_compat

created: Counter[str] = Counter()
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    orig_decoder = aiortc.codecs.get_decoder
    orig_encoder = aiortc.codecs.get_encoder

    def get_decoder(codec):  # type: ignore[no-untyped-def]
        created[f"decoder:{codec.mimeType.lower()}"] += 1
        return orig_decoder(codec)

    def get_encoder(codec):  # type: ignore[no-untyped-def]
        created[f"encoder:{codec.mimeType.lower()}"] += 1
        return orig_encoder(codec)

    aiortc_compat.replace_codec_factories(get_decoder, get_encoder)
    _installed = True


def snapshot() -> dict[str, int]:
    return dict(created)
