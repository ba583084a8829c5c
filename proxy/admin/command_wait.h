/*
 * command_wait.h — a running admin command's wait: what the command
 * fills, and the way its answer goes back to the console.
 *
 * The console (console.c) makes the wait and sets its answer, notice and
 * abandon; the commands (commands.c, show.c, pause.c, migrations.c) fill
 * it and call through it, so that they never name the console that runs
 * them.
 */
#ifndef PGNEAR_PROXY_ADMIN_COMMAND_WAIT_H
#define PGNEAR_PROXY_ADMIN_COMMAND_WAIT_H

#include <stdbool.h>

#include "proxy/admin/grammar.h"
#include "proxy/admin/result.h"

struct session;

/* What a command's handler returns (command_prepare's too). */
#define CMD_ERROR   (-1) /* the error is filled */
#define CMD_DONE    0    /* the result is filled */
#define CMD_PENDING 1    /* the command answers later, through wait->answer */
#define CMD_EMPTY   2    /* command_prepare: nothing but blanks and comments */

/*
 * What a running command fills, and where its answer goes once it comes:
 * owned by the console until command_run returns CMD_PENDING, then by the
 * command until it calls answer (or abandon).
 */
struct console_wait {
    struct session *s; /* NULL once the session has ended: nobody hears the answer */
    bool abandoned;    /* the answer will never come (abandon) */
    /*
     * A command that answers later reports through answer, on the
     * session's thread: rc CMD_DONE when res is filled, CMD_ERROR when err
     * is.  The session may have ended meanwhile: then it only frees the
     * wait.
     */
    void (*answer)(struct console_wait *wait, int rc);
    /* A NOTICE sent at once to the session (progress); nothing when it has ended. */
    void (*notice)(struct console_wait *wait, const char *text);
    /*
     * The answer cannot come back (the session's worker ended before it
     * could be told): frees the wait now, or lets the session's end free
     * it.  Only while no loop runs that session (shutdown).
     */
    void (*abandon)(struct console_wait *wait);
    /*
     * What a CancelRequest for the session does to the command (a PAUSE
     * gives up, a migration aborts), on the session's worker; and what the
     * session's end does to it.  Either may be NULL.
     */
    void (*on_cancel)(void *arg);
    void (*on_session_end)(void *arg);
    void *hook_arg;
    struct admin_result res;
    struct pg_error err;
};

/* The error of a command that ran out of memory (SQLSTATE 53200). */
static inline void admin_error_oom(struct pg_error *err)
{
    pg_error_set(err, "53200", "out of memory");
}

#endif
