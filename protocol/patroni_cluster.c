/*
 * patroni_cluster.c — Patroni's GET /cluster body into struct
 * patroni_cluster, through protocol/json.c.
 *
 * Every key read must have the type Patroni gives it; a key that is
 * absent takes its default, unknown keys are ignored.  Strings kept must
 * fit their buffers and hold no control character, so that they can go
 * into logs and SHOW output as they are.
 */
#include "protocol/patroni_cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/json.h"

/* A body holds about 300 bytes per member; nodes for a few times the most members. */
#define PATRONI_JSON_VALUES 4096
#define PATRONI_JSON_DEPTH  16

struct reader {
    const struct json_doc *doc;
    char *err;
    size_t cap;
    size_t index; /* the member being read */
};

static const struct {
    const char *name;
    enum patroni_role role;
} roles[] = {
    {"leader", PATRONI_ROLE_LEADER},
    {"standby_leader", PATRONI_ROLE_STANDBY_LEADER},
    {"replica", PATRONI_ROLE_REPLICA},
    {"sync_standby", PATRONI_ROLE_SYNC_STANDBY},
    {"quorum_standby", PATRONI_ROLE_QUORUM_STANDBY},
};

const char *patroni_role_name(enum patroni_role role)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (roles[i].role == role)
            return roles[i].name;
    return "other";
}

/* Writes the message; returns PATRONI_EFORMAT. */
__attribute__((format(printf, 2, 3))) static int bad(struct reader *r, const char *fmt, ...)
{
    va_list ap;

    if (r->cap > 0) {
        va_start(ap, fmt);
        vsnprintf(r->err, r->cap, fmt, ap);
        va_end(ap);
    }
    return PATRONI_EFORMAT;
}

/* A member's key as a string into dst[cap]: absent leaves dst "", null too when may_be_null. */
static int read_string(struct reader *r, uint32_t obj, const char *key, char *dst, size_t cap,
                       bool may_be_null)
{
    uint32_t v = json_get(r->doc, obj, key);
    size_t len;
    int rc;

    dst[0] = '\0';
    if (v == JSON_NONE || (may_be_null && json_type_of(r->doc, v) == JSON_NULL))
        return PATRONI_OK;
    rc = json_string_copy(r->doc, v, dst, cap, &len);
    if (rc == JSON_ETYPE)
        return bad(r, "members[%zu]: \"%s\" is not a string", r->index, key);
    if (rc == JSON_ETRUNC)
        return bad(r, "members[%zu]: \"%s\" is longer than %zu bytes", r->index, key, cap - 1);
    for (size_t i = 0; rc == JSON_OK && i < len; i++)
        if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
            rc = JSON_ECONTROL;
    if (rc != JSON_OK) {
        dst[0] = '\0';
        return bad(r, "members[%zu]: \"%s\" holds a control character", r->index, key);
    }
    return PATRONI_OK;
}

/* An integer key from min to max into *out; absent leaves *out as it is. */
static int read_int(struct reader *r, uint32_t obj, const char *key, int64_t min, int64_t max,
                    int64_t *out)
{
    uint32_t v = json_get(r->doc, obj, key);
    int64_t n;

    if (v == JSON_NONE)
        return PATRONI_OK;
    if (json_int64(r->doc, v, &n) != JSON_OK || n < min || n > max)
        return bad(r, "members[%zu]: \"%s\" is not an integer from %lld to %lld", r->index, key,
                   (long long)min, (long long)max);
    *out = n;
    return PATRONI_OK;
}

/* Python's truth of a JSON value, as Patroni tests a tag: tags.get('nofailover', False). */
static bool truthy(const struct json_doc *doc, uint32_t v)
{
    double d;

    switch (json_type_of(doc, v)) {
    case JSON_TRUE:
        return true;
    case JSON_NUMBER:
        return json_double(doc, v, &d) != JSON_OK || d != 0.0;
    case JSON_STRING:
        return doc->nodes[v].len > 0;
    case JSON_ARRAY:
    case JSON_OBJECT:
        return json_count(doc, v) > 0;
    default:
        return false;
    }
}

/*
 * A member's "tags", when present: pgnear_region, and nofailover and
 * noloadbalance as Patroni reads them (any truthy value).
 */
static int read_tags(struct reader *r, uint32_t obj, struct patroni_member *m)
{
    uint32_t tags = json_get(r->doc, obj, "tags");
    int rc;

    if (tags == JSON_NONE)
        return PATRONI_OK;
    if (json_type_of(r->doc, tags) != JSON_OBJECT)
        return bad(r, "members[%zu]: \"tags\" is not an object", r->index);
    rc = read_string(r, tags, "pgnear_region", m->region, sizeof(m->region), false);
    if (rc != PATRONI_OK)
        return rc;
    m->nofailover = truthy(r->doc, json_get(r->doc, tags, "nofailover"));
    m->noloadbalance = truthy(r->doc, json_get(r->doc, tags, "noloadbalance"));
    return PATRONI_OK;
}

/*
 * A member's "role": the ones pgnear knows (the roles table), any other
 * string PATRONI_ROLE_OTHER, which takes no sessions.
 */
static int read_role(struct reader *r, uint32_t obj, struct patroni_member *m)
{
    uint32_t v = json_get(r->doc, obj, "role");

    if (v == JSON_NONE)
        return bad(r, "members[%zu]: no \"role\"", r->index);
    if (json_type_of(r->doc, v) != JSON_STRING)
        return bad(r, "members[%zu]: \"role\" is not a string", r->index);
    m->role = PATRONI_ROLE_OTHER;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (json_string_eq(r->doc, v, roles[i].name, strlen(roles[i].name)))
            m->role = roles[i].role;
    return PATRONI_OK;
}

/* "lag": a number of bytes, or "unknown"; absent for the leader. */
static int read_lag(struct reader *r, uint32_t obj, struct patroni_member *m)
{
    uint32_t v = json_get(r->doc, obj, "lag");

    m->lag = PATRONI_LAG_NONE;
    m->lag_bytes = 0;
    if (v == JSON_NONE)
        return PATRONI_OK;
    if (json_string_eq(r->doc, v, "unknown", 7)) {
        m->lag = PATRONI_LAG_UNKNOWN;
        return PATRONI_OK;
    }
    if (json_int64(r->doc, v, &m->lag_bytes) != JSON_OK || m->lag_bytes < 0) {
        m->lag_bytes = 0;
        return bad(r, "members[%zu]: \"lag\" is neither \"unknown\" nor a number of bytes",
                   r->index);
    }
    m->lag = PATRONI_LAG_BYTES;
    return PATRONI_OK;
}

/* An optional true or false; absent is false. */
static int read_flag(struct reader *r, uint32_t obj, const char *key, bool *out)
{
    uint32_t v = json_get(r->doc, obj, key);

    *out = false;
    if (v == JSON_NONE)
        return PATRONI_OK;
    if (json_bool(r->doc, v, out) != JSON_OK)
        return bad(r, "members[%zu]: \"%s\" is not true or false", r->index, key);
    return PATRONI_OK;
}

/*
 * One element of "members": name (required, not empty), role, state,
 * api_url, host, port, timeline, lag, pending_restart and tags, the first
 * malformed one named.
 */
static int read_member(struct reader *r, uint32_t obj, struct patroni_member *m)
{
    int64_t port = 0;
    int rc;

    if (json_type_of(r->doc, obj) != JSON_OBJECT)
        return bad(r, "members[%zu] is not an object", r->index);
    if (json_get(r->doc, obj, "name") == JSON_NONE)
        return bad(r, "members[%zu]: no \"name\"", r->index);
    rc = read_string(r, obj, "name", m->name, sizeof(m->name), false);
    if (rc == PATRONI_OK && m->name[0] == '\0')
        rc = bad(r, "members[%zu]: \"name\" is empty", r->index);
    if (rc == PATRONI_OK)
        rc = read_role(r, obj, m);
    if (rc == PATRONI_OK)
        rc = read_string(r, obj, "state", m->state, sizeof(m->state), false);
    if (rc == PATRONI_OK)
        rc = read_string(r, obj, "api_url", m->api_url, sizeof(m->api_url), true);
    if (rc == PATRONI_OK)
        rc = read_string(r, obj, "host", m->host, sizeof(m->host), false);
    if (rc == PATRONI_OK)
        rc = read_int(r, obj, "port", 1, 65535, &port);
    m->port = (int)port;
    m->timeline = -1;
    if (rc == PATRONI_OK)
        rc = read_int(r, obj, "timeline", 0, INT64_MAX, &m->timeline);
    if (rc == PATRONI_OK)
        rc = read_lag(r, obj, m);
    if (rc == PATRONI_OK)
        rc = read_flag(r, obj, "pending_restart", &m->pending_restart);
    if (rc == PATRONI_OK)
        rc = read_tags(r, obj, m);
    return rc;
}

/* No two members of one name, at most one holding the leader lock. */
static int check_members(struct reader *r, struct patroni_cluster *c)
{
    for (size_t i = 0; i < c->count; i++) {
        enum patroni_role role = c->members[i].role;

        for (size_t j = 0; j < i; j++)
            if (strcmp(c->members[i].name, c->members[j].name) == 0)
                return bad(r, "members[%zu] and members[%zu] have the same name", j, i);
        if (role != PATRONI_ROLE_LEADER && role != PATRONI_ROLE_STANDBY_LEADER)
            continue;
        if (c->leader >= 0)
            return bad(r, "members[%d] and members[%zu] are both leaders", c->leader, i);
        c->leader = (int)i;
    }
    return PATRONI_OK;
}

/*
 * The body: an object whose "members" is an array of at most
 * PATRONI_MEMBERS_MAX members, each read, then checked together
 * (check_members).
 */
static int read_cluster(struct reader *r, struct patroni_cluster *c)
{
    const struct json_doc *doc = r->doc;
    uint32_t members = json_get(doc, 0, "members"), v;
    int rc = PATRONI_OK;

    if (json_type_of(doc, 0) != JSON_OBJECT)
        return bad(r, "the body is not a JSON object");
    if (members == JSON_NONE)
        return bad(r, "the body has no \"members\"");
    if (json_type_of(doc, members) != JSON_ARRAY)
        return bad(r, "\"members\" is not an array");
    if (json_count(doc, members) > PATRONI_MEMBERS_MAX)
        return bad(r, "more than %d members", PATRONI_MEMBERS_MAX);
    for (v = json_first(doc, members); rc == PATRONI_OK && v != JSON_NONE; v = json_next(doc, v)) {
        r->index = c->count;
        rc = read_member(r, v, &c->members[c->count++]);
    }
    if (rc != PATRONI_OK)
        return rc;
    v = json_get(doc, 0, "pause");
    if (v != JSON_NONE && json_bool(doc, v, &c->paused) != JSON_OK)
        return bad(r, "\"pause\" is not true or false");
    v = json_get(doc, 0, "scheduled_switchover");
    c->scheduled_switchover = v != JSON_NONE && json_type_of(doc, v) != JSON_NULL;
    return check_members(r, c);
}

int patroni_cluster_parse(const char *body, size_t len, struct patroni_cluster *out, char *err,
                          size_t cap)
{
    struct json_limits limits = {.max_depth = PATRONI_JSON_DEPTH,
                                 .max_values = PATRONI_JSON_VALUES};
    struct json_doc doc;
    struct json_error jerr;
    struct reader r = {.doc = &doc, .err = err, .cap = cap};
    int rc;

    memset(out, 0, sizeof(*out));
    out->leader = -1;
    if (cap > 0)
        err[0] = '\0';
    rc = json_parse(body, len, &limits, &doc, &jerr);
    if (rc == JSON_ENOMEM) {
        bad(&r, "out of memory");
        return PATRONI_ENOMEM;
    }
    if (rc != JSON_OK) {
        bad(&r, "not JSON: %s at byte %zu", json_strerror(rc), jerr.pos);
        return PATRONI_EJSON;
    }
    rc = read_cluster(&r, out);
    json_free(&doc);
    if (rc != PATRONI_OK) {
        memset(out, 0, sizeof(*out));
        out->leader = -1;
    }
    return rc;
}

const struct patroni_member *patroni_cluster_find(const struct patroni_cluster *c, const char *name)
{
    for (size_t i = 0; i < c->count; i++)
        if (strcmp(c->members[i].name, name) == 0)
            return &c->members[i];
    return NULL;
}
