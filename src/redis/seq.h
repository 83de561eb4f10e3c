/* seq.h: sequence numbers per origin pod and channel. Pure.
 *
 * Every payload a pod publishes ends with its id, a sequence number per
 * channel and the pod's boot epoch: ..."pod":"chat-1","seq":41,"epoch":1764...}.
 * A receiving pod remembers the last sequence it saw per (origin, epoch,
 * channel): a repeat or an older number is a duplicate (the publisher's
 * resend after a broken batch), a jump is a loss of known size.
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

struct seq_entry {
    uint64_t value; /* the publisher: last number given; the receiver: last seen */
    uint64_t stamp_ms;
};

struct seq_table;

struct seq_table *seq_table_new(void);
void seq_table_free(struct seq_table *t);

/* The entry for key[0..len), created (value 0) when absent; *fresh says
 * whether it was. NULL when out of memory or len > SEQ_KEY_MAX. */
struct seq_entry *seq_table_get(struct seq_table *t, const char *key, size_t len, bool *fresh);

/* Forgets entries whose stamp is older than before_ms. Returns how many. */
size_t seq_table_sweep(struct seq_table *t, uint64_t before_ms);

size_t seq_table_count(const struct seq_table *t);

/* What a receiver makes of sequence number seq for an entry. */
enum seq_verdict {
    SEQ_NEXT,      /* the one expected (or the first seen): deliver */
    SEQ_GAP,       /* later than expected: deliver; *lost are missing */
    SEQ_DUPLICATE, /* seen before, or older: drop */
};

/* Judges seq against e (fresh: just created) and records it. */
enum seq_verdict seq_accept(struct seq_entry *e, bool fresh, uint64_t seq, uint64_t *lost);

/* The tail of a payload published by a pod: its id, sequence and epoch. */
struct seq_tail {
    const char *pod; /* into the payload, not NUL-terminated */
    size_t pod_len;
    uint64_t seq, epoch;
};

/* Reads the tail ..."pod":"<id>","seq":<n>,"epoch":<n>} of payload. Returns
 * false when the payload does not end that way (a backend's payload, say). */
bool seq_tail_parse(const char *payload, size_t len, struct seq_tail *t);

/* Writes payload (a JSON object ending in '}') with ,"seq":<seq>,"epoch":<epoch>
 * added before its closing brace into out. Returns the length, or 0 when it
 * does not fit in cap or payload does not end in '}'. */
size_t seq_tail_append(const char *payload, size_t len, uint64_t seq, uint64_t epoch, char *out,
                       size_t cap);

#endif
