/*
 * latency_report.c — the latency histograms shown (latency_report.h).
 */
#include "proxy/admin/latency_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/admin/prom_text.h"
#include "proxy/admin/result.h"
#include "proxy/admin/snapshot.h"

static int row_by_region(const void *a, const void *b)
{
    return strcmp(((const struct latency_row *)a)->region, ((const struct latency_row *)b)->region);
}

/* The summed row of a region, added when new; NULL when out of memory. */
static struct latency_row *sum_row(struct latency_row **rows, size_t *n, size_t *cap,
                                   const char *region)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*rows)[i].region, region) == 0)
            return &(*rows)[i];
    if (*n == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 4;
        struct latency_row *grown = realloc(*rows, grown_cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        *rows = grown;
        *cap = grown_cap;
    }
    struct latency_row *row = &(*rows)[(*n)++];
    memset(row, 0, sizeof(*row));
    snprintf(row->region, sizeof(row->region), "%s", region);
    return row;
}

struct latency_row *latency_sum(const struct snapshot *snap, size_t *n)
{
    struct latency_row *rows = NULL;
    size_t cap = 0;
    *n = 0;
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nlatency; j++) {
            const struct latency_row *from = &snap->parts[i].latency[j];
            struct latency_row *to = sum_row(&rows, n, &cap, from->region);
            if (to == NULL) {
                free(rows);
                *n = 0;
                return NULL;
            }
            for (int k = 0; k < LATENCY_KINDS; k++)
                latency_merge(&to->hist[k], &from->hist[k]);
        }
    if (*n > 1)
        qsort(rows, *n, sizeof(*rows), row_by_region);
    return rows;
}

static const char *const kind_help[LATENCY_KINDS] = {
    [LATENCY_TRANSACTION] = "Transactions, from the first request sent to the server to the "
                            "ReadyForQuery that left it idle (a statement outside a transaction "
                            "is one), by the region of the server.",
    [LATENCY_QUERY] = "Requests (a simple Query, an extended-protocol batch to its Sync, a "
                      "FunctionCall), from being sent to the server to its ReadyForQuery, by "
                      "region.",
    [LATENCY_WAIT] = "Waits for a server connection, from asking (a login, or a transaction under "
                     "pool_mode = transaction) to having one: a kept connection, a new one "
                     "logged in, or one given back to a full pool; by region.",
    [LATENCY_LOGIN] = "Logins, from the client's connection accepted to its ReadyForQuery, by "
                      "region.",
};

/* One region's histogram: cumulative buckets up to +Inf, then _sum and _count. */
static void put_hist(struct evbuffer *out, const char *name, const char *region,
                     const struct latency_hist *h)
{
    uint64_t coarse[LATENCY_COARSE], cumulative = 0;
    latency_coarse_counts(h, coarse);
    for (int i = 0; i < LATENCY_COARSE; i++) {
        cumulative += coarse[i];
        evbuffer_add_printf(out, "pgnear_%s_seconds_bucket{region=\"", name);
        prom_put_label_value(out, region);
        if (i < LATENCY_COARSE - 1)
            evbuffer_add_printf(out, "\",le=\"%g\"} %llu\n", latency_coarse_le_us[i] / 1e6,
                                (unsigned long long)cumulative);
        else
            evbuffer_add_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "pgnear_%s_seconds_sum{region=\"", name);
    prom_put_label_value(out, region);
    evbuffer_add_printf(out, "\"} %.6f\n", (double)h->sum_us / 1e6);
    evbuffer_add_printf(out, "pgnear_%s_seconds_count{region=\"", name);
    prom_put_label_value(out, region);
    evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)h->count);
}

void latency_put_metrics(struct evbuffer *out, const struct snapshot *snap)
{
    size_t n;
    struct latency_row *rows = latency_sum(snap, &n);
    for (int k = 0; k < LATENCY_KINDS; k++) {
        const char *name = latency_kind_name((enum latency_kind)k);
        evbuffer_add_printf(out,
                            "# HELP pgnear_%s_seconds %s\n# TYPE pgnear_%s_seconds histogram\n",
                            name, kind_help[k], name);
        for (size_t i = 0; i < n; i++)
            put_hist(out, name, rows[i].region, &rows[i].hist[k]);
    }
    free(rows);
}

/* A quantile in milliseconds, NULL when nothing was counted. */
static void put_quantile_ms(struct admin_result *res, const struct latency_hist *h, double q)
{
    double us = latency_quantile_us(h, q);
    if (us < 0)
        result_null(res);
    else
        result_numeric(res, us / 1000.0);
}

void latency_stats_rows(struct admin_result *res, const struct snapshot *snap)
{
    size_t n;
    struct latency_row *rows = latency_sum(snap, &n);
    for (int k = 0; k < LATENCY_KINDS; k++)
        for (size_t i = 0; i < n; i++) {
            result_textf(res, "%s{region=\"%s\"}", latency_kind_name((enum latency_kind)k),
                         rows[i].region);
            result_int(res, (int64_t)rows[i].hist[k].count);
            result_text(res, kind_help[k]);
            put_quantile_ms(res, &rows[i].hist[k], 0.5);
            put_quantile_ms(res, &rows[i].hist[k], 0.99);
        }
    free(rows);
}
