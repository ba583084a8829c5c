/*
 * commands.h — what the admin console's commands do.  The console
 * (console.c) parses messages, keeps statements and portals and encodes
 * rows; here a command's text becomes a plan, and a plan runs.
 */
#ifndef PGNEAR_PROXY_ADMIN_COMMANDS_H
#define PGNEAR_PROXY_ADMIN_COMMANDS_H

#include <stddef.h>

#include "proxy/admin/command_def.h"
#include "proxy/admin/command_wait.h"
#include "proxy/admin/grammar.h"
#include "proxy/admin/result.h"

struct session;

/* A parsed command, ready to run any number of times (a prepared statement's). */
struct command_plan {
    struct admin_cmd cmd;
};

/* What a kind of command is: one for every kind the grammar knows (its unit test checks). */
const struct admin_command *command_find(enum admin_cmd_kind kind);

int command_prepare(const char *text, size_t len, struct command_plan *plan, struct pg_error *err);

/* The columns a plan's rows will have (for Describe); ncols 0: no rows. */
void command_columns(const struct command_plan *plan, const struct admin_column **cols, int *ncols);

/*
 * Runs a plan for session s: CMD_DONE, CMD_ERROR or CMD_PENDING (the
 * answer comes later, through wait->answer).
 */
int command_run(struct session *s, const struct command_plan *plan, struct console_wait *wait);

#endif
