/*
 * console_rows.h — a result's columns and rows as RowDescription and
 * DataRow messages, each value in the format its column was asked in.
 */
#ifndef PGNEAR_PROXY_ADMIN_CONSOLE_ROWS_H
#define PGNEAR_PROXY_ADMIN_CONSOLE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/admin/result.h"

struct session;

/* Queues RowDescription; formats NULL: all text (Describe of a statement). <0: session closed. */
int console_rows_describe(struct session *s, const struct admin_column *cols, int ncols,
                          const int16_t *formats);

/* Queues one DataRow of r. <0: session closed. */
int console_rows_send_row(struct session *s, const struct admin_result *r, size_t row,
                          const int16_t *formats);

#endif
