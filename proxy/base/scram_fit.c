/*
 * scram_fit.c — the SCRAM key's fit per user and region (scram_fit.h).
 */
#include "proxy/base/scram_fit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int scram_fits_init(struct scram_fits *t)
{
    pthread_mutex_init(&t->lock, NULL);
    t->items = calloc(SCRAM_FIT_MAX, sizeof(*t->items));
    return t->items != NULL ? 0 : -1;
}

/* Frees the entries and the mutex. */
void scram_fits_destroy(struct scram_fits *t)
{
    free(t->items);
    t->items = NULL;
    pthread_mutex_destroy(&t->lock);
}

/* The pair's entry, or a free one, or the oldest (forgotten); under the lock. */
static struct scram_fit *scram_fits_slot(struct scram_fits *t, const char *user, const char *region)
{
    struct scram_fit *free_slot = NULL, *oldest = &t->items[0];
    for (size_t i = 0; i < SCRAM_FIT_MAX; i++) {
        struct scram_fit *e = &t->items[i];
        if (e->user[0] == '\0') {
            if (free_slot == NULL)
                free_slot = e;
            continue;
        }
        if (strcmp(e->user, user) == 0 && strcmp(e->region, region) == 0)
            return e;
        if (e->at < oldest->at)
            oldest = e;
    }
    struct scram_fit *e = free_slot != NULL ? free_slot : oldest;
    memset(e, 0, sizeof(*e));
    e->fits = true; /* unknown until now: a change to "not" is news */
    snprintf(e->user, sizeof(e->user), "%s", user);
    snprintf(e->region, sizeof(e->region), "%s", region);
    return e;
}

bool scram_fits_note(struct scram_fits *t, const char *user, const char *region, bool fits,
                     const char *why, int64_t now)
{
    if (t->items == NULL || user == NULL || user[0] == '\0')
        return false;
    pthread_mutex_lock(&t->lock);
    struct scram_fit *e = scram_fits_slot(t, user, region);
    bool news = e->fits && !fits;
    e->fits = fits;
    e->at = now;
    e->logins++;
    if (!fits)
        snprintf(e->last_error, sizeof(e->last_error), "%s", why != NULL ? why : "");
    else
        e->last_error[0] = '\0';
    pthread_mutex_unlock(&t->lock);
    return news;
}

/* SHOW USERS' order: by user, then region. */
static int scram_fit_order(const void *a, const void *b)
{
    const struct scram_fit *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    return c != 0 ? c : strcmp(x->region, y->region);
}

size_t scram_fits_copy(struct scram_fits *t, struct scram_fit *out, size_t cap)
{
    size_t n = 0;
    if (t->items == NULL)
        return 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < SCRAM_FIT_MAX && n < cap; i++)
        if (t->items[i].user[0] != '\0')
            out[n++] = t->items[i];
    pthread_mutex_unlock(&t->lock);
    qsort(out, n, sizeof(*out), scram_fit_order);
    return n;
}
