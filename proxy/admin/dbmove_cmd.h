/*
 * dbmove_cmd.h — the console's database move commands: MOVE DATABASE db
 * TO REGION r, ... CUTOVER, ... REVERT, ... FINISH, ... ABORT and SHOW
 * MOVES, each a job of proxy/dbmove run on the admin's worker; its
 * progress comes as NOTICEs.  CUTOVER and REVERT answer a row per session
 * they moved or ended, as MOVE CLIENTS does.
 */
#ifndef PGNEAR_PROXY_ADMIN_DBMOVE_CMD_H
#define PGNEAR_PROXY_ADMIN_DBMOVE_CMD_H

#include "proxy/admin/command_wait.h"

extern const struct admin_column show_moves_cols[12];

/* The columns of a MOVE DATABASE command: CUTOVER's and REVERT's rows, else none. */
void dbmove_columns(const struct admin_cmd *cmd, const struct admin_column **cols, int *ncols);

int dbmove_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);

#endif
