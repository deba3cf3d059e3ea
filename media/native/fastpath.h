/* The C fan-out loop's interface (media/native/fastpath.c). cffi reads this file as its cdef
 * (media/native/build.py), so it holds declarations only, in the C subset cffi parses: no
 * #include, #define or include guard; fastpath.c includes <stdint.h> before it. */
struct fp_target {
    void *ctx;
    uintptr_t protect;
    int fd;
    uint32_t ssrc;
    uint32_t ts_off;
    uint16_t seq_off;
    uint8_t pt;
    uint8_t failed;
    uint8_t pad_ok;             /* 1: RTP padding allowed (retransmissions leave over RTX, not this index) */
    uint16_t last_seq;
    uint32_t last_ts;
    uint64_t packets;
    uint64_t octets;
    uint64_t drops;
    uint64_t sends;             /* system calls */
    uint64_t runs;              /* datagram groups handed to the kernel: GSO runs, lone datagrams */
    int last_errno;
    uint32_t addrlen;           /* 0: the socket is connected (media.transport.pinned_path), send without */
    unsigned char addr[28];
    struct fp_target *partner;  /* the same point's stream of the other kind, on the same socket */
    uint32_t set_id;            /* the fan-out set it is in (0: none) */
    uint32_t served;            /* fp_forward_pair's round that already sent its packets */
};

struct fp_pkt {
    const unsigned char *payload;
    int plen;
    uint32_t ts;
    uint16_t seq;
    uint8_t marker;
};

int fp_forward_batch(uintptr_t protect, struct fp_target **targets, int n, struct fp_pkt *pkts, int k);
int fp_forward_pair(uintptr_t protect, struct fp_target **targets, int n, struct fp_pkt *pkts, int k,
                    struct fp_target **others, int n_others, struct fp_pkt *other_pkts, int k_others,
                    uint32_t others_set);
int fp_send_mode(int set);
int fp_send_runs_together(int set);
int fp_pad_max(int set);
int fp_forward(uintptr_t protect, struct fp_target **targets, int n, uint16_t seq, uint32_t ts,
               int marker, const unsigned char *payload, int plen);
int fp_set_addr(struct fp_target *t, const char *host, int port);
int fp_gcm_bind(const uintptr_t *fns, int n);
void *fp_gcm_new(const unsigned char *key, int keylen, const unsigned char *salt, int saltlen);
void fp_gcm_free(void *ctx);
int fp_gcm_protect(void *ctx, void *rtp, int *len);
