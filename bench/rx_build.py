"""Builds ``bench._rxfast``: the load generator's receive loop in C (cffi, API mode).

``python -m bench.rx_build`` compiles it next to this file (``make bench``/``make test`` do). The
load generator shares the server's two cores, so its per-packet cost is taken from the server: the
Python loop costs ~8 us per received packet, enough to starve a 500-subscriber run. This loop does
the same counting (sequence bitmap, gaps, repairs, duplicates, window classification, delay
histogram) for every ready socket in one call and hands back only what needs Python: datagrams
that are not RTP (STUN, DTLS, SRTCP), packets of an SSRC not seen yet, a frame's first packet while
a video stream still waits for its keyframe, and sequence gaps to NACK. Without a C compiler the
load generator keeps its Python loop (``bench/loadgen.py``), same semantics.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

STRUCTS = """
struct rx_stream {
    int id;
    int video;
    int keyframe;
    int started;
    int has_base;
    int has_win;
    uint16_t hi;
    uint32_t ssrc;
    uint32_t ref_rtp;
    int64_t kf_ts;
    int64_t last_ts;
    int64_t ext_hi;
    int64_t base_ext;
    int64_t win_min;
    int64_t win_max;
    uint64_t unique;
    uint64_t dups;
    uint64_t repaired;
    uint64_t rx;
    uint64_t rx_win;
    uint64_t rx_win_bytes;
    uint64_t unmapped;
    uint64_t win_unique;
    double clock;
    double base;
    double last_mapped;
    double w0;
    double w1;
    uint64_t *hist;
    unsigned char bm[65536];
};

struct rx_sock {
    int id;
    int fd;
    int n;
    int gro;
    struct rx_stream *streams[4];
};

struct rx_event {
    int type;
    int sock;
    int stream;
    int off;
    int len;
    int gap;
    uint16_t hi;
    double arrival;
    unsigned char addr[16];
};

struct rx_out {
    struct rx_event *ev;
    int n;
    int max;
    unsigned char *data;
    int used;
    int size;
    int full;
    uint64_t lost;
};

struct rx_state {
    double a0;
    double a1;
    double hist_bin;
    int hist_bins;
    uint64_t negative_delays;
    uint64_t passes;
    uint64_t gro_buffers;  /* reads that held several datagrams (UDP_GRO) */
};
"""

CDEF = STRUCTS + """
#define RX_NOT_RTP 0
#define RX_UNKNOWN_SSRC 1
#define RX_KEYFRAME_CHECK 2
#define RX_GAP 3
int rx_poll(int epfd, struct rx_sock **socks, int nsocks, struct rx_state *g, struct rx_out *out);

void rx_packet(struct rx_sock *s, struct rx_state *g, const unsigned char *p, int len, double arrival,
               struct rx_out *out);
"""

SOURCE = r"""
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>

""" + STRUCTS + r"""
#define RX_NOT_RTP 0
#define RX_UNKNOWN_SSRC 1
#define RX_KEYFRAME_CHECK 2
#define RX_GAP 3
#define RX_BATCH 64
#define RX_SIZE 2048
#define RX_CTL 64
#define RX_PER_SOCKET 512   /* datagrams per socket and pass, like the Python loop */
/* UDP_GRO sockets get a server's GSO send as one buffer of up to 64 segments: fewer, larger reads. */
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define RX_GRO_BATCH 8
#define RX_GRO_SIZE 65536
#define RX_GRO_SEGMENTS 64

static unsigned char rx_buf[RX_BATCH][RX_GRO_SIZE];
static unsigned char rx_ctl[RX_BATCH][RX_CTL];
static struct sockaddr_in rx_names[RX_BATCH];
static struct iovec rx_iov[RX_BATCH];
static struct mmsghdr rx_msgs[RX_BATCH];

/* Room for one more event carrying len bytes? (Python then handles what is queued and polls again.) */
static int rx_room(struct rx_out *out, int len) {
    return out->n < out->max && out->used + len <= out->size;
}

static struct rx_event rx_spare;  /* written and ignored when the output is full (never expected) */

static struct rx_event *rx_emit(struct rx_out *out, int type, struct rx_sock *s, struct rx_stream *st,
                                const unsigned char *p, int len, double arrival) {
    struct rx_event *e;
    if (!rx_room(out, p ? len : 0)) {
        out->full = 1;
        out->lost++;
        return &rx_spare;
    }
    e = &out->ev[out->n++];
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->sock = s->id;
    e->stream = st ? st->id : -1;
    e->arrival = arrival;
    e->off = out->used;
    e->len = p ? len : 0;
    if (p) {
        memcpy(out->data + out->used, p, (size_t)len);
        out->used += len;
    }
    return e;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void rx_packet(struct rx_sock *s, struct rx_state *g, const unsigned char *p, int len, double arrival,
               struct rx_out *out)
{
    uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
    uint32_t ts = be32(p + 4), ssrc = be32(p + 8);
    struct rx_stream *st = NULL;
    int64_t ext;
    int i;
    for (i = 0; i < s->n; i++) {
        if (s->streams[i]->ssrc == ssrc) { st = s->streams[i]; break; }
    }
    if (!st) {
        rx_emit(out, RX_UNKNOWN_SSRC, s, NULL, p, len, arrival);
        return;
    }
    st->rx++;
    if (st->video && !st->keyframe && (int64_t)ts != st->kf_ts) {
        st->kf_ts = ts;
        rx_emit(out, RX_KEYFRAME_CHECK, s, st, p, len, arrival);
    }
    if (g->a0 <= arrival && arrival < g->a1) {
        st->rx_win++;
        st->rx_win_bytes += (uint64_t)len;
    }
    if (!st->started) {
        st->started = 1;
        st->hi = seq;
        st->ext_hi = st->base_ext = (int64_t)seq + 65536;
        ext = st->ext_hi;
        st->bm[seq] = 1;
        st->unique++;
    } else {
        uint16_t d = (uint16_t)(seq - st->hi);
        if (d > 0 && d < 0x8000) {
            if (d > 1) {
                struct rx_event *e;
                for (i = 1; i <= d; i++) st->bm[((uint16_t)(st->hi + i)) ^ 0x8000] = 0;
                e = rx_emit(out, RX_GAP, s, st, NULL, 0, arrival);
                e->hi = st->hi;
                e->gap = d;
            } else {
                st->bm[seq ^ 0x8000] = 0;
            }
            st->hi = seq;
            st->ext_hi += d;
            ext = st->ext_hi;
            st->bm[seq] = 1;
            st->unique++;
        } else if (st->bm[seq]) {
            st->dups++;
            return;
        } else {  /* a retransmission filling a gap */
            st->bm[seq] = 1;
            st->unique++;
            st->repaired++;
            ext = st->ext_hi - (uint16_t)(st->hi - seq);
        }
    }
    if (arrival < st->w0 - 1.0) return;  /* window not started yet: skip the clock mapping */
    if ((int64_t)ts != st->last_ts) {
        if (!st->has_base) {
            st->unmapped++;
            return;
        }
        st->last_ts = ts;
        st->last_mapped = st->base + (double)(int32_t)(ts - st->ref_rtp) / st->clock;
    }
    if (st->w0 <= st->last_mapped && st->last_mapped < st->w1) {
        double x = (arrival - st->last_mapped) / g->hist_bin;
        long bin;
        st->win_unique++;
        if (!st->has_win || ext < st->win_min) st->win_min = ext;
        if (!st->has_win || ext > st->win_max) st->win_max = ext;
        st->has_win = 1;
        if (x >= g->hist_bins) bin = g->hist_bins;
        else if (x <= -1.0) { bin = 0; g->negative_delays++; }
        else bin = (long)x;  /* truncates toward zero, like Python's int() */
        st->hist[bin]++;
    }
}

static int rx_is_rtp(const unsigned char *p, int len) {
    return len >= 12 && p[0] > 127 && p[0] < 192 && !(p[1] > 191 && p[1] < 209);
}

/* One datagram (or one segment of a GRO buffer): counted here, or handed to Python. */
static void rx_datagram(struct rx_sock *s, struct rx_state *g, const unsigned char *p, int len,
                        double arrival, const struct sockaddr_in *name, struct rx_out *out)
{
    if (!rx_is_rtp(p, len)) {
        struct rx_event *e = rx_emit(out, RX_NOT_RTP, s, NULL, p, len, arrival);
        memcpy(e->addr, name, sizeof(*name));
        return;
    }
    rx_packet(s, g, p, len, arrival, out);
}

/* Drain one socket; returns 1 when it stopped because the output is full. */
static int rx_drain(struct rx_sock *s, struct rx_state *g, struct rx_out *out)
{
    int total = 0;
    int batch = s->gro ? RX_GRO_BATCH : RX_BATCH, size = s->gro ? RX_GRO_SIZE : RX_SIZE;
    int most = s->gro ? RX_GRO_BATCH * RX_GRO_SEGMENTS : RX_BATCH;  /* datagrams one call can yield */
    while (total < RX_PER_SOCKET) {
        int k, i;
        if (!rx_room(out, batch * size) || out->max - out->n < 2 * most) {
            out->full = 1;
            return 1;
        }
        for (i = 0; i < batch; i++) {
            rx_iov[i].iov_base = rx_buf[i];
            rx_iov[i].iov_len = (size_t)size;
            rx_msgs[i].msg_hdr.msg_name = &rx_names[i];
            rx_msgs[i].msg_hdr.msg_namelen = sizeof(rx_names[i]);
            rx_msgs[i].msg_hdr.msg_iov = &rx_iov[i];
            rx_msgs[i].msg_hdr.msg_iovlen = 1;
            rx_msgs[i].msg_hdr.msg_control = rx_ctl[i];
            rx_msgs[i].msg_hdr.msg_controllen = RX_CTL;
            rx_msgs[i].msg_hdr.msg_flags = 0;
        }
        k = recvmmsg(s->fd, rx_msgs, (unsigned int)batch, MSG_DONTWAIT, NULL);
        if (k <= 0) return 0;
        for (i = 0; i < k; i++) {
            const unsigned char *p = rx_buf[i];
            int len = (int)rx_msgs[i].msg_len, segment = 0, off;
            double arrival = -1.0;
            struct cmsghdr *c;
            for (c = CMSG_FIRSTHDR(&rx_msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&rx_msgs[i].msg_hdr, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec t;
                    memcpy(&t, CMSG_DATA(c), sizeof(t));
                    arrival = (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
                } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                    memcpy(&segment, CMSG_DATA(c), sizeof(segment));
                }
            }
            if (arrival < 0) {
                struct timespec t;
                clock_gettime(CLOCK_REALTIME, &t);
                arrival = (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
            }
            if (segment <= 0 || segment >= len) {
                rx_datagram(s, g, p, len, arrival, &rx_names[i], out);
                total++;
                continue;
            }
            g->gro_buffers++;
            for (off = 0; off < len; off += segment) {  /* the sender's datagrams, in order */
                rx_datagram(s, g, p + off, len - off < segment ? len - off : segment, arrival, &rx_names[i], out);
                total++;
            }
        }
        if (k < batch) return 0;
    }
    return 0;
}

int rx_poll(int epfd, struct rx_sock **socks, int nsocks, struct rx_state *g, struct rx_out *out)
{
    struct epoll_event ready[256];
    int n, i;
    g->passes++;
    n = epoll_wait(epfd, ready, 256, 0);
    for (i = 0; i < n; i++) {
        int idx = ready[i].data.fd;  /* registered by Python's select.epoll: data is the fd */
        if (idx < 0 || idx >= nsocks || !socks[idx] || socks[idx]->fd < 0) continue;
        if (rx_drain(socks[idx], g, out)) break;
    }
    return n;
}
"""


def build(verbose: bool = False) -> str:
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source("bench._rxfast", SOURCE, extra_compile_args=["-O2"])
    here = Path(__file__).resolve().parent
    return ffi.compile(tmpdir=str(here.parent / "build" / "rxfast"), target=str(here / "_rxfast.*"), verbose=verbose)


if __name__ == "__main__":
    print(build())
