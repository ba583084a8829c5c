/*
 * pause.h — PAUSE and RESUME (pause.c).
 */
#ifndef PGNEAR_PROXY_ADMIN_PAUSE_H
#define PGNEAR_PROXY_ADMIN_PAUSE_H

#include "proxy/admin/command_def.h"

extern const struct admin_command pause_command;
extern const struct admin_command resume_command;

#endif
