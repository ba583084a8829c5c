/*
 * latency_report.h — the workers' latency histograms (proxy/base/latency.h)
 * in a snapshot, summed per region, shown in /metrics as Prometheus
 * histograms and in SHOW STATS as counts with p50 and p99.
 */
#ifndef PGNEAR_PROXY_ADMIN_LATENCY_REPORT_H
#define PGNEAR_PROXY_ADMIN_LATENCY_REPORT_H

#include <stddef.h>

struct admin_result;
struct evbuffer;
struct latency_row;
struct snapshot;

/* The parts' rows summed per region, by region name; NULL with *n 0 when none (or no memory). */
struct latency_row *latency_sum(const struct snapshot *snap, size_t *n);

/* pgnear_<kind>_seconds{region=...}: _bucket (cumulative), _sum, _count. */
void latency_put_metrics(struct evbuffer *out, const struct snapshot *snap);

/*
 * SHOW STATS's rows for the histograms, after the counters': a row per
 * kind and region, its count as the value, then p50_ms and p99_ms.
 */
void latency_stats_rows(struct admin_result *res, const struct snapshot *snap);

#endif
