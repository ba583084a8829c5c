/*
 * intern.h — one counted copy of equal byte strings.  The sessions of a
 * worker that keep the same bytes (the SCRAM keys their clients proved,
 * the names and parameters their logins gave) share one copy: a crowd of
 * one application's clients keeps one, not one a client.
 *
 * A table of the copies in use, made with its first copy and freed with
 * its last, so that a worker that keeps none holds nothing.  Not locked:
 * one worker's, its copies read by its own sessions.
 */
#ifndef PGNEAR_PROXY_INTERN_H
#define PGNEAR_PROXY_INTERN_H

#include <stdbool.h>
#include <stddef.h>

struct intern_table;

/*
 * The copy of the len bytes at bytes that *t holds, or a new one, counted
 * for the caller; NULL: out of memory.  A copy is read-only, aligned for
 * any struct of pointers and integers.  wipe: the bytes are a secret,
 * cleansed as the last holder drops them (a new copy's choice).
 */
const void *intern_take(struct intern_table **t, const void *bytes, size_t len, bool wipe);

/* The caller holds the copy no more (NULL: nothing): the last to let go frees it. */
void intern_drop(struct intern_table **t, const void *copy);

/* The copies *t holds (distinct byte strings), and their holders. */
size_t intern_copies(const struct intern_table *t);
size_t intern_holders(const struct intern_table *t);

#endif
