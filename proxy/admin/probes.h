/*
 * probes.h — GET /healthz and GET /readyz on metrics_addr (probes.c): the
 * liveness and readiness an orchestrator probes, as small JSON documents.
 */
#ifndef PGNEAR_PROXY_ADMIN_PROBES_H
#define PGNEAR_PROXY_ADMIN_PROBES_H

struct evhttp_request;
struct worker;

/* How long a probe waits for every event loop before it answers 503 "stuck". */
#define PROBE_ANSWER_MS 2000

/*
 * Liveness: 200 once every worker's loop has answered (a snapshot taken
 * through each, snapshot.h); 503 when one has not within PROBE_ANSWER_MS.
 * w is the worker whose loop serves metrics_addr.
 */
void probes_healthz(struct evhttp_request *req, struct worker *w);

/*
 * Readiness: 200 while pgnear takes sessions (not stopping) and some
 * region that takes sessions and is not paused has a host up by its
 * health checks; else 503 with the reason.  Through every loop as well.
 */
void probes_readyz(struct evhttp_request *req, struct worker *w);

#endif
