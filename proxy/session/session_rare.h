/*
 * session_rare.h — the fields of a session that few sessions ever set:
 * the admin console's state, an internal session's name, a move under
 * way and where one sent its transactions, its LISTENs, the settings its
 * transactions changed.  An idle crowd's clients set none of them, so
 * they are apart from struct session, behind s->rare: shared zeros, read
 * only, until one is set (session_rare_own), and the session's own part
 * again once all are clear (session_rare_settle).
 *
 * Read them as s->rare->field.  Set one through session_rare_own(&s->rare),
 * which can fail; clear one only where it is set (the part is the
 * session's then), through session_rare_own too: the shared zeros are
 * read-only memory, and a write to them faults at once.
 */
#ifndef PGNEAR_PROXY_SESSION_RARE_H
#define PGNEAR_PROXY_SESSION_RARE_H

#include <stdbool.h>

struct console;
struct notify_client;
struct notify_watch;
struct session_hooks;
struct session_move;
struct txn_settings;

struct session_rare {
    struct console *console; /* the admin console's state (PHASE_ADMIN only) */
    char *peer_label;        /* an internal session's name in logs (its own); NULL: addr names it */
    struct session_move *move; /* a move under way (move.h) */
    /* The move's hooks (holding, closing), set and cleared with move (move.h). */
    const struct session_hooks *moving;
    char *txn_region; /* where a move sent its next transactions (NULL: its own route) */
    struct notify_client *notify;      /* its channels and notifications (notify_hub.c) */
    struct notify_watch *notify_watch; /* its UNLISTENs run on the server (notify_watch.c) */
    struct txn_settings *txn_set;      /* what its settings changed (txn_settings.h) */
};

/* What s->rare points to while the session has no part of its own: all NULL. */
extern const struct session_rare session_rare_none;

/* The session's own part (*rare: s->rare), to write: made now (zeroed) if it has none; NULL when
 * out of memory. */
struct session_rare *session_rare_own(const struct session_rare **rare);

/*
 * Gives the session's own part (*rare: s->rare) back when all its fields
 * are clear (at the end of a callback, session_rest); the owners of what
 * they point to have freed it.  With free_all, as the session is freed:
 * the names too, and the part whatever it holds.
 */
void session_rare_settle(const struct session_rare **rare, bool free_all);

#endif
