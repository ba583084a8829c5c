/*
 * explain.c — a routing decision and why (explain.h).
 */
#include "routing/explain.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void explain_note(struct route_explanation *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A note for SHOW ROUTE; past EXPLAIN_MAX_NOTES they are dropped. */
static void explain_note(struct route_explanation *e, const char *fmt, ...)
{
    if (e->nnotes == EXPLAIN_MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->notes[e->nnotes++], sizeof(e->notes[0]), fmt, ap);
    va_end(ap);
}

/* nearest: the two legs in a line, or why --explain cannot tell where writes go. */
static void explain_nearest_note(struct route_explanation *e, bool health_known)
{
    if (!health_known)
        explain_note(e, "which region's primary takes nearest's writes is known from health "
                        "checks only: SHOW ROUTE ... NEEDING nearest names it");
    else if (e->n > 0 && e->nwrites > 0)
        explain_note(e, "nearest: transactions start in %s; writes go to %s", e->plan[0]->name,
                     e->writes[0]->name);
    else if (e->n > 0)
        explain_note(e,
                     "nearest: transactions start in %s; no region has a writable primary for "
                     "writes: they wait failover_wait for one, then fail",
                     e->plan[0]->name);
}

/* What the evidence given could not do, so that a quiet default does not look like a decision. */
static void explain_notes(const struct routing_data *rd, const struct locality_input *in,
                          bool health_known, struct route_explanation *e)
{
    const struct locality *loc = &e->loc;
    if (in->addr != NULL && loc->source == LOCALITY_DEFAULT) {
        if (rd->geoip == NULL)
            explain_note(e, "no GeoIP database is configured (geoip_db is not set), so ip= "
                            "cannot place the caller");
        else
            explain_note(e, "the GeoIP databases have no location for this address");
    }
    char nearby[300];
    if (in->city != NULL && (loc->unplaced & LOCALITY_UNPLACED_CITY) &&
        locality_city_suggestions(rd, in->city, nearby, sizeof(nearby))[0] != '\0')
        explain_note(e, "did you mean %s?", nearby);
    if (in->city != NULL && rd->cities == NULL)
        explain_note(e, "no city table is configured (cities_file is not set): only [cities] "
                        "places a city");
    if (!health_known)
        explain_note(e, "health is not checked by --explain; the running proxy may pass over a "
                        "region that is down");
    if (e->need.role == NEED_NEAREST)
        explain_nearest_note(e, health_known);
    if (e->n == 0 && e->passed_over[0] == '\0')
        explain_note(e, "every region is disabled or draining: a session would be refused");
    else if (e->n == 0)
        explain_note(e,
                     "no region has a host that is %s: a session would wait failover_wait "
                     "for one, then be refused",
                     need_name(e->need.role));
}

/* The regions need passes over and why, into out: "eu-west: no primary; ap-south: ...". */
static void explain_passed_over(const struct routing_data *rd, const struct need_spec *need,
                                char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < rd->regions->count; i++) {
        const struct region *r = &rd->regions->items[i];
        char why[160];
        if (!registry_takes_sessions(r->runtime) || need_region_fit(r, need) != NEED_FIT_NONE)
            continue;
        need_region_shortfall(r, need, why, sizeof(why));
        int w = snprintf(out + len, cap - len, "%s%s: %s", len > 0 ? "; " : "", r->name, why);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
}

/* nearest's writes: planned as a session needing read-write from the same caller. */
static void explain_writes(const struct routing_data *rd, struct route_explanation *out)
{
    double cosines[ROUTE_MAX_REGIONS];
    out->write_need = (struct need_spec){.role = NEED_READ_WRITE};
    out->nwrites =
        route_plan(rd, &out->loc, &out->write_need, NULL, out->writes, cosines, ROUTE_MAX_REGIONS);
    explain_passed_over(rd, &out->write_need, out->writes_passed_over,
                        sizeof(out->writes_passed_over));
    bool placed = locality_caller_placed(&out->loc);
    for (size_t i = 0; i < out->nwrites; i++)
        out->writes_km[i] = placed ? route_km(cosines[i]) : -1.0;
}

const struct route_score *route_explain_score(const struct routing_data *rd,
                                              const struct route_explanation *e,
                                              const struct region *r)
{
    if (!e->scored || r < rd->regions->items || r >= rd->regions->items + rd->regions->count)
        return NULL;
    return &e->scores[r - rd->regions->items];
}

bool route_explain_preferred(const struct route_explanation *e, const struct region *r)
{
    return e->scored && e->preferred != NULL && r->runtime == e->preferred;
}

/* A scored candidate's score and its parts: "score 4.3 ms = 2.3 ms measured + 2.0 ms distance". */
static void explain_score_parts(const struct route_explanation *e, const struct route_score *sc,
                                char *buf, size_t cap)
{
    char pgnear_part[64];
    if (sc->rtt_ms >= 0)
        snprintf(pgnear_part, sizeof(pgnear_part), "%.1f ms measured", sc->rtt_ms);
    else
        snprintf(pgnear_part, sizeof(pgnear_part), "cold: prior %.1f ms", rtt_prior_ms(sc->km));
    if (e->by == ROUTE_BY_HYBRID && sc->km >= 0)
        snprintf(buf, cap, "score %.1f ms = %s + %.1f ms for the caller's distance", sc->score_ms,
                 pgnear_part, rtt_prior_ms(sc->km));
    else
        snprintf(buf, cap, "score %.1f ms = %s", sc->score_ms, pgnear_part);
}

const char *route_explain_order(const struct routing_data *rd, const struct route_explanation *e,
                                const struct region *r, size_t rank, char *buf, size_t cap)
{
    const char *first = "";
    if (rank == 1 && r == e->loc.region)
        first = e->loc.source == LOCALITY_DEFAULT ? "default_region, first; " : "named, first; ";
    const struct route_score *sc = route_explain_score(rd, e, r);
    if (sc == NULL) {
        snprintf(buf, cap, "%sby distance%s", first,
                 e->by == ROUTE_BY_DISTANCE ? " (route_by = distance)" : "");
    } else if (!sc->candidate) {
        snprintf(buf, cap,
                 "%snot a candidate (beyond route_candidates and route_candidate_km): "
                 "after the candidates, by distance",
                 first);
    } else if (sc->score_ms < 0) {
        snprintf(buf, cap, "%scandidate, not scored (cold, no distance): after those scored",
                 first);
    } else {
        char parts[160];
        explain_score_parts(e, sc, parts, sizeof(parts));
        if (route_explain_preferred(e, r))
            snprintf(buf, cap, "%scandidate, preferred by callers nearest %s: %s", first,
                     e->home->name, parts);
        else
            snprintf(buf, cap, "%scandidate: %s", first, parts);
    }
    return buf;
}

void route_explain(const struct routing_data *rd, const struct locality_input *in,
                   const struct need_spec *need, bool health_known, struct route_explanation *out)
{
    memset(out, 0, sizeof(*out));
    out->need = *need;
    locality_resolve(rd, in, &out->loc);
    out->by = rd->rank.by;
    out->scored = route_plan_scores(rd, &out->loc, out->scores, &out->home, &out->preferred);
    double cosines[ROUTE_MAX_REGIONS];
    out->n = route_plan(rd, &out->loc, need, NULL, out->plan, cosines, ROUTE_MAX_REGIONS);
    explain_passed_over(rd, &out->need, out->passed_over, sizeof(out->passed_over));
    if (need->role == NEED_NEAREST)
        explain_writes(rd, out);
    bool placed = locality_caller_placed(&out->loc);
    for (size_t i = 0; i < out->n; i++)
        out->km[i] = placed ? route_km(cosines[i]) : -1.0;
    out->source = route_source_name(out->loc.source);
    locality_reason(&out->loc, out->reason, sizeof(out->reason));
    explain_notes(rd, in, health_known, out);
}

bool route_parse_address(const char *text, struct sockaddr_storage *addr)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    memset(addr, 0, sizeof(*addr));
    if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}
