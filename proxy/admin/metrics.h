/*
 * metrics.h — Prometheus metrics over HTTP (metrics_addr).
 */
#ifndef PGNEAR_PROXY_ADMIN_METRICS_H
#define PGNEAR_PROXY_ADMIN_METRICS_H

#include <stddef.h>

struct worker;
struct metrics_server;

/* Serves GET /metrics on w's loop; NULL (and err) when addr is bad or cannot be bound. */
struct metrics_server *metrics_start(struct worker *w, const char *addr, char *err, size_t errcap);
void metrics_stop(struct metrics_server *ms);

#endif
