/* room.c: a keyed map of rooms (hmap.h), each an array of members. */
#include "room/room.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t room_hash(const char *name, size_t len)
{
    /* Keyed: room names are chosen by clients (hmap.h). */
    return hmap_hash(name, len);
}

static bool same_name(const struct hmap_node *n, const void *name)
{
    return strcmp(hmap_entry(n, struct room, hn)->name, name) == 0;
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
    m->index = r->n;
    r->members[r->n++] = m;
    return 0;
}

void room_remove(struct room *r, struct room_member *m)
{
    uint32_t index = m->index;
    struct room_member *last = r->members[--r->n];
    r->members[index] = last;
    last->index = index;
}

struct room *room_find(const struct room_index *ix, const char *name, uint32_t hash)
{
    struct hmap_node **l = hmap_find(&ix->map, hash, same_name, name);
    return l ? hmap_entry(*l, struct room, hn) : NULL;
}

/* Finds or creates the room called name. */
static struct room *room_get(struct room_index *ix, const char *name)
{
    uint32_t h = room_hash(name, strlen(name));
    struct room *r = room_find(ix, name, h);
    if (!r) {
        if (!hmap_ready(&ix->map) && hmap_init(&ix->map, 16) < 0)
            return NULL;
        r = calloc(1, sizeof(*r));
        if (!r || !(r->name = strdup(name))) {
            free(r);
            return NULL;
        }
        hmap_insert(&ix->map, &r->hn, h);
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
    hmap_unlink(&ix->map, hmap_link_of(&ix->map, &r->hn));
    free(r->members);
    free(r->name);
    free(r);
}

void room_index_free(struct room_index *ix)
{
    struct hmap_iter it;
    hmap_each(x, &it, &ix->map) {
        struct room *r = hmap_entry(x, struct room, hn);
        hmap_iter_unlink(&it);
        if (r->waiting)
            free(r->waiting->members);
        free(r->waiting);
        free(r->members);
        free(r->name);
        free(r);
    }
    hmap_free(&ix->map);
}
