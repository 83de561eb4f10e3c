/* sub_fifo.c: a subscriber link's commands awaiting answers (sub_fifo.h). */
#include "redis/sub_fifo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

void sub_cmd_free(struct sub_cmd *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ch[i]);
    free(c->ch);
    c->ch = NULL;
    c->n = c->next = 0;
}

/* Room for one more, doubling from 16. */
static bool reserve(struct sub_fifo *f)
{
    return ring_make_room(&f->cmds, sizeof(*f->cmds), &f->head, f->n, &f->cap, 16, 0, RING_GROW) ==
           RING_ROOM;
}

bool sub_fifo_push(struct sub_fifo *f, enum sub_cmd_kind kind, char *const *ch, size_t n)
{
    struct sub_cmd c = {.kind = kind};
    if (kind == SUB_CMD_PING)
        n = 0;
    if (n && !(c.ch = calloc(n, sizeof(*c.ch))))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!(c.ch[i] = strdup(ch[i]))) {
            sub_cmd_free(&c);
            return false;
        }
        c.n = i + 1;
    }
    if (!reserve(f)) {
        sub_cmd_free(&c);
        return false;
    }
    f->cmds[(f->head + f->n) % f->cap] = c;
    f->n++;
    return true;
}

struct sub_cmd *sub_fifo_head(struct sub_fifo *f)
{
    return f->n ? &f->cmds[f->head] : NULL;
}

static void pop(struct sub_fifo *f)
{
    sub_cmd_free(&f->cmds[f->head]);
    f->head = (f->head + 1) % f->cap;
    f->n--;
}

bool sub_fifo_confirm(struct sub_fifo *f, bool sub, const char *ch, size_t len)
{
    struct sub_cmd *c = sub_fifo_head(f);
    bool ours = c && c->next < c->n &&
                (sub ? (c->kind == SUB_CMD_SUB || c->kind == SUB_CMD_GLOBAL)
                     : (c->kind == SUB_CMD_UNSUB || c->kind == SUB_CMD_UNGLOBAL)) &&
                strlen(c->ch[c->next]) == len && memcmp(c->ch[c->next], ch, len) == 0;
    if (ours && ++c->next == c->n)
        pop(f);
    return ours;
}

void sub_fifo_pong(struct sub_fifo *f)
{
    struct sub_cmd *c = sub_fifo_head(f);
    if (c && c->kind == SUB_CMD_PING)
        pop(f);
}

bool sub_fifo_take(struct sub_fifo *f, struct sub_cmd *out)
{
    struct sub_cmd *c = sub_fifo_head(f);
    if (!c)
        return false;
    *out = *c;
    c->ch = NULL;
    c->n = 0;
    pop(f);
    return true;
}

void sub_fifo_clear(struct sub_fifo *f)
{
    while (f->n)
        pop(f);
}

void sub_fifo_free(struct sub_fifo *f)
{
    sub_fifo_clear(f);
    free(f->cmds);
    *f = (struct sub_fifo){0};
}
