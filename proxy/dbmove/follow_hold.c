/*
 * follow_hold.c — this pgnear's part in a cutover that another instance
 * of its fleet runs (follow_int.h).
 *
 * When the newest record of a database says 'cutting over' or 'reverting'
 * and this pgnear does not run that cutover itself, it holds its own
 * sessions of the database at their next transaction boundary (the same
 * gate a cutover closes), then writes their server processes to the
 * leaving region's pgnear_move_holds: the cutover waits for that word
 * from every peer before it ends the database's other sessions there, and
 * passes these over.  When the record changes again, the sessions move to
 * where it says the database lives now (the cutover's commit), or are
 * let go where they are (its undo), and the word is taken back.  A gate
 * that cannot close within move_timeout opens again; no word is written,
 * and the cutover, which waits for it, gives up.
 */
#include "proxy/dbmove/follow_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/dbmove/held.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/move_batch.h"
#include "routing/cities.h"

/* The two states in which a cutover holds the database's sessions. */
static bool transitional(const struct dbmove_row *r)
{
    return r->state == DBMOVE_CUTTING_OVER || r->state == DBMOVE_REVERTING;
}

/* The city of r folded into key ("" for a whole database's row); false when it folds to nothing. */
static bool row_city_key(const struct dbmove_row *r, char *key, size_t cap)
{
    key[0] = '\0';
    return r->city[0] == '\0' || (city_fold(r->city, key, cap) && key[0] != '\0');
}

/* This pgnear's hold for database (and city key: "" its whole), if it holds its sessions now. */
static struct follow_hold *find_hold(struct dbmove_follow *f, const char *database, const char *key)
{
    for (size_t i = 0; i < FOLLOW_HOLDS; i++)
        if (f->holds[i].used && strcmp(f->holds[i].database, database) == 0 &&
            strcmp(f->holds[i].scope.city_key, key) == 0)
            return &f->holds[i];
    return NULL;
}

/* What a hold is of, for the log: database "db", or city 'c' of database "db". */
static const char *hold_subject(const struct follow_hold *h, char *buf, size_t cap)
{
    if (h->city[0] != '\0')
        snprintf(buf, cap, "city '%s' of database \"%s\"", h->city, h->database);
    else
        snprintf(buf, cap, "database \"%s\"", h->database);
    return buf;
}

bool follow_holding(const struct dbmove_follow *f)
{
    for (size_t i = 0; i < FOLLOW_HOLDS; i++)
        if (f->holds[i].used)
            return true;
    return false;
}

/* A hold ends: its word query abandoned, its pids forgotten, its slot free again. */
static void hold_free(struct follow_hold *h)
{
    if (h->q != NULL)
        pgasync_abandon(h->q);
    if (h->pids_made)
        gate_pids_destroy(&h->pids);
    memset(h, 0, sizeof(*h));
}

const struct region_host *follow_record_host(const struct region *r)
{
    const struct region_host *standby;
    const struct region_host *primary = region_primary(r, &standby);
    return primary != NULL ? primary : standby;
}

/* A query to the leaving region's moves_db; NULL when none can start. */
static struct pgasync *leaving_query(struct follow_hold *h, const char *sql, int n,
                                     const char *const *params, pgasync_done_fn done)
{
    const struct config *cfg = h->f->w->cfg;
    const struct region *r = region_set_find(&cfg->regions, h->leaving);
    const struct region_host *host = r != NULL ? follow_record_host(r) : NULL;
    char conninfo[2048], error[256];
    if (host == NULL ||
        !pgconn_conninfo(cfg, host, cfg->moves_db, FOLLOW_APP_NAME, conninfo, sizeof(conninfo)))
        return NULL;
    return pgasync_query(h->f->w->base, conninfo, sql, n, params, DBMOVE_FOLLOW_TIMEOUT_MS, done, h,
                         error, sizeof(error));
}

/* ---- the end: the word taken back ---- */

/* The word is gone from pgnear_move_holds (or could not be): the hold is over. */
static void word_taken_back(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct follow_hold *h = arg;
    (void)res;
    (void)error;
    (void)server_answered;
    h->q = NULL;
    hold_free(h);
}

/* A row left in pgnear_move_holds would make a later cutover think this pgnear holds. */
static void take_word_back(struct follow_hold *h)
{
    char id[24], peer[16];
    snprintf(id, sizeof(id), "%lld", (long long)h->move_id);
    snprintf(peer, sizeof(peer), "%d", h->f->w->cfg->peer_id);
    const char *params[2] = {id, peer};
    if (h->q != NULL)
        pgasync_abandon(h->q);
    h->q = leaving_query(h, dbmove_hold_drop_sql, 2, params, word_taken_back);
    if (h->q == NULL)
        hold_free(h);
}

/* The gate let the sessions go on: the word goes last. */
static void hold_opened(void *arg)
{
    take_word_back(arg);
}

/* The sessions go on where they are (the cutover did not happen, or the gate never shut). */
static void hold_open(struct follow_hold *h)
{
    if (!h->gate_shut || gate_open(h->f->w, &h->scope, hold_opened, h) != 0) {
        h->gate_shut = false;
        take_word_back(h);
    }
}

/* The held sessions moved (or ended) at the commit: logged, then the gate opens. */
static void sessions_moved(const struct move_result *rows, size_t nrows, bool out_of_memory,
                           void *arg)
{
    struct follow_hold *h = arg;
    size_t moved = 0;
    char subject[2 * DBMOVE_NAME_MAX + 32];
    for (size_t i = 0; i < nrows; i++)
        moved += rows[i].moved;
    log_info(0,
             "%s was cut over to region %s by another pgnear: %zu of this one's "
             "sessions moved there, %zu ended%s",
             hold_subject(h, subject, sizeof(subject)), h->arriving, moved, nrows - moved,
             out_of_memory ? " (some not counted: out of memory)" : "");
    hold_open(h);
}

/* The sessions follow the database where the record now says it lives, or stay. */
static void hold_finish(struct follow_hold *h)
{
    if (!h->gate_shut) {
        take_word_back(h);
        return;
    }
    if (strcasecmp(h->end_home, h->arriving) != 0) {
        char subject[2 * DBMOVE_NAME_MAX + 32];
        log_info(0,
                 "the cutover of %s by another pgnear did not happen: this one's sessions go on "
                 "in region %s",
                 hold_subject(h, subject, sizeof(subject)), h->leaving);
        hold_open(h);
        return;
    }
    struct move_batch_spec spec = {.scope = MOVE_BATCH_DATABASE, .end_the_rest = true};
    snprintf(spec.from, sizeof(spec.from), "%s", h->leaving);
    snprintf(spec.to, sizeof(spec.to), "%s", h->arriving);
    snprintf(spec.database, sizeof(spec.database), "%s", h->database);
    snprintf(spec.city_key, sizeof(spec.city_key), "%s", h->scope.city_key);
    if (move_batch_start(h->f->w, &spec, sessions_moved, h) != 0)
        hold_open(h); /* out of memory: let go; the cutover ended the ones it could */
}

/* The record moved on. */
static void hold_end(struct follow_hold *h, const struct dbmove_row *r)
{
    h->ending = true;
    snprintf(h->end_home, sizeof(h->end_home), "%s", dbmove_home_region(r));
    if (h->closing == NULL && (!h->gate_shut || h->told))
        hold_finish(h);
    /* else the gate's end, or the collecting of the pids, finishes it */
}

/* ---- the beginning: the gate, then the word ---- */

/* The cutover knows now which server processes are this pgnear's held sessions. */
static void word_written(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct follow_hold *h = arg;
    (void)server_answered;
    h->q = NULL;
    if (res == NULL)
        log_warn(0,
                 "could not tell the cutover of database \"%s\" that this pgnear holds its "
                 "sessions: %s",
                 h->database, error ? error : "?");
}

/* The held sessions' server processes, written to the leaving side for the cutover to spare. */
static void pids_read(void *arg)
{
    struct follow_hold *h = arg;
    h->told = true;
    if (h->ending) {
        hold_finish(h);
        return;
    }
    char array[sizeof(h->pids.list) + 2], id[24], version[16], peer[16];
    snprintf(array, sizeof(array), "{%s}", h->pids.list);
    snprintf(id, sizeof(id), "%lld", (long long)h->move_id);
    snprintf(version, sizeof(version), "%d", h->version);
    snprintf(peer, sizeof(peer), "%d", h->f->w->cfg->peer_id);
    const char *params[4] = {id, version, peer, array};
    if (h->pids.overflow ||
        (h->q = leaving_query(h, dbmove_hold_write_sql, 4, params, word_written)) == NULL)
        log_warn(0,
                 "could not tell the cutover of database \"%s\" that this pgnear holds its "
                 "sessions",
                 h->database);
}

/* The gate closed (the sessions held at their boundaries) or gave up within move_timeout. */
static void gate_done(const struct gate_outcome *o, void *arg)
{
    struct follow_hold *h = arg;
    h->closing = NULL;
    if (o->end != GATE_HELD) {
        log_warn(0,
                 "could not hold this pgnear's sessions of database \"%s\" for its cutover "
                 "by another pgnear within move_timeout: %s",
                 h->database, o->busy[0] ? o->busy : "out of memory");
        if (h->ending)
            take_word_back(h);
        return; /* no word: the cutover gives up, and the next record ends this */
    }
    h->gate_shut = true;
    if (h->ending) {
        h->told = true;
        hold_finish(h);
        return;
    }
    char subject[2 * DBMOVE_NAME_MAX + 32];
    log_info(0,
             "%s is being cut over by another pgnear: this one's sessions of it are held (%lld "
             "ms to hold them)",
             hold_subject(h, subject, sizeof(subject)), (long long)o->waited_ms);
    gate_pids_init(&h->pids, &h->scope);
    h->pids_made = true;
    if (dbmove_collect_held(h->f->w, &h->pids, h->leaving, h->database, pids_read, h) != 0)
        log_warn(0, "out of memory: this pgnear's sessions of database \"%s\" are held, untold",
                 h->database);
}

/* A cutover runs elsewhere: this pgnear closes its gate for the database, as that one did. */
static void hold_begin(struct dbmove_follow *f, const struct config *cfg,
                       const struct dbmove_row *r)
{
    struct follow_hold *h = NULL;
    for (size_t i = 0; i < FOLLOW_HOLDS && h == NULL; i++)
        if (!f->holds[i].used)
            h = &f->holds[i];
    if (h == NULL)
        return;
    memset(h, 0, sizeof(*h));
    h->used = true;
    h->f = f;
    snprintf(h->database, sizeof(h->database), "%s", r->database);
    snprintf(h->city, sizeof(h->city), "%s", r->city);
    h->move_id = r->id;
    h->version = r->version;
    bool back = r->state == DBMOVE_REVERTING;
    snprintf(h->leaving, sizeof(h->leaving), "%s", back ? r->to_region : r->from_region);
    snprintf(h->arriving, sizeof(h->arriving), "%s", back ? r->from_region : r->to_region);
    h->scope.all = true;
    snprintf(h->scope.database, sizeof(h->scope.database), "%s", r->database);
    h->scope.reason = HOLD_DBMOVE;
    /* A city's cutover: only the sessions of that city (the others never wait). */
    if (!row_city_key(r, h->scope.city_key, sizeof(h->scope.city_key))) {
        hold_free(h);
        return;
    }
    h->closing = gate_close(f->w, &h->scope, cfg->move_timeout_ms, NULL, gate_done, h);
    if (h->closing == NULL)
        hold_free(h);
}

void follow_hold_round(struct dbmove_follow *f, const struct config *cfg,
                       const struct dbmove_row *r)
{
    char key[sizeof(f->holds[0].scope.city_key)];
    if (f->starting || cfg->peer_id == 0 || !row_city_key(r, key, sizeof(key)))
        return;
    struct follow_hold *h = find_hold(f, r->database, key);
    if (h != NULL && !h->ending && (h->move_id != r->id || h->version != r->version)) {
        hold_end(h, r);
        return;
    }
    if (h == NULL && transitional(r) && !placement_local(&f->w->shared->placement, r->database))
        hold_begin(f, cfg, r);
}

void follow_holds_free(struct dbmove_follow *f)
{
    for (size_t i = 0; i < FOLLOW_HOLDS; i++)
        if (f->holds[i].used)
            hold_free(&f->holds[i]);
}
