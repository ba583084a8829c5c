/*
 * param_set.c — a connection's ParameterStatus values (param_set.h).
 */
#include "protocol/param_set.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/pkt.h"

/* The entry at offset off: its name, its value, and where the next one starts. */
static size_t entry_next(const struct param_set *ps, size_t off, const char **name,
                         const char **value)
{
    *name = ps->data + off;
    *value = *name + strlen(*name) + 1;
    return (size_t)(*value - ps->data) + strlen(*value) + 1;
}

/* Removes the entry at off (of length len), closing the gap. */
static void entry_remove(struct param_set *ps, size_t off, size_t len)
{
    memmove(ps->data + off, ps->data + off + len, ps->used - off - len);
    ps->used = (uint16_t)(ps->used - len);
    ps->count--;
}

/* The set refuses more: marked overflowed, so the caller can tell a dropped value from none. */
static int set_full(struct param_set *ps)
{
    ps->overflowed = true;
    return PARAM_SET_FULL;
}

/* The bytes the set may hold: its own limit, else PARAM_SET_MAX_BYTES. */
static size_t param_set_limit(const struct param_set *ps)
{
    return ps->limit > 0 ? ps->limit : PARAM_SET_MAX_BYTES;
}

/* Room for need bytes: the buffer doubles from 256 up to the set's limit. */
static int param_set_reserve(struct param_set *ps, size_t need)
{
    if (need <= ps->cap)
        return 0;
    size_t cap = ps->cap > 0 ? ps->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > param_set_limit(ps))
        cap = param_set_limit(ps);
    char *p = realloc(ps->data, cap);
    if (p == NULL)
        return -1;
    ps->data = p;
    ps->cap = (uint16_t)cap;
    return 0;
}

/* A lent set's values copied to its own allocation, to be changed; -1: out of memory. */
static int param_set_own(struct param_set *ps)
{
    if (!ps->lent)
        return 0;
    char *own = malloc(ps->used > 0 ? ps->used : 1);
    if (own == NULL)
        return -1;
    memcpy(own, ps->data, ps->used);
    ps->data = own;
    ps->cap = ps->used;
    ps->lent = false;
    return 0;
}

int param_set_put(struct param_set *ps, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    if (nlen == 0)
        return PARAM_SET_BAD;
    if (param_set_own(ps) != 0)
        return set_full(ps);
    for (size_t off = 0; off < ps->used;) {
        const char *n, *v;
        size_t next = entry_next(ps, off, &n, &v);
        if (strcmp(n, name) == 0) {
            entry_remove(ps, off, next - off);
            break;
        }
        off = next;
    }
    if (ps->count == PARAM_SET_MAX || nlen + vlen + 2 > param_set_limit(ps) - ps->used ||
        param_set_reserve(ps, ps->used + nlen + vlen + 2) != 0)
        return set_full(ps);
    memcpy(ps->data + ps->used, name, nlen + 1);
    memcpy(ps->data + ps->used + nlen + 1, value, vlen + 1);
    ps->used = (uint16_t)(ps->used + nlen + vlen + 2);
    ps->count++;
    return PARAM_SET_OK;
}

int param_set_note(struct param_set *ps, const uint8_t *body, size_t len)
{
    const uint8_t *end_name = memchr(body, '\0', len);
    if (end_name == NULL)
        return PARAM_SET_BAD;
    size_t rest = len - (size_t)(end_name - body) - 1;
    const uint8_t *value = end_name + 1;
    const uint8_t *end_value = rest > 0 ? memchr(value, '\0', rest) : NULL;
    if (end_value == NULL || end_value != body + len - 1)
        return PARAM_SET_BAD;
    return param_set_put(ps, (const char *)body, (const char *)value);
}

const char *param_set_get(const struct param_set *ps, const char *name)
{
    for (size_t off = 0; off < ps->used;) {
        const char *n, *v;
        off = entry_next(ps, off, &n, &v);
        if (strcmp(n, name) == 0)
            return v;
    }
    return NULL;
}

void param_set_write(const struct param_set *ps, struct pktbuf *pb)
{
    param_set_write_merged(ps, NULL, pb);
}

void param_set_write_merged(const struct param_set *base, const struct param_set *over,
                            struct pktbuf *pb)
{
    const char *n, *v;
    for (size_t off = 0; param_set_next(base, &off, &n, &v);) {
        const char *newer = over != NULL ? param_set_get(over, n) : NULL;
        pkt_put_parameter_status(pb, n, newer != NULL ? newer : v);
    }
    for (size_t off = 0; over != NULL && param_set_next(over, &off, &n, &v);)
        if (param_set_get(base, n) == NULL)
            pkt_put_parameter_status(pb, n, v);
}

bool param_set_next(const struct param_set *ps, size_t *off, const char **name, const char **value)
{
    if (*off >= ps->used)
        return false;
    *off = entry_next(ps, *off, name, value);
    return true;
}

int param_set_copy(struct param_set *dst, const struct param_set *src)
{
    const char *name, *value;
    for (size_t off = 0; param_set_next(src, &off, &name, &value);)
        if (param_set_put(dst, name, value) != PARAM_SET_OK)
            return set_full(dst);
    return PARAM_SET_OK;
}

void param_set_shrink(struct param_set *ps)
{
    if (ps->data == NULL || ps->lent || ps->used == ps->cap)
        return;
    if (ps->used == 0) {
        free(ps->data);
        ps->data = NULL;
        ps->cap = 0;
        return;
    }
    char *p = realloc(ps->data, ps->used);
    if (p != NULL) {
        ps->data = p;
        ps->cap = ps->used;
    }
}

void param_set_lend(struct param_set *ps, const char *data)
{
    if (!ps->lent)
        free(ps->data);
    ps->data = (char *)data;
    ps->cap = ps->used;
    ps->lent = true;
}

void param_set_free(struct param_set *ps)
{
    if (!ps->lent)
        free(ps->data);
    memset(ps, 0, sizeof(*ps));
}
