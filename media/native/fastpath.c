/* The relay's fan-out loop (built as media.native._fastpath by media/native/build.py).
 *
 * Per batch of source packets, one call walks every subscriber that is in steady state on that
 * source: header rewrite, payload copy, SRTP protect and non-blocking sends. The protect is per
 * stream: AES-GCM streams use this file's pre-keyed fp_gcm_protect (media.egress.srtp_gcm, through
 * the OpenSSL that pylibsrtp bundles), others pylibsrtp's own srtp_protect, passed in as a pointer
 * so both sides use the same library and session contexts. Sends are one UDP GSO sendmsg per run
 * of equal-sized packets, a point's audio and video of one wake-up cut into runs together
 * (fp_forward_pair; docs/architecture.md, "Batched sends"). No Python object is touched per
 * subscriber, and the sends leave in one tight burst. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* sendmmsg, struct mmsghdr (Python.h defines it in the cffi build) */
#endif
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#include "fastpath.h"

typedef int (*fp_protect_fn)(void *ctx, void *rtp, int *len);

#define FP_MTU 1500

/* ---- batches: every packet that arrived in one wake-up, sent per subscriber in as few calls as
 * possible. Packets of equal protected size go out as one UDP GSO send (the kernel splits it into
 * ordinary datagrams; a run may end with one shorter packet), else sendmmsg. Loopback and real NICs
 * take GSO since Linux 4.18; if the kernel refuses it once, batches fall back to sendmmsg for good. */
#define FP_BATCH 64
#define FP_SLOT (FP_MTU + 64)   /* SRTP adds at most a 16-byte tag (AES-GCM), or 10 plus an MKI */
#define FP_GSO_MAX_BYTES 65000
static unsigned char fp_slots[FP_BATCH][FP_SLOT];
/* How batches leave: 2 UDP GSO, 1 sendmmsg (also after the kernel refused GSO), 0 one sendto per
 * packet (the unbatched baseline, for comparison). */
static int fp_batch_mode = 2;

/* 1: a batch's GSO runs to one point leave in one sendmmsg (fp_send_runs_at_once); 0: a call per run. */
static int fp_runs_at_once = 1;

int fp_send_runs_together(int set)
{
    if (set == 0 || set == 1) fp_runs_at_once = set;
    return fp_runs_at_once;
}

int fp_send_mode(int set)
{
    if (set >= 0 && set <= 2) fp_batch_mode = set;
    return fp_batch_mode;
}

/* Up to this many bytes of RTP padding (RFC 3550 5.1) even out a burst's nearly equal packets, so
 * they make one GSO run: packetizers split a NAL unit "about equally", one byte apart (aiortc puts
 * the longer ones first, libwebrtc last), which otherwise costs a second send per NAL unit and
 * point. Padding sits inside the SRTP payload; receivers drop it. 0 turns it off. */
#define FP_PAD_LIMIT 64
static int fp_pad_limit = 8;

int fp_pad_max(int set)
{
    if (set >= 0 && set <= FP_PAD_LIMIT) fp_pad_limit = set;
    return fp_pad_limit;
}

/* Padding per packet: consecutive packets whose sizes lie within fp_pad_limit of each other are
 * padded to the largest of them. Same for every subscriber (the header is always 12 bytes), but
 * applied only to targets with pad_ok: a padded packet can never be re-sent byte for byte (the
 * plan depends on the batch), so only streams whose retransmissions go over RTX, under their own
 * sequence numbers, may be padded. Two plaintexts under one SRTP index would reuse an AES-GCM IV. */
static void fp_plan_padding(const struct fp_pkt *pkts, int k, int *pad)
{
    int i = 0, j, m, lo, hi;
    while (i < k) {
        lo = hi = pkts[i].plen;
        for (j = i + 1; j < k; j++) {
            int s = pkts[j].plen, nlo = s < lo ? s : lo, nhi = s > hi ? s : hi;
            if (nhi - nlo > fp_pad_limit) break;
            lo = nlo;
            hi = nhi;
        }
        for (m = i; m < j; m++) pad[m] = hi - pkts[m].plen;
        i = j;
    }
}

/* ECONNREFUSED: a pinned (connected) socket reports an ICMP port-unreachable on its next send;
   one stray ICMP must not end a point, whose liveness RTCP and ICE consent decide. */
static int fp_hard_error(int e)
{
    return e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS && e != EINTR && e != ECONNREFUSED;
}

/* Sends count protected packets to t; returns how many datagrams left, -errno on a hard error. */
static int fp_send_run(struct fp_target *t, struct iovec *iov, int count)
{
    struct msghdr h;
    ssize_t r;
    if (count == 1) {
        do {
            r = sendto(t->fd, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT,
                       t->addrlen ? (const struct sockaddr *)t->addr : NULL, (socklen_t)t->addrlen);
        } while (r < 0 && errno == EINTR);
        if (r < 0) return fp_hard_error(errno) ? -errno : 0;
        return 1;
    }
    if (fp_batch_mode == 2) {
        union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } control;
        struct cmsghdr *c;
        memset(&h, 0, sizeof(h));
        h.msg_name = t->addrlen ? t->addr : NULL;
        h.msg_namelen = (socklen_t)t->addrlen;
        h.msg_iov = iov;
        h.msg_iovlen = (size_t)count;
        h.msg_control = control.buf;
        h.msg_controllen = sizeof(control.buf);
        c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        {
            uint16_t size = (uint16_t)iov[0].iov_len;
            memcpy(CMSG_DATA(c), &size, sizeof(size));
        }
        do {
            r = sendmsg(t->fd, &h, MSG_DONTWAIT);
        } while (r < 0 && errno == EINTR);
        if (r >= 0) return count;
        if (errno != EIO && errno != EINVAL && errno != ENOPROTOOPT && errno != EOPNOTSUPP)
            return fp_hard_error(errno) ? -errno : 0;
        fp_batch_mode = 1;   /* no GSO on this path: sendmmsg from now on */
    }
    {
        struct mmsghdr m[FP_BATCH];
        int i, sent;
        memset(m, 0, sizeof(struct mmsghdr) * (size_t)count);
        for (i = 0; i < count; i++) {
            m[i].msg_hdr.msg_name = t->addrlen ? t->addr : NULL;
            m[i].msg_hdr.msg_namelen = (socklen_t)t->addrlen;
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        do {
            sent = sendmmsg(t->fd, m, (unsigned int)count, MSG_DONTWAIT);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) return fp_hard_error(errno) ? -errno : 0;
        return sent;
    }
}

/* Rewrites and protects k packets for t into fp_slots[at...]; their iovecs, payload sizes and
 * owner go to the same positions. Returns how many are ready (protect failures count as drops). */
static int fp_fill(struct fp_target *t, fp_protect_fn dflt, const struct fp_pkt *pkts, int k, const int *pad,
                   int at, struct iovec *iov, int *plens, struct fp_target **owner)
{
    fp_protect_fn fn = t->protect ? (fp_protect_fn)t->protect : dflt;
    int ready = 0, j;
    for (j = 0; j < k; j++) {
        const struct fp_pkt *p = &pkts[j];
        unsigned char *b = fp_slots[at + ready];
        uint16_t oseq = (uint16_t)(p->seq + t->seq_off);
        uint32_t ots = p->ts + t->ts_off;
        int len = 12 + p->plen;
        t->last_seq = p->seq;
        t->last_ts = p->ts;
        if (p->plen < 0 || len > FP_MTU) { t->drops++; continue; }
        if (t->pad_ok && pad[j] > 0 && len + pad[j] <= FP_MTU) {
            memset(b + len, 0, (size_t)(pad[j] - 1));
            b[len + pad[j] - 1] = (unsigned char)pad[j];   /* the count includes itself */
            b[0] = 0xa0;   /* version 2, P set */
            len += pad[j];
        } else {
            b[0] = 0x80;
        }
        b[1] = (unsigned char)((p->marker ? 0x80 : 0) | (t->pt & 0x7f));
        b[2] = (unsigned char)(oseq >> 8);
        b[3] = (unsigned char)oseq;
        b[4] = (unsigned char)(ots >> 24);
        b[5] = (unsigned char)(ots >> 16);
        b[6] = (unsigned char)(ots >> 8);
        b[7] = (unsigned char)ots;
        b[8] = (unsigned char)(t->ssrc >> 24);
        b[9] = (unsigned char)(t->ssrc >> 16);
        b[10] = (unsigned char)(t->ssrc >> 8);
        b[11] = (unsigned char)t->ssrc;
        memcpy(b + 12, p->payload, (size_t)p->plen);
        if (fn(t->ctx, b, &len) != 0) { t->drops++; continue; }
        iov[at + ready].iov_base = b;
        iov[at + ready].iov_len = (size_t)len;
        plens[at + ready] = p->plen;
        owner[at + ready] = t;
        ready++;
    }
    return ready;
}

/* Where a GSO run that starts at start ends: equal sizes, optionally closed by one shorter datagram. */
static int fp_run_end(const struct iovec *iov, int start, int ready)
{
    int end = start + 1;
    size_t size = iov[start].iov_len, total = size;
    while (end < ready && iov[end].iov_len == size && total + size <= FP_GSO_MAX_BYTES) {
        total += size;
        end++;
    }
    if (end < ready && iov[end].iov_len < size && total + iov[end].iov_len <= FP_GSO_MAX_BYTES)
        end++;
    return end;
}

/* A batch of several GSO runs (a frame's slices of different sizes, a small NAL unit before
 * them, the point's audio) leaves in one sendmmsg, one message per run, instead of a call per
 * run: the network stack still works per message, but the syscall entry and file lookup are paid
 * once (3-7 % of the send cost in a microbenchmark of a frame's three runs). Counts what left and
 * returns the index of the first datagram that did not; those take the call-per-run way, which
 * retries them and sorts out the error (nothing is counted twice). */
static int fp_send_runs_at_once(struct fp_target *t, struct iovec *iov, int ready, const int *plens,
                                struct fp_target **owner)
{
    struct mmsghdr m[FP_BATCH];
    union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } control[FP_BATCH];
    int first[FP_BATCH + 1];
    int runs = 0, start = 0, sent, i;
    while (start < ready) {
        int end = fp_run_end(iov, start, ready);
        struct msghdr *h = &m[runs].msg_hdr;
        memset(&m[runs], 0, sizeof(m[runs]));
        h->msg_name = t->addrlen ? t->addr : NULL;
        h->msg_namelen = (socklen_t)t->addrlen;
        h->msg_iov = &iov[start];
        h->msg_iovlen = (size_t)(end - start);
        if (end - start > 1) {
            struct cmsghdr *c;
            uint16_t size = (uint16_t)iov[start].iov_len;
            h->msg_control = control[runs].buf;
            h->msg_controllen = sizeof(control[runs].buf);
            c = CMSG_FIRSTHDR(h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            memcpy(CMSG_DATA(c), &size, sizeof(size));
        }
        first[runs++] = start;
        start = end;
    }
    first[runs] = ready;
    do {
        sent = sendmmsg(t->fd, m, (unsigned int)runs, MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
    if (sent <= 0) return 0;
    t->sends++;
    t->runs += (uint64_t)sent;
    for (i = 0; i < first[sent]; i++) {
        owner[i]->packets++;
        owner[i]->octets += (uint64_t)plens[i];
    }
    return first[sent];
}

/* Sends the ready datagrams on t's socket in as few calls as the mode allows; counters go to each
 * datagram's owner, the send calls to t. Returns 1 on a hard error (owners marked failed). */
static int fp_send_ready(struct fp_target *t, struct iovec *iov, int ready, const int *plens,
                         struct fp_target **owner)
{
    int start = 0, m;
    if (fp_batch_mode == 2 && fp_runs_at_once && ready > 1 && fp_run_end(iov, 0, ready) < ready)
        start = fp_send_runs_at_once(t, iov, ready, plens, owner);   /* two runs or more */
    while (start < ready) {
        int end = start + 1, count, sent;
        if (fp_batch_mode == 2) {
            end = fp_run_end(iov, start, ready);
        } else if (fp_batch_mode == 1) {
            end = ready;
        }
        count = end - start;
        sent = fp_send_run(t, &iov[start], count);
        t->sends++;
        t->runs += fp_batch_mode == 2 ? 1 : (uint64_t)count;
        if (sent < 0) {
            for (m = start; m < ready; m++) {
                owner[m]->failed = 1;
                owner[m]->last_errno = -sent;
                owner[m]->drops++;
            }
            return 1;
        }
        for (m = start; m < start + sent; m++) {
            owner[m]->packets++;
            owner[m]->octets += (uint64_t)plens[m];
        }
        for (m = start + sent; m < end; m++) owner[m]->drops++;
        start = end;
    }
    return 0;
}

static void fp_padding(const struct fp_pkt *pkts, int k, int *pad)
{
    if (fp_batch_mode == 2 && k > 1 && fp_pad_limit > 0)
        fp_plan_padding(pkts, k, pad);
    else
        memset(pad, 0, sizeof(int) * (size_t)k);
}

int fp_forward_batch(uintptr_t protect, struct fp_target **targets, int n, struct fp_pkt *pkts, int k)
{
    fp_protect_fn dflt = (fp_protect_fn)protect;
    struct iovec iov[FP_BATCH];
    struct fp_target *owner[FP_BATCH];
    int plens[FP_BATCH];
    int pad[FP_BATCH];
    int failures = 0;
    int i;
    if (k > FP_BATCH)   /* more than the slots hold: in order, a slot-full at a time */
        return fp_forward_batch(protect, targets, n, pkts, FP_BATCH)
               + fp_forward_batch(protect, targets, n, pkts + FP_BATCH, k - FP_BATCH);
    fp_padding(pkts, k, pad);
    for (i = 0; i < n; i++) {
        struct fp_target *t = targets[i];
        int ready = fp_fill(t, dflt, pkts, k, pad, 0, iov, plens, owner);
        failures += fp_send_ready(t, iov, ready, plens, owner);
    }
    return failures;
}

/* Two sets' batches of one wake-up (a point's video and audio), per point in one pass: where a
 * target's partner is in the other set, both streams' packets go out together, so an audio packet
 * rides as the shorter last datagram of a video GSO run instead of costing a send of its own.
 * The other set's targets without a partner here get their batch alone afterwards. */
int fp_forward_pair(uintptr_t protect, struct fp_target **targets, int n, struct fp_pkt *pkts, int k,
                    struct fp_target **others, int n_others, struct fp_pkt *other_pkts, int k_others,
                    uint32_t others_set)
{
    static uint32_t round = 0;
    fp_protect_fn dflt = (fp_protect_fn)protect;
    struct iovec iov[FP_BATCH];
    struct fp_target *owner[FP_BATCH];
    int plens[FP_BATCH];
    int pad[FP_BATCH], other_pad[FP_BATCH];
    int failures = 0;
    int i;
    if (k + k_others > FP_BATCH || fp_batch_mode != 2 || others_set == 0)
        return fp_forward_batch(protect, targets, n, pkts, k)
               + fp_forward_batch(protect, others, n_others, other_pkts, k_others);
    if (++round == 0) round = 1;
    fp_padding(pkts, k, pad);
    fp_padding(other_pkts, k_others, other_pad);
    for (i = 0; i < n; i++) {
        struct fp_target *t = targets[i], *p = t->partner;
        int ready = fp_fill(t, dflt, pkts, k, pad, 0, iov, plens, owner);
        if (p != NULL && p->set_id == others_set && p->served != round) {
            ready += fp_fill(p, dflt, other_pkts, k_others, other_pad, ready, iov, plens, owner);
            p->served = round;
        }
        failures += fp_send_ready(t, iov, ready, plens, owner);
    }
    for (i = 0; i < n_others; i++) {
        struct fp_target *t = others[i];
        int ready;
        if (t->served == round) continue;
        ready = fp_fill(t, dflt, other_pkts, k_others, other_pad, 0, iov, plens, owner);
        failures += fp_send_ready(t, iov, ready, plens, owner);
    }
    return failures;
}

/* One packet: a batch of one (sent with a plain sendto). */
int fp_forward(uintptr_t protect, struct fp_target **targets, int n, uint16_t seq, uint32_t ts,
               int marker, const unsigned char *payload, int plen)
{
    struct fp_pkt p;
    p.payload = payload;
    p.plen = plen;
    p.seq = seq;
    p.ts = ts;
    p.marker = (uint8_t)(marker ? 1 : 0);
    return fp_forward_batch(protect, targets, n, &p, 1);
}

/* ---- SRTP AEAD_AES_128_GCM / AEAD_AES_256_GCM protect (RFC 7714), one pre-keyed context per
 * outbound stream. Same bytes as libsrtp's srtp_protect, without its per-packet stream lookup,
 * 1024-bit replay window shift and cipher re-selection: the key schedule is set up once, each
 * packet only sets the IV. One SSRC per context; the rollover counter follows the sequence numbers
 * this context protects (a sender's ROC starts at 0, RFC 3711 section 3.3.1).
 *
 * OpenSSL is called through pointers bound once (fp_gcm_bind): media.egress.srtp_gcm passes the EVP
 * functions of the OpenSSL that pylibsrtp bundles for libsrtp, so both use the same build (with its
 * AVX-512 AES-GCM) and nothing here needs OpenSSL headers or the system's libcrypto. */
#define FP_EVP_CTRL_GCM_SET_IVLEN 0x9
#define FP_EVP_CTRL_GCM_GET_TAG 0x10
enum { FP_CTX_NEW, FP_CTX_FREE, FP_INIT, FP_UPDATE, FP_FINAL, FP_CTRL,
       FP_AES128_GCM, FP_AES256_GCM, FP_AES128_CTR, FP_AES256_CTR, FP_NFUNCS };
static struct {
    void *(*ctx_new)(void);
    void (*ctx_free)(void *);
    int (*init)(void *, const void *, void *, const unsigned char *, const unsigned char *);
    int (*update)(void *, unsigned char *, int *, const unsigned char *, int);
    int (*final)(void *, unsigned char *, int *);
    int (*ctrl)(void *, int, int, void *);
    const void *(*cipher[4])(void);
} fp_evp;
static int fp_evp_bound = 0;

int fp_gcm_bind(const uintptr_t *fns, int n)
{
    int i;
    if (n != FP_NFUNCS) return -1;
    for (i = 0; i < n; i++) if (fns[i] == 0) return -1;
    fp_evp.ctx_new = (void *(*)(void))fns[FP_CTX_NEW];
    fp_evp.ctx_free = (void (*)(void *))fns[FP_CTX_FREE];
    fp_evp.init = (int (*)(void *, const void *, void *, const unsigned char *, const unsigned char *))fns[FP_INIT];
    fp_evp.update = (int (*)(void *, unsigned char *, int *, const unsigned char *, int))fns[FP_UPDATE];
    fp_evp.final = (int (*)(void *, unsigned char *, int *))fns[FP_FINAL];
    fp_evp.ctrl = (int (*)(void *, int, int, void *))fns[FP_CTRL];
    for (i = 0; i < 4; i++) fp_evp.cipher[i] = (const void *(*)(void))fns[FP_AES128_GCM + i];
    fp_evp_bound = 1;
    return 0;
}

struct fp_gcm {
    void *ctx;
    unsigned char salt[12];
    uint32_t roc;
    uint16_t seq;
    int started;
};

/* RFC 3711 section 4.3 key derivation (AES-CM PRF, key_derivation_rate 0), as libsrtp does it for
 * AEAD profiles: the 12-byte master salt is zero-padded to 14, the label XORed into octet 7. */
static int fp_kdf(const unsigned char *key, int keylen, const unsigned char *salt, int saltlen,
                  unsigned char label, unsigned char *out, int outlen)
{
    unsigned char iv[16], zeros[64];
    void *c;
    int n = 0, ok;
    memset(iv, 0, sizeof(iv));
    memcpy(iv, salt, (size_t)(saltlen < 14 ? saltlen : 14));
    iv[7] ^= label;
    memset(zeros, 0, sizeof(zeros));
    if (outlen > (int)sizeof(zeros)) return -1;
    c = fp_evp.ctx_new();
    if (c == NULL) return -1;
    ok = fp_evp.init(c, fp_evp.cipher[keylen == 32 ? 3 : 2](), NULL, key, iv)
         && fp_evp.update(c, out, &n, zeros, outlen) && n == outlen;
    fp_evp.ctx_free(c);
    return ok ? 0 : -1;
}

void *fp_gcm_new(const unsigned char *key, int keylen, const unsigned char *salt, int saltlen)
{
    unsigned char session_key[32];
    struct fp_gcm *g;
    if (!fp_evp_bound || (keylen != 16 && keylen != 32) || saltlen != 12) return NULL;
    g = calloc(1, sizeof(*g));
    if (g == NULL) return NULL;
    if (fp_kdf(key, keylen, salt, saltlen, 0x00, session_key, keylen) != 0
        || fp_kdf(key, keylen, salt, saltlen, 0x02, g->salt, 12) != 0) {
        free(g);
        return NULL;
    }
    g->ctx = fp_evp.ctx_new();
    if (g->ctx == NULL
        || !fp_evp.init(g->ctx, fp_evp.cipher[keylen == 32 ? 1 : 0](), NULL, NULL, NULL)
        || !fp_evp.ctrl(g->ctx, FP_EVP_CTRL_GCM_SET_IVLEN, 12, NULL)
        || !fp_evp.init(g->ctx, NULL, NULL, session_key, NULL)) {
        if (g->ctx != NULL) fp_evp.ctx_free(g->ctx);
        free(g);
        g = NULL;
    }
    memset(session_key, 0, sizeof(session_key));
    return g;
}

void fp_gcm_free(void *ctx)
{
    struct fp_gcm *g = ctx;
    if (g == NULL) return;
    fp_evp.ctx_free(g->ctx);
    memset(g, 0, sizeof(*g));
    free(g);
}

/* srtp_protect's contract: rtp holds *len bytes with room for the 16-byte tag; 0 on success. */
int fp_gcm_protect(void *ctx, void *rtp, int *len)
{
    struct fp_gcm *g = ctx;
    unsigned char *p = rtp, iv[12];
    int n = *len, hdr, out = 0, i;
    uint16_t seq;
    uint32_t roc;
    if (n < 12 || (p[0] >> 6) != 2) return 1;
    hdr = 12 + 4 * (p[0] & 0x0f);
    if (p[0] & 0x10) {
        if (hdr + 4 > n) return 1;
        hdr += 4 + 4 * ((p[hdr + 2] << 8) | p[hdr + 3]);
    }
    if (hdr > n) return 1;
    seq = (uint16_t)((p[2] << 8) | p[3]);
    if (!g->started) {
        g->started = 1;
        g->seq = seq;
        roc = g->roc;
    } else {
        int16_t d = (int16_t)(uint16_t)(seq - g->seq);
        if (d > 0) {
            if (seq < g->seq) g->roc++;   /* wrapped */
            g->seq = seq;
            roc = g->roc;
        } else {                          /* a repeat or an older packet (a retransmission) */
            roc = (seq > g->seq) ? g->roc - 1 : g->roc;
        }
    }
    iv[0] = 0;
    iv[1] = 0;
    memcpy(iv + 2, p + 8, 4);
    iv[6] = (unsigned char)(roc >> 24);
    iv[7] = (unsigned char)(roc >> 16);
    iv[8] = (unsigned char)(roc >> 8);
    iv[9] = (unsigned char)roc;
    iv[10] = (unsigned char)(seq >> 8);
    iv[11] = (unsigned char)seq;
    for (i = 0; i < 12; i++) iv[i] ^= g->salt[i];
    if (!fp_evp.init(g->ctx, NULL, NULL, NULL, iv)
        || !fp_evp.update(g->ctx, NULL, &out, p, hdr)
        || (n > hdr && !fp_evp.update(g->ctx, p + hdr, &out, p + hdr, n - hdr))
        || !fp_evp.final(g->ctx, p + n, &out)
        || !fp_evp.ctrl(g->ctx, FP_EVP_CTRL_GCM_GET_TAG, 16, p + n))
        return 1;
    *len = n + 16;
    return 0;
}

int fp_set_addr(struct fp_target *t, const char *host, int port)
{
    /* Numeric only (no DNS): ICE gave us an address; IPv6 scope ids ("fe80::1%eth0") work too. */
    struct addrinfo hints, *res = NULL;
    char service[8];
    int ok = -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_DGRAM;
    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0) return -1;
    if (res->ai_addrlen <= sizeof(t->addr)) {
        memcpy(t->addr, res->ai_addr, res->ai_addrlen);
        t->addrlen = (uint32_t)res->ai_addrlen;
        ok = 0;
    }
    freeaddrinfo(res);
    return ok;
}
