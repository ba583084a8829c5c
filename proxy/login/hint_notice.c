/*
 * hint_notice.c — what callers are told about locality evidence pgnear
 * could not use.
 *
 * A client's own startup hints come back to it as WARNING notices, sent
 * right before its first ReadyForQuery (after AuthenticationOk, which the
 * protocol allows: libpq, JDBC and the rest take a notice at any time and
 * psql prints it), so that pgnear.city=Seatle does not quietly land in
 * the default region with only pgnear's log knowing why.  The SQLSTATE is
 * 01000, a warning: the login succeeded, only not where the client asked.
 *
 * A load balancer's PROXY TLVs are not the client's doing, and it could
 * not fix them: they go to the log as a warning, for whoever runs the
 * balancer, and the client is not told.
 */
#include "proxy/login/hint_notice.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"

#define HINT_NOTICE_SQLSTATE "01000"

/* "The session went to region us-east, the default region (default_region)." */
static void hint_where(const struct session *s, char *buf, size_t cap)
{
    const struct locality *loc = &s->login->loc;
    char by[200];
    switch (loc->source) {
    case LOCALITY_REGION_HINT:
        snprintf(by, sizeof(by), "named by %s", loc->via);
        break;
    case LOCALITY_CITY:
        snprintf(by, sizeof(by), "chosen by city \"%s\" (%s)", loc->city, loc->via);
        break;
    case LOCALITY_COORDINATES:
        snprintf(by, sizeof(by), "chosen by coordinates %.4f, %.4f (%s)", loc->lat, loc->lon,
                 loc->via);
        break;
    case LOCALITY_GEOIP:
        snprintf(by, sizeof(by), "chosen by GeoIP on the client's address");
        break;
    case LOCALITY_DEFAULT:
        snprintf(by, sizeof(by), "the default region (default_region)");
        break;
    }
    snprintf(buf, cap, "The session went to region %s, %s.", s->server_conn->region->name, by);
}

/* "Configured regions: us-east, eu-west." (as many as fit, then "...") */
static void hint_list_regions(const struct region_set *regions, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "Configured regions: ");
    for (size_t i = 0; i < regions->count; i++) {
        const char *name = regions->items[i].name;
        if (n + strlen(name) + sizeof(", , ...") >= cap) {
            snprintf(buf + n, cap - n, ", ...");
            return;
        }
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i > 0 ? ", " : "", name);
    }
    snprintf(buf + n, cap - n, ".");
}

/* A WARNING notice: the message, where the hints came from (detail), and the hint. */
static void hint_send(struct session *s, const struct pg_error *e)
{
    uint8_t buf[2048];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'N', "WARNING", e);
    if (!pkt_ok(&pb) || evbuffer_add(s->client.out, buf, pb.len) != 0) {
        slog_warn(s, "could not send the client a notice: %s", e->message);
        return;
    }
    session_log(LOG_INFO, s, e->sqlstate, "WARNING %s sent to the client: %s", e->sqlstate,
                e->message);
}

static void hint_notice_city(struct session *s, const char *where)
{
    const struct routing_data *rd = &s->cfg->routing;
    char nearby[400];
    struct pg_error e;
    if (rd->cities == NULL)
        pg_error_set(&e, HINT_NOTICE_SQLSTATE,
                     "pgnear.city \"%s\" is not in [cities], and pgnear has no city table",
                     s->login->hints.city);
    else
        pg_error_set(&e, HINT_NOTICE_SQLSTATE, "pgnear.city \"%s\" is not in pgnear's city table",
                     s->login->hints.city);
    pg_error_detail(&e, "%s", where);
    if (locality_city_suggestions(rd, s->login->hints.city, nearby, sizeof(nearby))[0] != '\0')
        pg_error_hint(&e, "Did you mean %s?", nearby);
    else
        pg_error_hint(&e, "Name a city as GeoNames does, optionally with its "
                          "country code: pgnear.city=Paris,FR.");
    hint_send(s, &e);
}

void hint_notice_queue(struct session *s)
{
    const struct startup_hints *h = &s->login->hints;
    unsigned unplaced = s->login->loc.unplaced;
    char where[300], hint[512];
    struct pg_error e;
    if (!s->cfg->client_hints || unplaced == 0)
        return;
    hint_where(s, where, sizeof(where));
    if (h->has_region && (unplaced & LOCALITY_UNPLACED_REGION)) {
        pg_error_set(&e, HINT_NOTICE_SQLSTATE, "pgnear.region \"%s\" is not a configured region",
                     h->region);
        pg_error_detail(&e, "%s", where);
        hint_list_regions(&s->cfg->regions, hint, sizeof(hint));
        pg_error_hint(&e, "%s", hint);
        hint_send(s, &e);
    }
    if (h->has_city && (unplaced & LOCALITY_UNPLACED_CITY))
        hint_notice_city(s, where);
    if (h->has_location && (unplaced & LOCALITY_UNPLACED_LOCATION)) {
        pg_error_set(&e, HINT_NOTICE_SQLSTATE,
                     "pgnear.location \"%s\" is not \"latitude,longitude\"", h->location);
        pg_error_detail(&e, "%s", where);
        pg_error_hint(&e, "Give degrees, north and east positive: pgnear.location=47.61,-122.33.");
        hint_send(s, &e);
    }
}

static bool hint_via_tlv(const char *via)
{
    return via != NULL && strcmp(via, "PROXY TLV") == 0;
}

void hint_log_tlv(struct session *s, const struct locality_input *in)
{
    unsigned unplaced = s->login->loc.unplaced;
    char nearby[400];
    if ((unplaced & LOCALITY_UNPLACED_REGION) && hint_via_tlv(in->region_via))
        slog_warn(s, "PROXY TLV region \"%s\" is not a configured region", in->region);
    if ((unplaced & LOCALITY_UNPLACED_CITY) && hint_via_tlv(in->city_via)) {
        locality_city_suggestions(&s->cfg->routing, in->city, nearby, sizeof(nearby));
        slog_warn(s, "PROXY TLV city \"%s\" is not in the city table%s%s%s", in->city,
                  nearby[0] ? " (closest: " : "", nearby, nearby[0] ? ")" : "");
    }
    if ((unplaced & LOCALITY_UNPLACED_LOCATION) && hint_via_tlv(in->location_via))
        slog_warn(s, "PROXY TLV location \"%s\" is not \"latitude,longitude\"", in->location);
}

/* The value a hint kept before the stray word: what the client meant, up to the space. */
static const char *hint_value(const struct startup_hints *h, const char *name, size_t n)
{
    if (n == 11 && strncmp(name, "pgnear.city", n) == 0)
        return h->city;
    if (n == 13 && strncmp(name, "pgnear.region", n) == 0)
        return h->region;
    return h->location;
}

void hint_fail_stray(struct session *s, const char *errname)
{
    const char *sp = strchr(errname, ' ');
    const char *word = sp ? sp + 1 : "";
    int n = sp ? (int)(sp - errname) : (int)strlen(errname);
    const char *value = hint_value(&s->login->hints, errname, (size_t)n);
    bool city = n == 11 && strncmp(errname, "pgnear.city", 11) == 0;
    char msg[256], detail[512], hint[512];
    snprintf(msg, sizeof(msg), "unescaped space in the value of %.*s in options", n, errname);
    snprintf(detail, sizeof(detail),
             "Options are split at spaces: %.*s was \"%s\", and the server would refuse \"%s\" as "
             "an argument of its own.",
             n, errname, value, word);
    if (city)
        snprintf(hint, sizeof(hint),
                 "Escape the space with a backslash (-c pgnear.city=%s\\ %s), or write the city "
                 "as %s_%s.",
                 value, word, value, word);
    else
        snprintf(hint, sizeof(hint), "Escape the space with a backslash: -c %.*s=%s\\ %s.", n,
                 errname, value, word);
    struct pg_error err;
    pg_error_set(&err, "42601", "%s", msg);
    pg_error_detail(&err, "%s", detail);
    pg_error_hint(&err, "%s", hint);
    session_fail(s, &err);
}
