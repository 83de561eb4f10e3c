/* seq.h: sequence numbers per origin pod and channel. Pure.
 *
 * Every payload a pod publishes ends with its id, a sequence number per
 * channel and the pod's epoch, a random number drawn at start:
 * ..."pod":"chat-1","seq":41,"epoch":5710...} (the envelope module writes
 * and reads that numbering: envelope.h, "On Redis"). Clients never see the
 * numbering (the receiving pod cuts it off before framing), so a client
 * cannot learn an epoch. A receiving pod remembers the last sequence it saw
 * per (origin, epoch, channel): a repeat or a slightly older number is a
 * duplicate (the publisher's resend after a broken batch), a jump is a loss
 * of known size. A number further than SEQ_JUMP_MAX from the last, either
 * way, starts a new stream: delivered, nothing counted lost, nothing that
 * follows dropped. No real stream jumps that far (a pod publishes one
 * channel's numbers in order), so one payload with a made-up number can
 * neither silence a pod nor add more than SEQ_JUMP_MAX to broker.lost.
 *
 * Both sides keep a table keyed by a string (the publisher: the channel;
 * the receiver: origin, epoch and channel) and forget entries that went
 * quiet. The receiver forgets sooner than the publisher (SEQ_FORGET_RX_MS <
 * SEQ_FORGET_TX_MS), so when a publisher starts a forgotten channel again
 * at 1, every receiver has forgotten it too and takes 1 as a new start.
 * Each table belongs to one thread. */
#ifndef CHAT_REDIS_SEQ_H
#define CHAT_REDIS_SEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEQ_FORGET_TX_MS (10 * 60 * 1000)
#define SEQ_FORGET_RX_MS (5 * 60 * 1000)
#define SEQ_KEY_MAX 256
/* Further than this from the last number seen is a new stream (above). */
#define SEQ_JUMP_MAX 100000
/* Streams a receiver keeps at most (about 100 bytes each): payloads of
 * further origins, epochs or channels are delivered without numbering. */
#define SEQ_RX_MAX 100000

struct seq_entry {
    uint64_t value; /* the publisher: last number given; the receiver: last seen */
    uint64_t stamp_ms;
};

struct seq_table;

/* A table of at most max entries (0: no bound). */
struct seq_table *seq_table_new(size_t max);
void seq_table_free(struct seq_table *t);

/* The entry for key[0..len), created (value 0) when absent; *fresh says
 * whether it was. NULL when out of memory, len > SEQ_KEY_MAX, or the table
 * holds its max already. */
struct seq_entry *seq_table_get(struct seq_table *t, const char *key, size_t len, bool *fresh);

/* Forgets entries whose stamp is older than before_ms. Returns how many. */
size_t seq_table_sweep(struct seq_table *t, uint64_t before_ms);

size_t seq_table_count(const struct seq_table *t);

/* What a receiver makes of sequence number seq for an entry. */
enum seq_verdict {
    SEQ_NEXT,      /* the one expected (or the first seen): deliver */
    SEQ_GAP,       /* later than expected: deliver; *lost are missing */
    SEQ_DUPLICATE, /* seen before, or older within SEQ_JUMP_MAX: drop */
    SEQ_RESTART,   /* further than SEQ_JUMP_MAX either way: a new stream, deliver */
};

/* Judges seq against e (fresh: just created) and records it. */
enum seq_verdict seq_accept(struct seq_entry *e, bool fresh, uint64_t seq, uint64_t *lost);

#endif
