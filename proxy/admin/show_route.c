/*
 * show_route.c — SHOW ROUTE: the plan a session with the evidence given (a
 * city, a region, a location or an address) would get, explained by
 * routing (routing/explain.h) region by region, and the regions passed
 * over, without connecting anywhere; answered at once by the admin's own
 * worker.
 */
#include "proxy/admin/show.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/admin/snapshot.h"
#include "proxy/base/config.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"
#include "routing/explain.h"
#include "routing/region.h"
#include "routing/registry.h"

/* ---- SHOW ROUTE ---- */

static const struct admin_column show_route_cols[] = {{"rank", ADMIN_INT8, 0},
                                                      {"region", ADMIN_TEXT, 0},
                                                      {"distance_km", ADMIN_NUMERIC, 0},
                                                      {"up", ADMIN_BOOL, 0},
                                                      {"state", ADMIN_TEXT, 0},
                                                      {"source", ADMIN_TEXT, 0},
                                                      {"reason", ADMIN_TEXT, 0},
                                                      {"needing", ADMIN_TEXT, 0},
                                                      {"fit", ADMIN_TEXT, 0},
                                                      {"route_by", ADMIN_TEXT, 0},
                                                      {"measured_ms", ADMIN_NUMERIC, 3},
                                                      {"score_ms", ADMIN_NUMERIC, 1},
                                                      {"candidate", ADMIN_BOOL, 0},
                                                      {"preferred", ADMIN_BOOL, 0},
                                                      {"why", ADMIN_TEXT, 0}};

/* How a region of the plan serves the need, in SHOW ROUTE's words. */
static const char *route_fit_name(enum need_fit fit)
{
    switch (fit) {
    case NEED_FIT_GOOD:
        return "fits";
    case NEED_FIT_FALLBACK:
        return "fallback";
    case NEED_FIT_LAST:
        return "down: tried last";
    default:
        return "passed over";
    }
}

/*
 * SHOW ROUTE's columns of measurement (rtt.h): route_by, pgnear's round
 * trip to r (NULL while cold), its score, whether a candidate, whether
 * the caller's group prefers it (the last three NULL by distance), why.
 */
static void route_order_cells(struct admin_result *res, const struct routing_data *rd,
                              const struct route_explanation *e, const struct region *r,
                              size_t rank)
{
    const struct route_score *sc = route_explain_score(rd, e, r);
    result_text(res, route_by_name(e->by));
    if (sc != NULL && sc->rtt_ms >= 0)
        result_numeric(res, sc->rtt_ms);
    else
        result_null(res);
    if (sc != NULL && sc->score_ms >= 0)
        result_numeric(res, sc->score_ms);
    else
        result_null(res);
    if (sc != NULL) {
        result_bool(res, sc->candidate);
        result_bool(res, route_explain_preferred(e, r));
    } else {
        result_null(res);
        result_null(res);
    }
    char why[400];
    result_text(res, route_explain_order(rd, e, r, rank, why, sizeof(why)));
}

/* One row of SHOW ROUTE for need: rank 0 (NULL) and km < 0 (NULL) for a region passed over. */
static void route_region_row(struct admin_result *res, const struct routing_data *rd,
                             const struct route_explanation *e, const struct need_spec *need,
                             const struct region *r, size_t rank, double km, const char *fit)
{
    if (rank > 0)
        result_int(res, (int64_t)rank);
    else
        result_null(res);
    result_text(res, r->name);
    if (km >= 0)
        result_numeric(res, km);
    else
        result_null(res);
    result_bool(res, region_is_up(r));
    result_text(res, snapshot_admin_state_name((int)registry_admin_state(r->runtime)));
    result_textf(res, "%s (%s)", e->source, e->loc.via);
    result_text(res, e->reason);
    result_text(res, need_name(need->role));
    result_text(res, fit);
    route_order_cells(res, rd, e, r, rank);
}

/* The regions need passes over, after its plan: no rank, and why in fit. */
static void route_passed_over_rows(const struct routing_data *rd, const struct route_explanation *e,
                                   const struct need_spec *need, struct admin_result *res)
{
    for (size_t i = 0; i < rd->regions->count; i++) {
        const struct region *r = &rd->regions->items[i];
        char why[160], fit[200];
        if (!registry_takes_sessions(r->runtime) || need_region_fit(r, need) != NEED_FIT_NONE)
            continue;
        snprintf(fit, sizeof(fit), "passed over: %s",
                 need_region_shortfall(r, need, why, sizeof(why)));
        route_region_row(res, rd, e, need, r, 0, -1, fit);
    }
}

/* A leg's rows: its plan, ranked, then the regions it passes over. */
static void route_leg_rows(const struct routing_data *rd, const struct route_explanation *e,
                           const struct need_spec *need, struct region *const *plan,
                           const double *km, size_t n, struct admin_result *res)
{
    for (size_t i = 0; i < n; i++)
        route_region_row(res, rd, e, need, plan[i], i + 1, km[i],
                         route_fit_name(need_region_fit(plan[i], need)));
    route_passed_over_rows(rd, e, need, res);
}

/* The evidence as a session would give it; false (and the error set) when it cannot be. */
static bool route_input(const struct admin_cmd *cmd, struct locality_input *in,
                        struct sockaddr_storage *addr, struct pg_error *err)
{
    memset(in, 0, sizeof(*in));
    switch (cmd->route_target) {
    case ADMIN_ROUTE_CITY:
        in->city = cmd->value, in->city_via = "SHOW ROUTE";
        return true;
    case ADMIN_ROUTE_REGION:
        in->region = cmd->value, in->region_via = "SHOW ROUTE";
        return true;
    case ADMIN_ROUTE_LOCATION:
        in->location = cmd->value, in->location_via = "SHOW ROUTE";
        return true;
    default:
        if (!route_parse_address(cmd->value, addr)) {
            pg_error_set(err, "22P02", "invalid IP address: \"%s\"", cmd->value);
            return false;
        }
        in->addr = (const struct sockaddr *)addr;
        return true;
    }
}

/*
 * SHOW ROUTE: where a session with this evidence would go, and the regions
 * passed over, without connecting anywhere.
 */
static int show_route(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct locality_input in;
    struct sockaddr_storage addr;
    if (!route_input(cmd, &in, &addr, &wait->err))
        return CMD_ERROR;
    struct route_explanation *e = malloc(sizeof(*e));
    if (e == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    int role = cmd->need >= 0 ? cmd->need : s->w->cfg->target_session_attrs;
    struct need_spec need = {.role = (enum session_need)role};
    route_explain(&s->w->cfg->routing, &in, &need, true, e);
    struct admin_result *res = &wait->res;
    result_init(res, ADMIN_COLS(show_route_cols));
    route_leg_rows(&s->w->cfg->routing, e, &e->need, e->plan, e->km, e->n, res);
    /* nearest: then where its writes go, as NEEDING read-write would rank them. */
    if (e->need.role == NEED_NEAREST)
        route_leg_rows(&s->w->cfg->routing, e, &e->write_need, e->writes, e->writes_km, e->nwrites,
                       res);
    for (int i = 0; i < e->nnotes; i++)
        result_notice(res, "%s", e->notes[i]);
    result_set_tag(res, "SHOW");
    free(e);
    return CMD_DONE;
}

const struct admin_command show_route_command = {
    .cols = show_route_cols,
    .ncols = ADMIN_NCOLS(show_route_cols),
    .run = show_route,
};
