"""Recording: the speaker's stream as HLS (fMP4, H.264 copied, AAC), live and for replay.

Modules: ``h264`` (NAL/SPS), ``timestamps`` (RTP unwrapping, decode times of B-frame streams),
``audio`` (Opus → PCM), ``fmp4`` (box splitting), ``muxer`` (one run),
``playlist`` (HLS text), ``recorder`` (one recording's writer thread), ``sync`` (A/V from sender
reports), ``manager`` (recorders per conference, engine hooks), ``recovery`` (after a crash),
``remux`` (MP4 download), ``retention`` (what to delete).
"""
