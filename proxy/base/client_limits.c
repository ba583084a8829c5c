/*
 * client_limits.c — the shared counts behind max_user_client_connections
 * and max_db_client_connections.
 */
#include "proxy/base/client_limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int client_limits_init(struct client_limits *cl)
{
    memset(cl, 0, sizeof(*cl));
    return pthread_mutex_init(&cl->lock, NULL) == 0 ? 0 : -1;
}

void client_limits_free(struct client_limits *cl)
{
    free(cl->counts);
    pthread_mutex_destroy(&cl->lock);
    memset(cl, 0, sizeof(*cl));
}

/* Whether c counts name (cut as it was stored). */
static bool count_is(const struct client_count *c, bool is_user, const char *name)
{
    return c->is_user == is_user && strncmp(c->name, name, CLIENT_NAME_MAX - 1) == 0 &&
           strnlen(name, CLIENT_NAME_MAX - 1) == strlen(c->name);
}

/* The count of name, created (at zero) when create says so; NULL when absent or out of memory. */
static struct client_count *count_find(struct client_limits *cl, bool is_user, const char *name,
                                       bool create)
{
    for (size_t i = 0; i < cl->n; i++)
        if (count_is(&cl->counts[i], is_user, name))
            return &cl->counts[i];
    if (!create)
        return NULL;
    if (cl->n == cl->cap) {
        size_t cap = cl->cap > 0 ? cl->cap * 2 : 16;
        struct client_count *grown = realloc(cl->counts, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        cl->counts = grown;
        cl->cap = cap;
    }
    struct client_count *c = &cl->counts[cl->n++];
    c->is_user = is_user;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->clients = 0;
    return c;
}

/* Removes a count at zero (the last one takes its place). */
static void count_drop_if_unused(struct client_limits *cl, struct client_count *c)
{
    if (c->clients <= 0)
        *c = cl->counts[--cl->n];
}

enum client_admit client_limits_enter(struct client_limits *cl, const char *user,
                                      const char *database, int max_user, int max_db, int *now)
{
    enum client_admit rc = CLIENT_ADMITTED;
    pthread_mutex_lock(&cl->lock);
    struct client_count *u = count_find(cl, true, user, true);
    struct client_count *d = u != NULL ? count_find(cl, false, database, true) : NULL;
    if (d == NULL) {
        rc = CLIENT_NO_MEMORY;
    } else if (max_user > 0 && u->clients >= max_user) {
        rc = CLIENT_USER_FULL;
        *now = u->clients;
    } else if (max_db > 0 && d->clients >= max_db) {
        rc = CLIENT_DB_FULL;
        *now = d->clients;
    } else {
        u->clients++;
        d->clients++;
    }
    /* Unused ones go; the database's first, since dropping moves the last entry (maybe u). */
    if (d != NULL)
        count_drop_if_unused(cl, d);
    if (u != NULL && (u = count_find(cl, true, user, false)) != NULL)
        count_drop_if_unused(cl, u);
    pthread_mutex_unlock(&cl->lock);
    return rc;
}

void client_limits_leave(struct client_limits *cl, const char *user, const char *database)
{
    pthread_mutex_lock(&cl->lock);
    struct client_count *c = count_find(cl, false, database, false);
    if (c != NULL) {
        c->clients--;
        count_drop_if_unused(cl, c);
    }
    if ((c = count_find(cl, true, user, false)) != NULL) {
        c->clients--;
        count_drop_if_unused(cl, c);
    }
    pthread_mutex_unlock(&cl->lock);
}

int client_limits_of(struct client_limits *cl, bool is_user, const char *name)
{
    pthread_mutex_lock(&cl->lock);
    const struct client_count *c = count_find(cl, is_user, name, false);
    int n = c != NULL ? c->clients : 0;
    pthread_mutex_unlock(&cl->lock);
    return n;
}

size_t client_limits_copy(struct client_limits *cl, struct client_count *out, size_t cap)
{
    pthread_mutex_lock(&cl->lock);
    size_t n = cl->n < cap ? cl->n : cap;
    if (n > 0) /* counts is NULL until the first session is counted */
        memcpy(out, cl->counts, n * sizeof(*out));
    pthread_mutex_unlock(&cl->lock);
    return n;
}
