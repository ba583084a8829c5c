/*
 * daemon.h — the process: its event-loop workers (threads), signals, and
 * the wiring of the rooms below it.  main.c's alone: what workers share is
 * in runtime/shared.h, reloads in runtime/reload.h.
 */
#ifndef PGNEAR_PROXY_DAEMON_H
#define PGNEAR_PROXY_DAEMON_H

#include <stdbool.h>

struct config;

/* Runs the proxy until it is stopped; takes over cfg.  Returns the exit code. */
int daemon_run(struct config *cfg, int log_level, bool background);

#endif
