/*
 * move_cmd.h — the console's commands that move live sessions to other
 * servers: MOVE CLIENT, MOVE CLIENTS FROM REGION, MOVE CLIENTS HOME, and
 * DRAIN, which moves every movable session of a region before it closes
 * the rest (move_cmd.c; the move itself is session/move.h).
 *
 * Each asks every worker to move its own sessions in scope, then answers
 * once every move has ended, one row per session: client id, from, to,
 * result (moved, not moved), reason, and how long the client was held.
 */
#ifndef PGNEAR_PROXY_ADMIN_MOVE_CMD_H
#define PGNEAR_PROXY_ADMIN_MOVE_CMD_H

#include <stddef.h>

#include "proxy/admin/command_def.h"

/* MOVE CLIENT and MOVE CLIENTS (one command, by its scope). */
extern const struct admin_command move_clients_command;
extern const struct admin_command drain_command;

/* The rows of moves as the commands answer them (a cutover's answer too), and their columns. */
struct move_result;
void move_rows_result(struct admin_result *res, const struct move_result *rows, size_t nrows);
void move_rows_columns(const struct admin_column **cols, int *ncols);

#endif
