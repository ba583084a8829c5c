/*
 * follow.c — reading back where moved databases live (follow.h): the
 * follower's rounds on worker 0 (every region's record asked at once,
 * the newest move of each database applied to the placement, a WARNING
 * where the file disagrees), the blocking read of the start and of
 * --check; each round's rows are handed on to the holds of other
 * instances' cutovers (follow_hold.c) and to their settling
 * (follow_settle.c).
 */
#include "proxy/dbmove/follow_int.h"
#include "proxy/dbmove/follow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "routing/cities.h"
#include "routing/region.h"

/* ---- the decision ---- */

/* Whether a and b are rows of the same database and city (cities compared folded). */
static bool same_home(const struct dbmove_row *a, const struct dbmove_row *b)
{
    char ka[PLACEMENT_KEY_MAX + 1], kb[PLACEMENT_KEY_MAX + 1];
    if (strcmp(a->database, b->database) != 0 || (a->city[0] == '\0') != (b->city[0] == '\0'))
        return false;
    if (a->city[0] == '\0' || strcmp(a->city, b->city) == 0)
        return true;
    return city_fold(a->city, ka, sizeof(ka)) && city_fold(b->city, kb, sizeof(kb)) &&
           strcmp(ka, kb) == 0;
}

size_t dbmove_newest(const struct dbmove_row *rows, size_t n, const struct dbmove_row **out,
                     size_t cap)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dbmove_row *r = &rows[i];
        size_t k = 0;
        while (k < count && !same_home(out[k], r))
            k++;
        if (k == count) {
            if (count == cap)
                continue;
            out[count++] = r;
        } else if (r->id > out[k]->id || (r->id == out[k]->id && r->version > out[k]->version)) {
            out[k] = r;
        }
    }
    return count;
}

/* Whether some [database] section says where it lives: only then may a database be moved. */
static bool may_have_moves(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        const struct need_rule *rule = &cfg->need_rules[i];
        struct region_subset where;
        if (rule->is_user || rule->regions == NULL)
            continue;
        const struct region_subset *placed = config_database_placement(cfg, rule->name, &where);
        if (placed != NULL && placed->count > 0)
            return true;
    }
    return false;
}

/* ---- applying a round ---- */

/* Whether region's record was read this round: a move is followed once both its regions are. */
static bool was_answered(const struct dbmove_follow *f, const char *region)
{
    for (size_t i = 0; i < f->nanswered; i++)
        if (strcasecmp(f->answered[i], region) == 0)
            return true;
    return false;
}

/* Into buf, when the file says otherwise than the record of r's move (region): true. */
static bool disagreement(const struct config *cfg, const struct dbmove_row *r, const char *region,
                         char *buf, size_t cap)
{
    struct region_subset where;
    const struct region_subset *placed = config_database_placement(cfg, r->database, &where);
    if (placed != NULL && region_subset_has(placed, region_set_find(&cfg->regions, region)))
        return false; /* the file names its primary's region (and maybe its standbys') */
    char file[256] = "every region";
    if (placed != NULL)
        region_subset_format(placed, file, sizeof(file));
    snprintf(buf, cap,
             "database \"%s\" lives in region %s since its move (MOVE DATABASE, %s), but the "
             "configuration file says regions = %s: the move's record wins, being the newer "
             "word; write regions = %s in its [database %s] section to make them agree",
             r->database, region, dbmove_state_name(r->state), file, region, r->database);
    return true;
}

/* A WARNING when the file says otherwise, once per database and region (and configuration). */
static void tell_disagreement(struct dbmove_follow *f, const struct config *cfg,
                              const struct dbmove_row *r, const char *region)
{
    char text[700];
    if (!disagreement(cfg, r, region, text, sizeof(text)))
        return;
    if (f->warned_cfg != cfg) {
        f->warned_cfg = cfg;
        f->nwarned = 0;
    }
    char key[sizeof(f->warned[0])];
    snprintf(key, sizeof(key), "%s/%s", r->database, region);
    for (size_t i = 0; i < f->nwarned; i++)
        if (strcmp(f->warned[i], key) == 0)
            return;
    if (f->nwarned < PLACEMENT_MAX)
        snprintf(f->warned[f->nwarned++], sizeof(f->warned[0]), "%s", key);
    log_warn(0, "%s", text);
}

/* r as a home: where its rows live by the same rule as a database's (dbmove_home_region). */
static void home_of_row(const struct dbmove_row *r, struct placement_home *h)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->database, sizeof(h->database), "%s", r->database);
    snprintf(h->city, sizeof(h->city), "%s", r->city);
    if (r->city[0] != '\0' && !city_fold(r->city, h->key, sizeof(h->key)))
        h->key[0] = '\0';
    snprintf(h->region, sizeof(h->region), "%s", dbmove_home_region(r));
    if (dbmove_state_live(r->state))
        snprintf(h->target, sizeof(h->target), "%s", r->to_region);
    h->move_id = r->id;
    h->since_us = r->updated_at_us;
    snprintf(h->state, sizeof(h->state), "%s", dbmove_state_name(r->state));
}

/* The home that was kept of r's database and city, into h; false when none was. */
static bool home_kept(const struct placement_home *kept, size_t nkept, const struct dbmove_row *r,
                      struct placement_home *h)
{
    struct placement_home mine;
    home_of_row(r, &mine);
    for (size_t i = 0; i < nkept; i++)
        if (strcmp(kept[i].database, mine.database) == 0 && strcmp(kept[i].key, mine.key) == 0 &&
            (kept[i].city[0] == '\0') == (mine.city[0] == '\0')) {
            *h = kept[i];
            return true;
        }
    return false;
}

/* The log's word on where a city's rows live now. */
static void tell_city_home(const struct placement_home *h)
{
    if (h->region[0] != '\0')
        log_info(0, "city \"%s\" of database \"%s\" lives in region %s (its move is %s)", h->city,
                 h->database, h->region, h->state);
    else
        log_info(0, "city \"%s\" of database \"%s\" lives where the database does (its move is %s)",
                 h->city, h->database, h->state);
}

/*
 * The homes of the round's newest rows, for the routing by city and SHOW
 * HOMES: a row whose regions were not both read keeps the home read before.
 * A city's new home is logged where its database is homed by city.
 */
static void apply_homes(struct dbmove_follow *f, const struct config *cfg,
                        struct placement_table *t, const struct dbmove_row *const *newest, size_t n)
{
    struct placement_home *kept = calloc(2 * PLACEMENT_HOMES_MAX, sizeof(*kept));
    if (kept == NULL)
        return; /* out of memory: the homes stay as they were */
    struct placement_home *homes = kept + PLACEMENT_HOMES_MAX;
    size_t nkept = placement_homes(t, kept, PLACEMENT_HOMES_MAX), nhomes = 0;
    for (size_t i = 0; i < n && nhomes < PLACEMENT_HOMES_MAX; i++) {
        const struct dbmove_row *r = newest[i];
        struct placement_home before;
        if (!was_answered(f, r->from_region) || !was_answered(f, r->to_region)) {
            nhomes += home_kept(kept, nkept, r, &homes[nhomes]); /* half the story */
            continue;
        }
        home_of_row(r, &homes[nhomes]);
        if (r->city[0] != '\0' && config_database_home_by(cfg, r->database) != NULL &&
            (!home_kept(kept, nkept, r, &before) ||
             strcmp(before.region, homes[nhomes].region) != 0))
            tell_city_home(&homes[nhomes]);
        nhomes++;
    }
    placement_set_homes(t, homes, nhomes);
    free(kept);
}

/* Whether a move of database, of it whole or of a city's rows, is under way: migrations wait. */
static bool database_moving(const struct dbmove_row *const *newest, size_t n, const char *database)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(newest[i]->database, database) == 0 && dbmove_state_live(newest[i]->state))
            return true;
    return false;
}

/* The round's rows made placement: each database where its newest move says it lives. */
static void apply_round(struct dbmove_follow *f, const struct config *cfg)
{
    const struct dbmove_row *newest[PLACEMENT_HOMES_MAX];
    size_t n = dbmove_newest(f->rows, f->nrows, newest, PLACEMENT_HOMES_MAX);
    struct placement_table *t = &f->w->shared->placement;
    f->transitional = false;
    if (!f->starting && placement_local_epoch(t) != f->round_epoch) {
        f->transitional = true; /* read before a cutover of ours began or ended: read again */
        return;
    }
    apply_homes(f, cfg, t, newest, n);
    for (size_t i = 0; i < n; i++) {
        const struct dbmove_row *r = newest[i];
        f->transitional =
            f->transitional || r->state == DBMOVE_CUTTING_OVER || r->state == DBMOVE_REVERTING;
        if (!was_answered(f, r->from_region) || !was_answered(f, r->to_region))
            continue; /* half the story: leave it as it is */
        placement_set_flag(t, r->database, PLACEMENT_MOVING,
                           database_moving(newest, n, r->database));
        if (r->city[0] != '\0') { /* a city's home, set above; its cutover's holds */
            follow_hold_round(f, cfg, r);
            follow_settle_round(f, cfg, r);
            continue;
        }
        if (placement_local(t, r->database))
            continue; /* our own cutover sets where it lives */
        const char *region = dbmove_home_region(r);
        char now[PLACEMENT_NAME_MAX + 1] = "";
        placement_region(t, r->database, now, sizeof(now));
        if (strcmp(now, region) != 0) {
            if (placement_set_region(t, r->database, region) != 0)
                log_warn(0,
                         "database \"%s\": more than %d moved databases; its move is not "
                         "followed",
                         r->database, PLACEMENT_MAX);
            else if (region[0] != '\0')
                log_info(0, "database \"%s\" lives in region %s (its move is %s)", r->database,
                         region, dbmove_state_name(r->state));
            else
                log_info(0,
                         "database \"%s\" lives where the configuration file says (its move "
                         "was aborted)",
                         r->database);
        }
        if (region[0] != '\0')
            tell_disagreement(f, cfg, r, region);
        follow_hold_round(f, cfg, r);
        follow_settle_round(f, cfg, r);
    }
}

/* A region's rows, appended to the round's. */
static void take_rows(struct dbmove_follow *f, const PGresult *res, const char *region)
{
    struct dbmove_row *rows;
    size_t count;
    char why[128];
    if (dbmove_rows_parse(res, &rows, &count, why, sizeof(why)) != 0) {
        log_warn(0, "the record of moves in region %s could not be read: %s", region, why);
        return;
    }
    struct dbmove_row *all = count ? realloc(f->rows, (f->nrows + count) * sizeof(*all)) : f->rows;
    if (count > 0 && all == NULL) {
        free(rows);
        return; /* out of memory: the region counts as not read */
    }
    if (count > 0) {
        memcpy(all + f->nrows, rows, count * sizeof(*rows));
        f->rows = all;
        f->nrows += count;
    }
    free(rows);
    snprintf(f->answered[f->nanswered++], sizeof(f->answered[0]), "%s", region);
}

/* ---- the rounds on worker 0's loop ---- */

/* The last answer of a round: applied, then the next round timed (sooner while a cutover runs). */
static void round_end(struct dbmove_follow *f)
{
    apply_round(f, f->cfg);
    config_unref(f->cfg);
    f->cfg = NULL;
    free(f->rows);
    f->rows = NULL;
    f->nrows = f->nanswered = f->nqueries = 0;
    if (f->w->draining)
        return; /* no more rounds */
    int ms = follow_holding(f) || f->transitional ? FOLLOW_FAST_MS : DBMOVE_FOLLOW_MS;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(f->timer, &tv);
}

static bool ask_region(struct dbmove_follow *f, struct follow_query *fq, const struct region *r,
                       const char *sql);

/* One region's answer; the round ends with the last. */
static void answered(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct follow_query *fq = arg;
    struct dbmove_follow *f = fq->f;
    (void)server_answered;
    const char *sqlstate = pgasync_error_sqlstate(fq->q);
    bool missing = res == NULL && sqlstate != NULL && strcmp(sqlstate, "42P01") == 0;
    fq->q = NULL;
    if (missing && !fq->database_only) { /* an older pgnear's record: no city moves' table */
        fq->database_only = true;
        if (ask_region(f, fq, region_set_find(&f->cfg->regions, fq->region),
                       dbmove_select_database_sql))
            return;
    }
    if (res != NULL)
        take_rows(f, res, fq->region);
    else if (missing) /* no move ever there */
        snprintf(f->answered[f->nanswered++], sizeof(f->answered[0]), "%s", fq->region);
    else
        log_debug(0, "the record of moves in region %s could not be read: %s", fq->region,
                  error ? error : "?");
    if (--f->pending == 0)
        round_end(f);
}

/* A round: every region's record asked at once, on worker 0's loop. */
static void round_start(evutil_socket_t fd, short what, void *arg)
{
    struct dbmove_follow *f = arg;
    (void)fd;
    (void)what;
    struct config *cfg = f->w->cfg;
    struct timeval tv = {DBMOVE_FOLLOW_MS / 1000, (DBMOVE_FOLLOW_MS % 1000) * 1000};
    if (!may_have_moves(cfg)) {
        evtimer_add(f->timer, &tv);
        return;
    }
    f->cfg = config_ref(cfg);
    f->round_epoch = placement_local_epoch(&f->w->shared->placement);
    for (size_t i = 0; i < cfg->regions.count && f->nqueries < REGION_SUBSET_MAX; i++) {
        struct follow_query *fq = &f->queries[f->nqueries];
        *fq = (struct follow_query){.f = f};
        snprintf(fq->region, sizeof(fq->region), "%s", cfg->regions.items[i].name);
        if (ask_region(f, fq, &cfg->regions.items[i], dbmove_select_sql)) {
            f->nqueries++;
            f->pending++;
        }
    }
    if (f->pending == 0)
        round_end(f);
}

/* sql sent to r's record (r NULL: none); false when it could not be sent. */
static bool ask_region(struct dbmove_follow *f, struct follow_query *fq, const struct region *r,
                       const char *sql)
{
    const struct region_host *h = r != NULL ? follow_record_host(r) : NULL;
    char conninfo[2048], error[256];
    if (h == NULL ||
        !pgconn_conninfo(f->cfg, h, f->cfg->moves_db, FOLLOW_APP_NAME, conninfo, sizeof(conninfo)))
        return false;
    fq->q = pgasync_query(f->w->base, conninfo, sql, 0, NULL, DBMOVE_FOLLOW_TIMEOUT_MS, answered,
                          fq, error, sizeof(error));
    return fq->q != NULL;
}

/* ---- at start: one blocking read, before any client is served ---- */

/* The read of --check and of the start, before any client: a host at a time, till one answers. */
static void read_region_blocking(struct dbmove_follow *f, const struct config *cfg,
                                 const struct region *r)
{
    for (size_t i = 0; i < r->nhosts; i++) {
        char conninfo[2048];
        if (!pgconn_conninfo(cfg, &r->hosts[i], cfg->moves_db, FOLLOW_APP_NAME, conninfo,
                             sizeof(conninfo)) ||
            !pgasync_conninfo_add(conninfo, sizeof(conninfo), "connect_timeout", "3"))
            continue;
        PGconn *c = PQconnectdb(conninfo);
        if (c != NULL)
            PQsetNoticeProcessor(c, log_server_notice, (void *)"database moves' record");
        PGresult *res = PQstatus(c) == CONNECTION_OK ? PQexec(c, dbmove_select_sql) : NULL;
        const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (sqlstate != NULL && strcmp(sqlstate, "42P01") == 0) { /* an older pgnear's record */
            PQclear(res);
            res = PQexec(c, dbmove_select_database_sql);
            sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        }
        bool done = res != NULL;
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
            take_rows(f, res, r->name);
        else if (sqlstate != NULL && strcmp(sqlstate, "42P01") == 0)
            snprintf(f->answered[f->nanswered++], sizeof(f->answered[0]), "%s", r->name);
        else
            done = false;
        PQclear(res);
        PQfinish(c);
        if (done)
            return;
    }
    log_warn(0,
             "the record of moves in region %s could not be read at start: databases moved "
             "to or from it are routed as the file says until it can",
             r->name);
}

int dbmove_check_file(const struct config *cfg, void (*tell)(const char *line, void *arg),
                      void *arg)
{
    struct dbmove_follow f = {0};
    if (!may_have_moves(cfg))
        return 0;
    f.starting = true;
    for (size_t i = 0; i < cfg->regions.count && i < REGION_SUBSET_MAX; i++)
        read_region_blocking(&f, cfg, &cfg->regions.items[i]);
    const struct dbmove_row *newest[PLACEMENT_HOMES_MAX];
    size_t n = dbmove_newest(f.rows, f.nrows, newest, PLACEMENT_HOMES_MAX);
    int told = 0;
    for (size_t i = 0; i < n; i++) {
        const char *region = dbmove_home_region(newest[i]);
        char text[700];
        if (newest[i]->city[0] == '\0' && region[0] != '\0' &&
            disagreement(cfg, newest[i], region, text, sizeof(text))) {
            tell(text, arg);
            told++;
        }
    }
    free(f.rows);
    return told;
}

/* Worker 0 alone follows, so that one reader sets the placement all workers share. */
static int follow_start(struct worker *w, char *err, size_t errcap)
{
    if (w->index != 0)
        return 0;
    struct dbmove_follow *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->timer = evtimer_new(w->base, round_start, f)) == NULL) {
        free(f);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    f->w = w;
    w->follow = f;
    if (may_have_moves(w->cfg)) {
        f->starting = true;
        for (size_t i = 0; i < w->cfg->regions.count && i < REGION_SUBSET_MAX; i++)
            read_region_blocking(f, w->cfg, &w->cfg->regions.items[i]);
        apply_round(f, w->cfg);
        f->starting = false;
        free(f->rows);
        f->rows = NULL;
        f->nrows = f->nanswered = 0;
    }
    struct timeval tv = {DBMOVE_FOLLOW_MS / 1000, (DBMOVE_FOLLOW_MS % 1000) * 1000};
    evtimer_add(f->timer, &tv);
    return 0;
}

/* Queries in flight are abandoned: the follower ends with its worker. */
static void follow_free(struct worker *w)
{
    struct dbmove_follow *f = w->follow;
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->nqueries; i++)
        if (f->queries[i].q != NULL)
            pgasync_abandon(f->queries[i].q);
    if (f->cfg != NULL)
        config_unref(f->cfg);
    follow_holds_free(f);
    follow_settle_free(f);
    event_free(f->timer);
    free(f->rows);
    free(f);
    w->follow = NULL;
}

/* SIGTERM: no more rounds (the sessions left keep where they are). */
static void follow_drain(struct worker *w)
{
    if (w->follow != NULL)
        evtimer_del(w->follow->timer);
}

const struct worker_part dbmove_follow_part = {
    .name = "database moves",
    .start = follow_start,
    .drain = follow_drain,
    .free = follow_free,
};
