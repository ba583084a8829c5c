/*
 * show_rtt.c — SHOW RTT: each host's round trips as routing measures
 * them (routing/rtt.h), beside them the region that callers nearest the
 * host's region try first (routing/route_rtt.h), and how many logins of
 * one pool to the host may overlap (health_logins_at_once) over the wire's
 * part of a check (rtt_floor_ms), rendered from
 * worker 0's part of a snapshot, as SHOW REGIONS is.
 */
#include "proxy/admin/show.h"
#include "proxy/admin/snapshot.h"
#include "routing/rtt.h"

static const struct admin_column show_rtt_cols[] = {{"region", ADMIN_TEXT, 0},
                                                    {"host", ADMIN_TEXT, 0},
                                                    {"port", ADMIN_INT8, 0},
                                                    {"last_ms", ADMIN_NUMERIC, 3},
                                                    {"avg_ms", ADMIN_NUMERIC, 3},
                                                    {"samples", ADMIN_INT8, 0},
                                                    {"state", ADMIN_TEXT, 0},
                                                    {"preferred", ADMIN_TEXT, 0},
                                                    {"preferred_since", ADMIN_TIMESTAMPTZ, 0},
                                                    {"wire_ms", ADMIN_NUMERIC, 3},
                                                    {"logins_at_once", ADMIN_INT8, 0}};

/* cold until the estimate is used, slow while marked, else ok. */
static const char *rtt_state_name(const struct host_row *h)
{
    if (h->rtt_samples < RTT_MIN_SAMPLES)
        return "cold";
    return h->rtt_slow ? "slow" : "ok";
}

/* One host: what its checks measured; its region's group's preferred region. */
static void rtt_row(struct admin_result *res, const struct host_row *h)
{
    result_text(res, h->region);
    result_text(res, h->host);
    result_int(res, h->port);
    if (h->rtt_samples > 0)
        result_numeric(res, h->rtt_last_ms);
    else
        result_null(res);
    if (h->rtt_avg_ms >= 0)
        result_numeric(res, h->rtt_avg_ms);
    else
        result_null(res); /* cold: routing uses the distance prior instead */
    result_int(res, (int64_t)h->rtt_samples);
    result_text(res, rtt_state_name(h));
    if (h->preferred[0] != '\0') {
        result_text(res, h->preferred);
        result_time_us(res, h->preferred_since_us);
    } else {
        result_null(res);
        result_null(res);
    }
    if (h->rtt_wire_ms >= 0)
        result_numeric(res, h->rtt_wire_ms);
    else
        result_null(res);
    result_int(res, h->logins_at_once);
}

static void render_rtt(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, ADMIN_COLS(show_rtt_cols));
    const struct snapshot_part *p0 = &snap->parts[0];
    for (size_t i = 0; i < p0->nhosts; i++)
        rtt_row(res, &p0->hosts[i]);
}

const struct admin_command show_rtt_command = {
    .cols = show_rtt_cols,
    .ncols = ADMIN_NCOLS(show_rtt_cols),
    .render = render_rtt,
    .snapshot = SNAPSHOT_HOSTS,
};
