"""Recording: the speaker's stream as HLS (fMP4, H.264 copied, AAC), live and for replay.

Modules: ``reader`` (the recorder's place among a Router's readers: packets into its inbox),
``reassembly`` (packets -> frames, reordering and loss), ``h264`` (NAL/SPS), ``timestamps`` (RTP
unwrapping, decode times of B-frame streams), ``audio`` (Opus → PCM), ``fmp4`` (box splitting),
``muxer`` (one run), ``playlist`` (HLS text), ``recorder`` (one recording's writer thread), ``sync``
(A/V from sender reports), ``manager`` (recorders per conference, the engine hook), ``recovery``
(after a crash), ``remux`` (MP4 download), ``retention`` (what to delete).
"""
