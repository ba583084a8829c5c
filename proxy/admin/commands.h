/*
 * commands.h — what the admin console's commands do.  The console
 * (console.c) parses messages, keeps statements and portals and encodes
 * rows; here a command's text becomes a plan, and a plan runs.
 */
#ifndef PGNEAR_PROXY_ADMIN_COMMANDS_H
#define PGNEAR_PROXY_ADMIN_COMMANDS_H

#include <stddef.h>

#include "proxy/admin/grammar.h"
#include "proxy/admin/result.h"

struct session;

/* command_prepare's and command_run's results. */
#define CMD_ERROR   (-1) /* the error is filled */
#define CMD_DONE    0    /* the result is filled */
#define CMD_PENDING 1    /* the command answers later, through console_command_done */
#define CMD_EMPTY   2    /* command_prepare: nothing but blanks and comments */

/* A parsed command, ready to run any number of times (a prepared statement's). */
struct command_plan {
    struct admin_cmd cmd;
};

/*
 * What a running command fills, and where its answer goes once it comes:
 * owned by the console until command_run returns CMD_PENDING, then by the
 * command until it calls console_command_done.
 */
struct console_wait {
    struct session *s; /* NULL once the session has ended: nobody hears the answer */
    bool abandoned;    /* the answer will never come (console_wait_abandon) */
    /*
     * What a CancelRequest for the session does to the command (a PAUSE
     * gives up, a migration aborts), on the session's worker; and what the
     * session's end does to it.  Either may be NULL.
     */
    void (*on_cancel)(void *arg);
    void (*on_session_end)(void *arg);
    void *hook_arg;
    struct admin_result res;
    struct admin_error err;
};

int command_prepare(const char *text, size_t len, struct command_plan *plan,
                    struct admin_error *err);

/* The columns a plan's rows will have (for Describe); ncols 0: no rows. */
void command_columns(const struct command_plan *plan, const struct admin_column **cols, int *ncols);

/* Runs a plan for session s: CMD_DONE, CMD_ERROR or CMD_PENDING. */
int command_run(struct session *s, const struct command_plan *plan, struct console_wait *wait);

#endif
