/*
 * job_show.c — SHOW MOVES: every region's record of moves, merged (the
 * newest state of each move wins), and the progress of each move that
 * copies or streams (job.h).  A region without a primary up is passed
 * over, with a NOTICE: the other region of its moves holds them too.
 */
#include "proxy/dbmove/job_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/base/config.h"
#include "routing/region.h"

/* The steps' places in show_steps: a step that repeats sets the next one by name. */
enum { SHOW_BEGIN, SHOW_READ_REGION, SHOW_PROGRESS, SHOW_LAG, SHOW_END };

/* A table counts as copied once ready ('r'), as CUTOVER counts it: 's' (its copy done, the
 * changes since not yet applied) made SHOW MOVES say streaming while CUTOVER said copying. */
static const char progress_sql[] =
    "SELECT count(*) FILTER (WHERE r.srsubstate = 'r'), count(r.srrelid),"
    " (SELECT extract(epoch FROM now() - max(st.latest_end_time)) FROM pg_stat_subscription st"
    "   WHERE st.subname = $1 AND st.relid IS NULL)"
    " FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid"
    " WHERE s.subname = $1";

static const char lag_sql[] =
    "SELECT (SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8"
    "   FROM pg_replication_slots WHERE slot_name = $1),"
    " (SELECT pg_database_size(oid) FROM pg_database WHERE datname = $2)";

/* Merges what one region records into the rows: a move's newest state wins. */
static int merge_records(struct dbmove_job *j)
{
    for (size_t i = 0; i < j->nrecords; i++) {
        const struct dbmove_row *r = &j->records[i];
        size_t k = 0;
        while (k < j->nrows && j->rows[k].row.id != r->id)
            k++;
        if (k == j->nrows) {
            struct dbmove_status *grown = realloc(j->rows, (j->nrows + 1) * sizeof(*grown));
            if (grown == NULL) {
                job_problem(j, "53200", "out of memory");
                return -1;
            }
            j->rows = grown;
            j->nrows++;
            j->rows[k] = (struct dbmove_status){.tables_copied = -1,
                                                .tables_total = -1,
                                                .bytes = -1,
                                                .lag_bytes = -1,
                                                .lag_seconds = -1};
        } else if (j->rows[k].row.updated_at_us >= r->updated_at_us) {
            continue;
        }
        j->rows[k].row = *r;
        j->rows[k].state = dbmove_state_name(r->state);
    }
    return 0;
}

/* A region's rows that cannot be read are told as a NOTICE: SHOW MOVES answers all the same. */
static int take_region_records(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    char why[256];
    free(j->records);
    j->records = NULL;
    j->nrecords = 0;
    if (res == NULL && sqlstate != NULL && strcmp(sqlstate, "42P01") == 0 && !j->records_old) {
        j->records_old = true; /* an older pgnear's record: without the city moves' table */
        j->step = SHOW_READ_REGION;
        return 0;
    }
    j->records_old = false;
    if (res != NULL && dbmove_rows_parse(res, &j->records, &j->nrecords, why, sizeof(why)) != 0)
        job_notice(j, "region \"%s\": %s", j->cfg->regions.items[j->region_index].name, why);
    else
        merge_records(j);
    if (++j->region_index < j->cfg->regions.count)
        j->step = SHOW_READ_REGION; /* the next region */
    return 0;
}

/* Each region's record in turn, from its primary: a standby region's is its primary's. */
static int show_read_region(struct dbmove_job *j)
{
    const struct region *r = &j->cfg->regions.items[j->region_index];
    const struct region_host *h = region_primary(r, NULL);
    if (h == NULL || !job_conninfo(j, h, j->cfg->moves_db, j->src_ctl, sizeof(j->src_ctl))) {
        /* A region of standbys holds its primary's record, read in the primary's region. */
        if (h != NULL || region_followed(&j->cfg->regions, r) == NULL)
            job_notice(j, "region \"%s\" has no primary up: its record of moves is not read",
                       r->name);
        j->failed = false;
        if (++j->region_index < j->cfg->regions.count)
            j->step = SHOW_READ_REGION;
        return JOB_NEXT;
    }
    char what[160];
    snprintf(what, sizeof(what), "reading the record of moves of region \"%s\"", r->name);
    return job_query(j, j->src_ctl, what,
                     j->records_old ? dbmove_select_database_sql : dbmove_select_sql, 0, NULL,
                     take_region_records, "42P01 3D000");
}

/* The next row that copies or streams, from status_index on; false when none is left. */
static bool next_live_row(struct dbmove_job *j)
{
    while (j->status_index < j->nrows && j->rows[j->status_index].row.state != DBMOVE_COPYING)
        j->status_index++;
    return j->status_index < j->nrows;
}

/* A count the server may not know yet (NULL) reads as fallback. */
static int64_t int_or(const PGresult *res, int col, int64_t fallback)
{
    return PQgetisnull(res, 0, col) ? fallback : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

/* The subscription's progress on the target: tables copied of the total, and its lag. */
static int take_progress(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    struct dbmove_status *st = &j->rows[j->status_index];
    (void)sqlstate;
    if (res != NULL && PQntuples(res) == 1) {
        st->tables_copied = int_or(res, 0, -1);
        st->tables_total = int_or(res, 1, -1);
        st->lag_seconds = PQgetisnull(res, 0, 2) ? -1 : strtod(PQgetvalue(res, 0, 2), NULL);
        if (st->tables_total > 0 && st->tables_copied == st->tables_total)
            st->state = dbmove_state_name(DBMOVE_STREAMING);
    }
    return 0;
}

/* The slot's lag behind the source's WAL, and the source database's size. */
static int take_lag(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    struct dbmove_status *st = &j->rows[j->status_index];
    (void)sqlstate;
    if (res != NULL && PQntuples(res) == 1) {
        st->lag_bytes = int_or(res, 0, -1);
        st->bytes = int_or(res, 1, -1);
    }
    j->status_index++;
    if (next_live_row(j))
        j->step = SHOW_PROGRESS; /* the progress of the next one */
    return 0;
}

/* Where a row's move runs: its regions' primaries; false when either has none up. */
static bool row_connections(struct dbmove_job *j, const struct dbmove_row *m)
{
    const struct region_host *from =
        region_primary(region_set_find(&j->cfg->regions, m->from_region), NULL);
    const struct region_host *to =
        region_primary(region_set_find(&j->cfg->regions, m->to_region), NULL);
    return from != NULL && to != NULL &&
           job_conninfo(j, from, j->cfg->moves_db, j->src_ctl, sizeof(j->src_ctl)) &&
           job_conninfo(j, to, m->database, j->dst_db, sizeof(j->dst_db));
}

/* Only a move that copies needs the progress queries. */
static bool any_live_row(const struct dbmove_job *j)
{
    for (size_t i = 0; i < j->nrows; i++)
        if (j->rows[i].row.state == DBMOVE_COPYING)
            return true;
    return false;
}

/* The next copying move's progress, read on its target; a move whose regions are down is passed. */
static int show_progress(struct dbmove_job *j)
{
    if (!next_live_row(j))
        return JOB_NEXT;
    const struct dbmove_row *m = &j->rows[j->status_index].row;
    char name[64];
    if (!row_connections(j, m)) {
        j->failed = false;
        j->status_index++;
        if (next_live_row(j))
            j->step = SHOW_PROGRESS; /* this step again, for the next one */
        else
            j->step = SHOW_END; /* no lag to read either */
        return JOB_NEXT;
    }
    dbmove_subscription_name(m->id, name, sizeof(name));
    const char *params[1] = {name};
    return job_query(j, j->dst_db, "reading the copy's progress on the target", progress_sql, 1,
                     params, take_progress, "3D000");
}

/* Then its slot's lag, read on the source. */
static int show_lag(struct dbmove_job *j)
{
    const struct dbmove_row *m = &j->rows[j->status_index].row;
    char name[64];
    dbmove_subscription_name(m->id, name, sizeof(name));
    const char *params[2] = {name, m->database};
    return job_query(j, j->src_ctl, "reading the slot's lag on the source", lag_sql, 2, params,
                     take_lag, "3D000");
}

static void show_failure_goes_on(struct dbmove_job *j);

/* The first step: SHOW MOVES answers even when a region fails to (a NOTICE says which). */
static int show_begin(struct dbmove_job *j)
{
    j->on_failure = show_failure_goes_on;
    return JOB_NEXT;
}

/* A query that failed: a NOTICE, then the next region or move. */
static void show_failure_goes_on(struct dbmove_job *j)
{
    job_notice(j, "%s (%s)", j->problem.message, j->problem.detail);
    j->failed = false;
    if (j->step == SHOW_READ_REGION + 1) {
        if (++j->region_index < j->cfg->regions.count)
            j->step = SHOW_READ_REGION;
    } else {
        j->status_index++;
        j->step = next_live_row(j) ? SHOW_PROGRESS : SHOW_END;
    }
    j->on_failure = show_failure_goes_on;
    job_next(j);
}

static const struct job_step show_steps[] = {
    [SHOW_BEGIN] = {NULL, NULL, show_begin},
    [SHOW_READ_REGION] = {NULL, NULL, show_read_region},
    [SHOW_PROGRESS] = {NULL, any_live_row, show_progress},
    [SHOW_LAG] = {NULL, any_live_row, show_lag},
    [SHOW_END] = {NULL, NULL, NULL},
};

static const struct job_step *const show_chain[] = {show_steps, NULL};
const struct job_kind job_show_kind = {show_chain, NULL, NULL};
