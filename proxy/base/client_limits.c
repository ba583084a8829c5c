/*
 * client_limits.c — the shared counts behind max_user_client_connections
 * and max_db_client_connections.
 */
#include "proxy/base/client_limits.h"

#include <stddef.h>
#include <string.h>

/* count_table keys an entry by the array at its start. */
_Static_assert(offsetof(struct client_count, name) == 0, "a client_count starts with its name");

/* Empty counts; -1 when the mutex cannot be made. */
int client_limits_init(struct client_limits *cl)
{
    memset(cl, 0, sizeof(*cl));
    count_table_init(&cl->users, sizeof(struct client_count), CLIENT_NAME_MAX);
    count_table_init(&cl->databases, sizeof(struct client_count), CLIENT_NAME_MAX);
    return pthread_mutex_init(&cl->lock, NULL) == 0 ? 0 : -1;
}

/* Frees the counts and the mutex; cl may be initialised again. */
void client_limits_free(struct client_limits *cl)
{
    count_table_free(&cl->users);
    count_table_free(&cl->databases);
    pthread_mutex_destroy(&cl->lock);
    memset(cl, 0, sizeof(*cl));
}

/* The users' counts (is_user) or the databases'. */
static struct count_table *counts_of(struct client_limits *cl, bool is_user)
{
    return is_user ? &cl->users : &cl->databases;
}

/* The count of name, created (at zero) when create says so; NULL when absent or out of memory. */
static struct client_count *count_find(struct client_limits *cl, bool is_user, const char *name,
                                       bool create)
{
    struct client_count *c = count_table_find(counts_of(cl, is_user), name, create);
    if (c != NULL)
        c->is_user = is_user;
    return c;
}

/* Removes a count at zero (the last one of its table takes its place). */
static void count_drop_if_unused(struct client_limits *cl, struct client_count *c)
{
    if (c->clients <= 0)
        count_table_drop(counts_of(cl, c->is_user), c);
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
    /* Unused ones go (each in its own table: dropping d moves no user's count). */
    if (d != NULL)
        count_drop_if_unused(cl, d);
    if (u != NULL)
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

/* Appends up to cap - *n entries of t to out at *n. */
static void counts_copy(const struct count_table *t, struct client_count *out, size_t cap,
                        size_t *n)
{
    size_t take = t->n < cap - *n ? t->n : cap - *n;
    if (take > 0) /* items is NULL until the first session is counted */
        memcpy(out + *n, t->items, take * sizeof(*out));
    *n += take;
}

size_t client_limits_copy(struct client_limits *cl, struct client_count *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&cl->lock);
    counts_copy(&cl->users, out, cap, &n);
    counts_copy(&cl->databases, out, cap, &n);
    pthread_mutex_unlock(&cl->lock);
    return n;
}
