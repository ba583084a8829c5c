/*
 * dbmove_cmd.h — the console's database move commands: MOVE DATABASE db
 * TO REGION r, ... CUTOVER, ... REVERT, ... FINISH, ... ABORT and SHOW
 * MOVES, each a job of proxy/dbmove run on the admin's worker; its
 * progress comes as NOTICEs.  CUTOVER and REVERT answer a row per session
 * they moved or ended, as MOVE CLIENTS does: MOVE DATABASE's columns
 * depend on its action.
 */
#ifndef PGNEAR_PROXY_ADMIN_DBMOVE_CMD_H
#define PGNEAR_PROXY_ADMIN_DBMOVE_CMD_H

#include "proxy/admin/command_def.h"

extern const struct admin_command move_database_command;
extern const struct admin_command show_moves_command;

#endif
