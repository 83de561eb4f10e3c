/* sub_fifo.h: a subscriber link's commands awaiting Redis' answers.
 *
 * DESIGN: Redis answers a subscription command with one confirmation per
 * channel, in argument order, and a command's error answers it whole; so
 * the commands sent on a link are kept in order, each with its channels
 * and how many are confirmed, until every channel is confirmed or an
 * error takes it. A confirmation that matches no command's next channel is
 * the node's own (a slot that moved away pushes sunsubscribe): the caller
 * tells the two apart with sub_fifo_confirm. No bound of its own: at most
 * one entry per room the pod hosts, in commands of up to 1000 channels
 * (internals.md). Pure: no sockets, no threads.
 *
 * Owner: the subscriber thread, one FIFO per node. */
#ifndef CHAT_REDIS_SUB_FIFO_H
#define CHAT_REDIS_SUB_FIFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sub_cmd_kind { SUB_CMD_PING, SUB_CMD_SUB, SUB_CMD_UNSUB, SUB_CMD_GLOBAL, SUB_CMD_UNGLOBAL };

/* A command sent on a link, kept until Redis answered it all. */
struct sub_cmd {
    enum sub_cmd_kind kind;
    char **ch;      /* its channels, heap */
    size_t n, next; /* confirmations come in argument order */
};

/* Zeroed: empty. */
struct sub_fifo {
    struct sub_cmd *cmds; /* a ring of cap; grows without a bound of its own (ring.h) */
    uint32_t head, n, cap;
};

/* Appends a command for channels ch[0..n) (copied; none for a ping).
 * Returns false when out of memory (nothing appended). */
bool sub_fifo_push(struct sub_fifo *f, enum sub_cmd_kind kind, char *const *ch, size_t n);
/* The oldest command, or NULL. */
struct sub_cmd *sub_fifo_head(struct sub_fifo *f);
/* A confirmation (sub: subscribe or ssubscribe, else an unsubscribe) of
 * channel ch[0..len): true when it is the oldest command's next channel
 * (counted; the command goes once every channel is confirmed), false when
 * it is the node's own. */
bool sub_fifo_confirm(struct sub_fifo *f, bool sub, const char *ch, size_t len);
/* A pong answers a ping at the head. */
void sub_fifo_pong(struct sub_fifo *f);
/* An error answers the oldest command: it is taken out into *out (the
 * caller frees it with sub_cmd_free). False when there is none. */
bool sub_fifo_take(struct sub_fifo *f, struct sub_cmd *out);
void sub_cmd_free(struct sub_cmd *c);
/* Forgets every command (the link closed). */
void sub_fifo_clear(struct sub_fifo *f);
void sub_fifo_free(struct sub_fifo *f);

#endif
