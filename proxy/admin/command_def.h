/*
 * command_def.h — what one admin command is to the console: the columns
 * of its rows and the way it runs.  Each module that answers commands
 * (show.c, pause.c, move_cmd.c, dbmove_cmd.c, migrations.c, commands.c
 * itself) defines one struct admin_command per command next to its code
 * and columns; commands.c's table points at them by enum admin_cmd_kind.
 * The words of a command and its help are the grammar's (grammar_table.c's
 * struct admin_command_def), not these.
 */
#ifndef PGNEAR_PROXY_ADMIN_COMMAND_DEF_H
#define PGNEAR_PROXY_ADMIN_COMMAND_DEF_H

#include "proxy/admin/command_wait.h"
#include "proxy/admin/grammar.h"
#include "proxy/admin/result.h"

struct session;
struct snapshot;

/* How many columns an array has: written beside the array, in the .c that owns it. */
#define ADMIN_NCOLS(cols) ((int)(sizeof(cols) / sizeof((cols)[0])))
/* The columns of an array as result_init takes them. */
#define ADMIN_COLS(cols) (cols), ADMIN_NCOLS(cols)

/* Runs a command: CMD_DONE, CMD_ERROR or CMD_PENDING (command_wait.h). */
typedef int (*admin_run_fn)(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait);
/* Turns a snapshot of the workers into a SHOW's rows. */
typedef void (*snapshot_render_fn)(const struct snapshot *snap, struct admin_result *res);

/*
 * A command either runs (run), or renders a snapshot of every worker
 * (render, with what the snapshot gathers beyond the counters).
 */
struct admin_command {
    const struct admin_column *cols; /* NULL, ncols 0: the command answers no rows */
    int ncols;
    admin_run_fn run;
    snapshot_render_fn render;
    unsigned snapshot; /* SNAPSHOT_* (snapshot.h), for render */
    /* When the columns depend on the command's words (MOVE DATABASE ... CUTOVER): they, not cols.
     */
    void (*columns)(const struct admin_cmd *cmd, const struct admin_column **cols, int *ncols);
};

#endif
