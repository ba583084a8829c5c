/*
 * run_upkeep.c — after a run that ended well, a database homed by city
 * whose cities live in other regions is kept in step (runner.h's struct
 * migrate_upkeep): a step may have made a table without the column, which
 * the origin must publish in pgnear_reference and the regions of cities
 * must follow and refuse to the application, or a homed table, which the
 * origin's city trigger must guard.  Three passes over the regions, each
 * region under its migration lock and on fresh connections (autocommit:
 * ALTER SUBSCRIPTION ... REFRESH PUBLICATION cannot run in a transaction
 * block):
 *
 *   READ     each region of cities: its tables without the column, the
 *            ones every such region has kept (run->up.present);
 *   ORIGIN   where the database lives: what is missing, read for the
 *            NOTICE, then one DO block: the city trigger on the homed
 *            tables without it (where pgnear_move.refused exists), the
 *            tables of present not yet in pgnear_reference added to it;
 *   CITIES   each region of cities: the refusal made on the tables
 *            without the column that lack it (city_sql.h, as MOVE CITY
 *            makes it), those that its feed starts to follow emptied as
 *            the replication's role (the copy brings the origin's rows:
 *            a step that filled the table ran here too), then each
 *            subscription following pgnear_reference refreshed with
 *            copy_data (a dropped table leaves it there).
 *
 * Every statement is idempotent: a second upkeep finds nothing missing.
 */
#include "proxy/migrate/run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/clock.h"
#include "protocol/sql_quote.h"
#include "proxy/base/config.h"
#include "proxy/migrate/city_sql.h"
#include "routing/region.h"

#define UPKEEP_TRIES_MS 10000 /* a table's writers keep its lock: tried again for this long */
#define UPKEEP_RETRY_MS 200

#define TABLE_NAME "format('%%I.%%I', n.nspname, c.relname)"
/* The table is a line of %2$s. */
#define IN_LIST        " AND " TABLE_NAME " = ANY (string_to_array(%2$s, E'\\n'))"
#define AS_LINES(what) "string_agg(" what ", E'\\n' ORDER BY n.nspname, c.relname)"

/* The tables without the column.  %1$s the column. */
#define REFERENCE_TABLES CITY_TABLES_WITH_COLUMN("%1$s") CITY_REFERENCE_ONLY

/* READ: a region's tables without the column, a line each. */
#define READ_SQL "SELECT coalesce(" AS_LINES(TABLE_NAME) ", '')" REFERENCE_TABLES

/*
 * ORIGIN, read: the tables without the column to publish, those left
 * out (a region of cities lacks them), the homed tables to guard, and
 * what pgnear_reference holds.  %1$s the column, %2$s present.
 */
#define UNPUBLISHED                                                                                \
    " AND EXISTS (SELECT FROM pg_publication WHERE pubname = '" CITY_REFERENCE_PUBLICATION "')"    \
    " AND NOT EXISTS (SELECT FROM pg_publication_tables p WHERE p.pubname = "                      \
    "'" CITY_REFERENCE_PUBLICATION "' AND p.schemaname = n.nspname AND p.tablename = c.relname)"
#define UNGUARDED                                                                                  \
    " AND a.attnum IS NOT NULL AND to_regclass('" CITY_REFUSED_TABLE "') IS NOT NULL"              \
    " AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = c.oid"                            \
    " AND g.tgname = '" CITY_TRIGGER "')"
#define TO_PUBLISH "(SELECT " AS_LINES(TABLE_NAME) REFERENCE_TABLES UNPUBLISHED IN_LIST ")"
#define LEFT_OUT                                                                                   \
    "(SELECT " AS_LINES(TABLE_NAME) REFERENCE_TABLES UNPUBLISHED " AND NOT (TRUE" IN_LIST "))"
#define TO_GUARD "(SELECT " AS_LINES(TABLE_NAME) CITY_TABLES_WITH_COLUMN("%1$s") UNGUARDED ")"
#define PUBLISHED                                                                                  \
    "(SELECT string_agg(format('%%I.%%I', p.schemaname, p.tablename), E'\\n')"                     \
    " FROM pg_publication_tables p WHERE p.pubname = '" CITY_REFERENCE_PUBLICATION "')"
#define ORIGIN_READ_SQL "SELECT " TO_PUBLISH ", " LEFT_OUT ", " TO_GUARD ", " PUBLISHED

/* ORIGIN, made: %1$s the column, %2$s present. */
#define ORIGIN_BLOCK                                                                               \
    "DO $pgnear$ DECLARE t record; BEGIN\n"                                                        \
    "PERFORM set_config('lock_timeout', '" CITY_LOCK_WAIT "', true);\n"                            \
    "IF to_regclass('" CITY_REFUSED_TABLE "') IS NOT NULL THEN\n" CITY_TRIGGERS_LOOP "END IF;\n"   \
    "IF EXISTS (SELECT FROM pg_publication WHERE pubname = '" CITY_REFERENCE_PUBLICATION "')"      \
    " THEN\n" CITY_PUBLISH_REFERENCES("%1$s", IN_LIST) "END IF; END $pgnear$"

/*
 * CITIES, read: the subscriptions that follow pgnear_reference, the
 * tables of the origin's publication (%2$s) that none of them follows
 * yet, and the tables without the column that lack the refusal.
 */
#define FEED_NAMES "(SELECT string_agg(s.subname, E'\\n' ORDER BY s.subname)" CITY_FEEDS ")"
#define UNFOLLOWED                                                                                 \
    " AND NOT EXISTS (SELECT FROM pg_subscription_rel r JOIN pg_subscription s"                    \
    " ON s.oid = r.srsubid WHERE r.srrelid = c.oid"                                                \
    " AND '" CITY_REFERENCE_PUBLICATION "' = ANY (s.subpublications))"
#define UNREFUSED                                                                                  \
    " AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = c.oid"                            \
    " AND g.tgname = '" CITY_REFERENCE_TRIGGER "')"
#define TO_COPY         "(SELECT " AS_LINES(TABLE_NAME) REFERENCE_TABLES IN_LIST UNFOLLOWED ")"
#define TO_REFUSE       "(SELECT " AS_LINES(TABLE_NAME) REFERENCE_TABLES UNREFUSED ")"
#define CITIES_READ_SQL "SELECT " FEED_NAMES ", " TO_COPY ", " TO_REFUSE

/* CITIES: the tables the feed starts to follow (%2$s) emptied, as the replication's role. */
#define EMPTY_BLOCK CITY_EMPTY_REFERENCES_BLOCK("%1$s", IN_LIST)

static void region_locked(struct migrate_run *run);

void run_upkeep_free(struct migrate_run *run)
{
    struct run_upkeep *up = &run->up;
    free(up->present);
    free(up->published);
    free(up->to_copy);
    free(up->to_refuse);
    free(up->sql);
    free(up->list_lit);
    up->present = up->published = up->to_copy = up->to_refuse = up->sql = up->list_lit = NULL;
}

/* The column's and list's (NULL: none) literals, for build; false when out of memory. */
static bool quote_args(struct migrate_run *run, const char *list)
{
    struct run_upkeep *up = &run->up;
    const char *text = list != NULL ? list : "";
    size_t cap = sql_quote_literal_len(text, strlen(text)) + 1;
    free(up->list_lit);
    up->list_lit = malloc(cap);
    return up->list_lit != NULL && sql_quote_literal_into(up->list_lit, cap, text) &&
           sql_quote_literal_into(up->column_lit, sizeof(up->column_lit), up->what.column);
}

/* run->up.sql = fmt with its arguments; false when out of memory. */
__attribute__((format(printf, 2, 3))) static bool build(struct migrate_run *run, const char *fmt,
                                                        ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    free(run->up.sql);
    run->up.sql = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (run->up.sql != NULL)
        vsnprintf(run->up.sql, (size_t)n + 1, fmt, again);
    va_end(again);
    va_end(ap);
    return run->up.sql != NULL;
}

static void out_of_memory(struct migrate_run *run)
{
    pg_error_set(&run->out.err, "53200", "out of memory");
    run_fail(run);
}

/* The upkeep stops with the server's error while doing what; the steps stay as they ran. */
static void upkeep_failed(struct migrate_run *run, const char *doing, const char *error)
{
    const struct pgasync *q = run->conns[run->conn].q;
    const char *sqlstate = q != NULL ? pgasync_error_sqlstate(q) : NULL;
    const char *primary = q != NULL ? pgasync_error_field(q, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pg_error_set(&run->out.err, sqlstate != NULL ? sqlstate : "08006",
                 "could not keep the tables of database \"%s\" in step across its cities' "
                 "regions in region \"%s\": %s",
                 run->cfg->migrations_db, run->region->name, doing);
    pg_error_detail(&run->out.err,
                    "%s. The migration's steps ran and stay as they are (%zu by this run); only "
                    "the upkeep after them stopped.",
                    primary != NULL ? primary
                    : error != NULL ? error
                                    : "no result",
                    run->out.applied);
    pg_error_hint(&run->out.err,
                  "Fix the cause, then run MIGRATE UP: with nothing to run, it does the upkeep "
                  "again.");
    run_fail(run);
}

/* A lock past CITY_LOCK_WAIT (55P03) before the upkeep's deadline: the query again, later. */
static bool tried_again(struct migrate_run *run, run_result_fn fn)
{
    const struct pgasync *q = run->conns[run->conn].q;
    const char *sqlstate = q != NULL ? pgasync_error_sqlstate(q) : NULL;
    if (sqlstate == NULL || strcmp(sqlstate, "55P03") != 0 || monotonic_ms() >= run->up.deadline_ms)
        return false;
    run_send(run, CONN_STEP, run->up.sql, 0, fn, UPKEEP_RETRY_MS);
    return true;
}

/* The lines of a (NULL: none) that are lines of b too, kept in a. */
static void keep_common_lines(char *a, const char *b)
{
    size_t out = 0, blen = strlen(b);
    for (char *line = a; line != NULL && *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        bool found = false;
        for (const char *p = b; !found && p < b + blen;) {
            const char *e = strchr(p, '\n');
            size_t plen = e != NULL ? (size_t)(e - p) : strlen(p);
            found = plen == len && memcmp(p, line, len) == 0;
            p += plen + 1;
        }
        if (found) {
            if (out > 0)
                a[out++] = '\n';
            memmove(a + out, line, len);
            out += len;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    if (a != NULL)
        a[out] = '\0';
}

/* "a, b" of the lines of text, cut to cap. */
static const char *listed(const char *text, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *p = text; *p != '\0' && n + 3 < cap; p++) {
        if (*p == '\n') {
            buf[n++] = ',';
            buf[n++] = ' ';
        } else
            buf[n++] = *p;
    }
    buf[n] = '\0';
    return buf;
}

/* A column of the one row, "" when NULL. */
static const char *value(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col);
}

/* The region is done: its lock released by the next one's start (ACT_UPKEEP). */
static void region_done(struct migrate_run *run)
{
    if (run->up.note[0] != '\0')
        run_note(run, "%s", run->up.note);
    run->up.ri++;
    run_defer(run, ACT_UPKEEP, 0);
}

/* ---- READ ---- */

static void on_read(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL || PQntuples(res) != 1) {
        upkeep_failed(run, "reading its tables without the city column", error);
        return;
    }
    if (run->up.present == NULL) {
        if ((run->up.present = strdup(value(res, 0))) == NULL) {
            out_of_memory(run);
            return;
        }
    } else {
        keep_common_lines(run->up.present, value(res, 0));
    }
    run->up.note[0] = '\0';
    region_done(run);
}

/* ---- ORIGIN ---- */

static void on_origin_made(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL && !tried_again(run, on_origin_made))
        upkeep_failed(run, "publishing the tables without the city column, guarding the others",
                      error);
    else if (res != NULL)
        region_done(run);
}

/* The region's NOTICE, begun: "region ...: database ... kept in step with what:". */
static void note_begin(struct migrate_run *run, const char *with)
{
    snprintf(run->up.note, sizeof(run->up.note),
             "region \"%s\": database \"%s\" kept in step with %s:", run->region->name,
             run->cfg->migrations_db, with);
}

/* A part of the NOTICE, "label a, b" of the lines (none: nothing), after "; " but the first. */
static void note_part(struct run_upkeep *up, const char *label, const char *lines)
{
    char list[400];
    size_t n = strlen(up->note);
    if (lines == NULL || n + 1 >= sizeof(up->note))
        return;
    snprintf(up->note + n, sizeof(up->note) - n, "%s %s%s", up->note[n - 1] == ':' ? "" : ";",
             label, listed(lines, list, sizeof(list)));
}

/* The origin's NOTICE: what is published, guarded, and left out; or that nothing was missing. */
static void origin_note(struct migrate_run *run, const char *publish, const char *guard,
                        const char *left_out)
{
    note_begin(run, "its cities' regions");
    note_part(&run->up, "published in " CITY_REFERENCE_PUBLICATION ": ", *publish ? publish : NULL);
    note_part(&run->up, CITY_TRIGGER " made on: ", *guard ? guard : NULL);
    note_part(&run->up, "not published while a region of its cities lacks them: ",
              *left_out ? left_out : NULL);
    note_part(&run->up, "nothing was missing", !*publish && !*guard && !*left_out ? "" : NULL);
}

static void on_origin_read(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 4) {
        upkeep_failed(run, "reading what its tables lack", error);
        return;
    }
    const char *publish = value(res, 0), *guard = value(res, 2), *now = value(res, 3);
    snprintf(run->up.origin, sizeof(run->up.origin), "%s", run->region->name);
    free(run->up.published);
    size_t len = strlen(now) + strlen(publish) + 2;
    if ((run->up.published = malloc(len)) == NULL) {
        out_of_memory(run);
        return;
    }
    snprintf(run->up.published, len, "%s%s%s", now, *now && *publish ? "\n" : "", publish);
    origin_note(run, publish, guard, value(res, 1));
    if (*publish == '\0' && *guard == '\0') {
        region_done(run);
        return;
    }
    if (!quote_args(run, run->up.present) ||
        !build(run, ORIGIN_BLOCK, run->up.column_lit, run->up.list_lit)) {
        out_of_memory(run);
        return;
    }
    run_send(run, CONN_STEP, run->up.sql, 0, on_origin_made, 0);
}

/* ---- CITIES ---- */

static void city_next(struct migrate_run *run);

/* What query k of a region of cities does, for its error. */
static const char *city_doing(const struct migrate_run *run)
{
    return run->up.k == 0   ? "refusing writes to the tables without the city column"
           : run->up.k == 1 ? "emptying the tables its feed starts to follow"
                            : "refreshing its feed of " CITY_REFERENCE_PUBLICATION;
}

static void on_city_query(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL) {
        if (!tried_again(run, on_city_query))
            upkeep_failed(run, city_doing(run), error);
        return;
    }
    run->up.k++;
    city_next(run);
}

/* Whether query k of a region of cities has work: the refusal, the emptying, a feed's refresh. */
static bool city_wants(const struct run_upkeep *up)
{
    if (up->k == 0)
        return *up->to_refuse != '\0';
    if (up->k == 1)
        return *up->to_copy != '\0' && up->nfeeds > 0;
    return up->k - 2 < up->nfeeds;
}

/* Query k of a region of cities into run->up.sql; false when out of memory. */
static bool city_build(struct migrate_run *run)
{
    struct run_upkeep *up = &run->up;
    char origin[2 * sizeof(up->origin) + 8], name[2 * sizeof(up->feeds[0]) + 4];
    if (up->k == 0)
        return quote_args(run, NULL) &&
               sql_quote_literal_into(origin, sizeof(origin), up->origin) &&
               build(run, CITY_REFERENCE_TRIGGERS_BLOCK, up->column_lit, origin);
    if (up->k == 1)
        return quote_args(run, up->to_copy) &&
               build(run, EMPTY_BLOCK, up->column_lit, up->list_lit);
    return sql_quote_ident_into(name, sizeof(name), up->feeds[up->k - 2]) &&
           build(run, "ALTER SUBSCRIPTION %s REFRESH PUBLICATION WITH (copy_data = true)", name);
}

static void city_next(struct migrate_run *run)
{
    struct run_upkeep *up = &run->up;
    while (up->k < 2 + up->nfeeds && !city_wants(up))
        up->k++;
    if (up->k == 2 + up->nfeeds) {
        region_done(run);
        return;
    }
    if (!city_build(run)) {
        out_of_memory(run);
        return;
    }
    run_send(run, CONN_STEP, up->sql, 0, on_city_query, 0);
}

/* The subscriptions of lines into feeds. */
static void take_feeds(struct run_upkeep *up, const char *lines)
{
    up->nfeeds = 0;
    for (const char *p = lines; *p != '\0' && up->nfeeds < UPKEEP_FEEDS_MAX;) {
        size_t len = strcspn(p, "\n");
        snprintf(up->feeds[up->nfeeds++], sizeof(up->feeds[0]), "%.*s", (int)len, p);
        p += len + (p[len] == '\n');
    }
}

/* A region of cities' NOTICE: the refusals made, the feed refreshed and what it copies. */
static void cities_note(struct migrate_run *run, const char *feeds)
{
    struct run_upkeep *up = &run->up;
    char with[100], label[200];
    snprintf(with, sizeof(with), "region \"%s\"", up->origin);
    note_begin(run, with);
    note_part(up, "writes refused to its copies of ", *up->to_refuse ? up->to_refuse : NULL);
    if (up->nfeeds == 0) {
        note_part(up, "no subscription follows " CITY_REFERENCE_PUBLICATION " here", "");
        return;
    }
    snprintf(label, sizeof(label), "refreshed its feed %.100s, %s", feeds,
             *up->to_copy ? "which copies " : "nothing new to copy");
    note_part(up, label, up->to_copy);
}

static void on_cities_read(struct migrate_run *run, const PGresult *res, const char *error)
{
    struct run_upkeep *up = &run->up;
    char feeds[200];
    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 3) {
        upkeep_failed(run, "reading its feed and its tables without the city column", error);
        return;
    }
    free(up->to_copy);
    free(up->to_refuse);
    up->to_copy = strdup(value(res, 1));
    up->to_refuse = strdup(value(res, 2));
    if (up->to_copy == NULL || up->to_refuse == NULL) {
        out_of_memory(run);
        return;
    }
    take_feeds(up, value(res, 0));
    cities_note(run, listed(value(res, 0), feeds, sizeof(feeds)));
    up->k = 0;
    city_next(run);
}

/* ---- the passes ---- */

/* The region's lock is taken: the pass's first query. */
static void region_locked(struct migrate_run *run)
{
    struct run_upkeep *up = &run->up;
    bool built = false;
    run_result_fn fn = on_read;
    up->deadline_ms = monotonic_ms() + UPKEEP_TRIES_MS;
    up->note[0] = '\0';
    if (up->pass == UPKEEP_READ) {
        built = quote_args(run, NULL) && build(run, READ_SQL, up->column_lit);
    } else if (up->pass == UPKEEP_ORIGIN) {
        built = quote_args(run, up->present) &&
                build(run, ORIGIN_READ_SQL, up->column_lit, up->list_lit);
        fn = on_origin_read;
    } else {
        built = quote_args(run, up->published) &&
                build(run, CITIES_READ_SQL, up->column_lit, up->list_lit);
        fn = on_cities_read;
    }
    if (!built) {
        out_of_memory(run);
        return;
    }
    run_send(run, CONN_STEP, up->sql, 0, fn, 0);
}

static const struct region_subset *pass_regions(const struct migrate_run *run)
{
    return run->up.pass == UPKEEP_ORIGIN ? &run->up.what.origin : &run->up.what.cities;
}

void run_upkeep_start(struct migrate_run *run)
{
    if (!run->up.wanted) {
        run_finish(run);
        return;
    }
    run->up.running = true;
    run->up.pass = UPKEEP_READ;
    run->up.ri = 0;
    snprintf(run->up.origin, sizeof(run->up.origin), "%s",
             run->up.what.origin.count > 0 ? run->up.what.origin.items[0]->name : "");
    run_defer(run, ACT_UPKEEP, 0);
}

void run_upkeep_next(struct migrate_run *run)
{
    const struct config *cfg = run->cfg;
    for (;;) {
        if (run->up.ri == cfg->regions.count) {
            run->up.pass++;
            run->up.ri = 0;
        }
        if (run->up.pass == UPKEEP_END) {
            run_finish(run);
            return;
        }
        run->region = &cfg->regions.items[cfg->migration_order_index[run->up.ri]];
        if (!region_subset_has(pass_regions(run), run->region)) {
            run->up.ri++;
            continue;
        }
        int open = run_open_region(run);
        if (open < 0)
            return;
        if (open > 0) {
            run_lock_region(run, region_locked);
            return;
        }
        run->up.ri++; /* a follower: its standbys replay what its primary's region does */
    }
}
