/* room.c: chained hash of rooms, each an array of members. */
#include "room/room.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t room_hash(const char *name, size_t len)
{
    /* FNV-1a: room names are short and chosen by clients; the table only
     * ever holds the rooms this worker's own clients are in. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* Makes room for one more member. Returns 0 or -ENOMEM. */
static int reserve(struct room *r)
{
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 4;
        struct room_member **grown = realloc(r->members, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        r->members = grown;
        r->cap = cap;
    }
    return 0;
}

int room_add(struct room *r, struct room_member *m)
{
    if (reserve(r) < 0)
        return -ENOMEM;
    m->slot = r->n;
    r->members[r->n++] = m;
    return 0;
}

void room_remove(struct room *r, struct room_member *m)
{
    uint32_t slot = m->slot;
    struct room_member *last = r->members[--r->n];
    r->members[slot] = last;
    last->slot = slot;
}

struct room *room_find(const struct room_index *ix, const char *name, uint32_t hash)
{
    if (!ix->nbuckets)
        return NULL;
    for (struct room *r = ix->buckets[hash & (ix->nbuckets - 1)]; r; r = r->next)
        if (r->hash == hash && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static int grow(struct room_index *ix)
{
    size_t n = ix->nbuckets ? ix->nbuckets * 2 : 16;
    struct room **b = calloc(n, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < ix->nbuckets; i++) {
        struct room *r = ix->buckets[i];
        while (r) {
            struct room *next = r->next;
            r->next = b[r->hash & (n - 1)];
            b[r->hash & (n - 1)] = r;
            r = next;
        }
    }
    free(ix->buckets);
    ix->buckets = b;
    ix->nbuckets = n;
    return 0;
}

/* Finds or creates the room called name. */
static struct room *room_get(struct room_index *ix, const char *name)
{
    uint32_t h = room_hash(name, strlen(name));
    struct room *r = room_find(ix, name, h);
    if (!r) {
        if (ix->nrooms >= ix->nbuckets && grow(ix) < 0)
            return NULL;
        r = calloc(1, sizeof(*r));
        if (!r || !(r->name = strdup(name))) {
            free(r);
            return NULL;
        }
        r->hash = h;
        r->next = ix->buckets[h & (ix->nbuckets - 1)];
        ix->buckets[h & (ix->nbuckets - 1)] = r;
        ix->nrooms++;
    }
    return r;
}

struct room *room_join(struct room_index *ix, const char *name, struct room_member *m)
{
    struct room *r = room_get(ix, name);
    if (r && room_add(r, m) < 0) {
        room_leave(ix, r, NULL);
        return NULL;
    }
    return r;
}

struct room *room_join_waiting(struct room_index *ix, const char *name, struct room_member *m)
{
    struct room *r = room_get(ix, name);
    if (!r)
        return NULL;
    if (!r->waiting)
        r->waiting = calloc(1, sizeof(*r->waiting));
    if (!r->waiting || room_add(r->waiting, m) < 0) {
        room_leave_waiting(ix, r, NULL);
        return NULL;
    }
    return r;
}

/* Frees r's waiting list once nobody is in it. */
static void drop_empty_waiting(struct room *r)
{
    if (r->waiting && r->waiting->n == 0) {
        free(r->waiting->members);
        free(r->waiting);
        r->waiting = NULL;
    }
}

int room_admit(struct room *r, struct room_member *m)
{
    if (reserve(r) < 0)
        return -ENOMEM;
    room_remove(r->waiting, m);
    drop_empty_waiting(r);
    return room_add(r, m); /* cannot fail: there is room */
}

void room_leave_waiting(struct room_index *ix, struct room *r, struct room_member *m)
{
    if (m)
        room_remove(r->waiting, m);
    drop_empty_waiting(r);
    room_leave(ix, r, NULL);
}

void room_leave(struct room_index *ix, struct room *r, struct room_member *m)
{
    if (m)
        room_remove(r, m);
    if (r->n > 0 || r->waiting)
        return;
    struct room **pp = &ix->buckets[r->hash & (ix->nbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    ix->nrooms--;
    free(r->members);
    free(r->name);
    free(r);
}

void room_index_free(struct room_index *ix)
{
    for (size_t i = 0; i < ix->nbuckets; i++) {
        struct room *r = ix->buckets[i];
        while (r) {
            struct room *next = r->next;
            if (r->waiting)
                free(r->waiting->members);
            free(r->waiting);
            free(r->members);
            free(r->name);
            free(r);
            r = next;
        }
    }
    free(ix->buckets);
    *ix = (struct room_index){0};
}
