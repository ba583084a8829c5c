/*
 * pause.h — PAUSE and RESUME (pause.c).
 */
#ifndef PGNEAR_PROXY_ADMIN_PAUSE_H
#define PGNEAR_PROXY_ADMIN_PAUSE_H

#include "proxy/admin/command_wait.h"

int pause_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);
int resume_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);

#endif
