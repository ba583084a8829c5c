/*
 * job_city.c — MOVE CITY 'c' OF DATABASE db: a database move restricted to
 * one city's rows, run by the same engine and the same chains as MOVE
 * DATABASE (job_city_steps.h); here are the steps of its own.
 *
 * The database is homed by a column ([database] home_by): a table that
 * has it is homed (its rows live in their city's home), one without it is
 * a reference table (it lives where the database lives).  The move
 * publishes, at the source, the homed tables with a row filter (column =
 * the city as the admin wrote it: the rows hold the application's
 * spelling, which routing compares folded but a row filter cannot), and
 * the reference tables whole in a publication of their own that the
 * target region goes on following, so that the city's sessions there
 * read them too (job_city_join.c).  Before anything is made, the source's tables are
 * checked: a homed table's replica identity must hold the column (else
 * PostgreSQL refuses its UPDATEs and DELETEs once the filter publishes
 * them), no foreign key may leave the city (a homed table's key must pair
 * its home column with the referenced table's; a reference table's key to
 * a homed table points at other cities' rows), and no homed table draws
 * ids from a sequence (sequences are not replicated: two regions would
 * make the same ids).
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/sql_quote.h"
#include "proxy/base/config.h"
#include "proxy/migrate/history.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "routing/cities.h"
#include "routing/region.h"

/* The source's tables that have the home column ($1): a CTE the checks read. */
#define HOMED_TABLES                                                                               \
    "WITH homed AS (SELECT c.oid, n.nspname, c.relname, c.relreplident, "                          \
    "a.attnum" JOB_TABLES_WITH_COLUMN("$1") " AND a.attnum IS NOT NULL)"

/*
 * The homed tables, how many; those whose identity lacks the column; keys
 * leaving; sequences; partitioned tables (JOB_TABLES_WITH_COLUMN passes
 * them over: their rows would be neither copied nor refused).
 */
static const char city_facts_sql[] = HOMED_TABLES
    " SELECT (SELECT count(*) FROM homed),"
    " (SELECT string_agg(format('%I.%I', h.nspname, h.relname), ', '"
    "   ORDER BY h.nspname, h.relname) FROM homed h"
    "   WHERE h.relreplident <> 'f' AND NOT EXISTS (SELECT 1 FROM pg_index i"
    "     WHERE i.indrelid = h.oid AND h.attnum = ANY (i.indkey)"
    "       AND CASE h.relreplident WHEN 'd' THEN i.indisprimary"
    "         WHEN 'i' THEN i.indisreplident ELSE false END)),"
    " (SELECT string_agg(format('%I on %s: %s', k.conname, k.conrelid::regclass,"
    "   pg_get_constraintdef(k.oid)), '; ' ORDER BY k.conname)"
    "   FROM pg_constraint k JOIN homed f ON f.oid = k.confrelid"
    "   LEFT JOIN homed r ON r.oid = k.conrelid"
    "   WHERE k.contype = 'f' AND (r.oid IS NULL OR NOT EXISTS (SELECT 1"
    "     FROM unnest(k.conkey, k.confkey) p(mine, theirs)"
    "     WHERE p.mine = r.attnum AND p.theirs = f.attnum))),"
    " (SELECT string_agg(format('%I.%I.%I', h.nspname, h.relname, a.attname), ', '"
    "   ORDER BY h.nspname, h.relname, a.attname) FROM homed h"
    "   JOIN pg_attribute a ON a.attrelid = h.oid AND a.attnum > 0 AND NOT a.attisdropped"
    "   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    "   WHERE a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) ~ '^nextval\\('),"
    " (SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY n.nspname, c.relname)"
    "   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    "   WHERE c.relkind = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema'))";

/* Each homed table and how many of its rows the filter takes ($1 the column, $2 the city). */
static const char city_rows_sql[] = HOMED_TABLES
    " SELECT format('%I.%I', h.nspname, h.relname), (xpath('/row/n/text()', query_to_xml("
    "   format('SELECT count(*) AS n FROM %I.%I WHERE %I = %L', h.nspname, h.relname, $1::text,"
    "     $2::text), false, true, '')))[1]::text::int8 FROM homed h ORDER BY 1";

bool job_city_homed(struct dbmove_job *j)
{
    const char *column = config_database_home_by(j->cfg, j->req.database);
    if (column == NULL) {
        job_problem(j, "55000", "database \"%s\" is not homed by city", j->req.database);
        pg_error_detail(&j->problem, "MOVE CITY moves the rows of one city of a database whose "
                                     "[database] section names the column that homes them.");
        pg_error_hint(&j->problem,
                      "Set home_by = the column (beside regions) in its [database "
                      "%s] section, or move the whole database (MOVE DATABASE).",
                      j->req.database);
        return false;
    }
    /* The city is written into a DO block's body as a literal: it may not close that body. */
    if (strstr(j->req.city, "$pgnear$") != NULL || strlen(j->req.city) == 0) {
        job_problem(j, "22023", "invalid city name: '%s'", j->req.city);
        return false;
    }
    snprintf(j->city->column, sizeof(j->city->column), "%s", column);
    return true;
}

/* The home the follower last read for the job's city: its region, or "" (the database's). */
static void city_home(struct dbmove_job *j, char *region, size_t cap)
{
    struct placement_home *homes = calloc(PLACEMENT_HOMES_MAX, sizeof(*homes));
    char key[PLACEMENT_KEY_MAX + 1];
    region[0] = '\0';
    if (homes == NULL || !city_fold(j->req.city, key, sizeof(key))) {
        free(homes);
        return;
    }
    size_t n = placement_homes(&j->home->shared->placement, homes, PLACEMENT_HOMES_MAX);
    for (size_t i = 0; i < n; i++)
        if (strcmp(homes[i].database, j->req.database) == 0 && homes[i].city[0] != '\0' &&
            strcmp(homes[i].key, key) == 0)
            snprintf(region, cap, "%s", homes[i].region);
    free(homes);
}

bool job_city_may_leave(struct dbmove_job *j)
{
    char home[DBMOVE_NAME_MAX + 1];
    city_home(j, home, sizeof(home));
    if (home[0] != '\0' && strcmp(home, j->from->name) != 0) {
        job_problem(j, "0A000", "city '%s' of database \"%s\" lives in region \"%s\"", j->req.city,
                    j->req.database, home);
        pg_error_detail(&j->problem,
                        "A city moves from the region its database lives in (\"%s\"); moving it "
                        "on from a home of its own is not supported yet.",
                        j->from->name);
        return false;
    }
    if (region_subset_has(&j->home_regions, j->to)) {
        job_problem(j, "55000", "city '%s' of database \"%s\" lives in region \"%s\" already",
                    j->req.city, j->req.database, j->to->name);
        return false;
    }
    return true;
}

/* A list column of the facts into buf, cut with "..." where it does not fit. */
static void take_list(const PGresult *res, int col, char *buf, size_t cap)
{
    const char *v = PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col);
    snprintf(buf, cap, "%s", v);
    if (strlen(v) >= cap)
        memcpy(buf + cap - 4, "...", 4);
}

static int take_city_facts(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    if (PQntuples(res) != 1 || PQnfields(res) != 5) {
        job_problem(j, "XX000", "the source's tables could not be read");
        return 0;
    }
    j->city->homed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    take_list(res, 1, j->city->no_identity, sizeof(j->city->no_identity));
    take_list(res, 2, j->city->foreign_keys, sizeof(j->city->foreign_keys));
    take_list(res, 3, j->city->sequences, sizeof(j->city->sequences));
    take_list(res, 4, j->city->partitioned, sizeof(j->city->partitioned));
    return 0;
}

int job_city_facts(struct dbmove_job *j)
{
    const char *params[1] = {j->city->column};
    return job_query(j, j->src_db, "reading the source's tables homed by city", city_facts_sql, 1,
                     params, take_city_facts, NULL);
}

/* The first of the tables' refusals; JOB_NEXT when there is none. */
int job_city_judge(struct dbmove_job *j)
{
    const struct job_city *c = j->city;
    const char *db = j->req.database;
    if (c->homed == 0) {
        job_problem(j, "55000", "no table of database \"%s\" has the column \"%s\"", db, c->column);
        pg_error_hint(&j->problem, "home_by names the column that holds each row's city.");
    } else if (c->no_identity[0] != '\0') {
        job_problem(j, "55000",
                    "the replica identity of some tables of database \"%s\" lacks their column "
                    "\"%s\"",
                    db, c->column);
        pg_error_detail(&j->problem,
                        "A publication filtered by city publishes a table's UPDATEs and DELETEs "
                        "only when its replica identity holds the column: %s.",
                        c->no_identity);
        pg_error_hint(&j->problem,
                      "Put %s in the primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (or "
                      "USING INDEX an index that holds it).",
                      c->column);
    } else if (c->foreign_keys[0] != '\0') {
        job_problem(j, "55000", "foreign keys of database \"%s\" would leave the city", db);
        pg_error_detail(&j->problem,
                        "A key to a table homed by \"%s\" must pair the referencing table's %s "
                        "column with the referenced one's, so that it points into the same "
                        "city; a table without the column may not reference one with it: %s.",
                        c->column, c->column, c->foreign_keys);
        pg_error_hint(&j->problem,
                      "Add the city to the key (its column %s paired with the referenced %s), "
                      "or drop the constraint.",
                      c->column, c->column);
    } else if (c->partitioned[0] != '\0') {
        job_problem(j, "0A000", "database \"%s\" has partitioned tables", db);
        pg_error_detail(&j->problem,
                        "MOVE CITY does not move the rows of partitioned tables yet: %s.",
                        c->partitioned);
        pg_error_hint(&j->problem, "Move the whole database (MOVE DATABASE), which copies "
                                   "every partition.");
    } else if (c->sequences[0] != '\0') {
        job_problem(j, "55000", "tables of database \"%s\" homed by city draw ids from a sequence",
                    db);
        pg_error_detail(&j->problem,
                        "Sequences are not replicated and each region makes its own ids: two "
                        "regions' rows would collide: %s.",
                        c->sequences);
        pg_error_hint(&j->problem,
                      "Use UUIDs (DEFAULT gen_random_uuid()), or ids the application makes "
                      "unique across regions (an identity per region with its own START and a "
                      "common INCREMENT, set without a default on the column).");
    } else {
        return JOB_NEXT;
    }
    return JOB_FAIL;
}

/* The count per table, told: a city typed in another spelling than the rows' matches 0. */
static int take_rows(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    char list[DBMOVE_LIST_MAX] = "";
    size_t len = 0;
    (void)sqlstate;
    j->city->rows = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        long long n = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        j->city->rows += n;
        if (len < sizeof(list))
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s %lld", i ? ", " : "",
                                    PQgetvalue(res, i, 0), n);
    }
    job_notice(j, "rows whose %s = '%s' (compared as written): %s", j->city->column, j->req.city,
               list);
    return 0;
}

int job_city_count_rows(struct dbmove_job *j)
{
    const char *params[2] = {j->city->column, j->req.city};
    return job_query(j, j->src_db, "counting the city's rows on the source", city_rows_sql, 2,
                     params, take_rows, NULL);
}

/*
 * The publications: the move's, of each homed table with its row filter
 * and the cutover's marker (and, into a region where no city lives yet,
 * the migrations' history, whole: the region then runs the steps after
 * it); the database's pgnear_reference, of the tables without the
 * column, made by the first city's move and completed by the next
 * (job_city_join.c).  A DO block (statements built from the catalog); its
 * %1$s and %2$s are the home column's and the city's literals, %3$s
 * whether the history goes.
 */
#define PUBLICATION_BLOCK                                                                          \
    "DO $pgnear$ DECLARE tables text; t record; BEGIN\n"                                           \
    "SELECT string_agg(CASE WHEN a.attnum IS NULL THEN format('%%I.%%I', n.nspname, c.relname)"    \
    "  ELSE format('%%I.%%I WHERE (%%I = %%L)', n.nspname, c.relname, a.attname, %2$s) END,"       \
    "  ', ' ORDER BY n.nspname, c.relname) INTO tables" JOB_TABLES_WITH_COLUMN(                    \
        "%1$s") "   AND (a.attnum IS NOT NULL OR n.nspname = '" DBMOVE_MARKER_SCHEMA "'"           \
                "     OR (c.relname = '" MIGRATE_HISTORY_TABLE "' AND %3$s));\n"                   \
                "EXECUTE 'CREATE PUBLICATION " DBMOVE_OBJECT_NAME " FOR TABLE ' || tables;\n"      \
                "IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = "                       \
                "'" JOB_REFERENCE_PUBLICATION "') THEN\n"                                          \
                "  CREATE PUBLICATION " JOB_REFERENCE_PUBLICATION ";\n"                            \
                "END IF;\n" CITY_PUBLISH_REFERENCES("%1$s", "") "END $pgnear$"

/*
 * What a move copied into a database it did not create: the city's rows,
 * and, where no other city lives (the database was empty before it, the
 * checks say), the tables without the column; as the replication's role,
 * so that no trigger nor foreign key fires whatever the tables' order.
 * %3$s: whether the tables without the column go too.
 */
#define DELETE_COPY_BLOCK                                                                          \
    "DO $pgnear$ DECLARE t record; BEGIN\n"                                                        \
    "PERFORM set_config('session_replication_role', 'replica', true);\n"                           \
    "FOR t IN SELECT n.nspname, c.relname, a.attname" JOB_TABLES_WITH_COLUMN(                      \
        "%1$s") "   AND n.nspname <> '" DBMOVE_MARKER_SCHEMA "' LOOP\n"                            \
                "  IF t.attname IS NULL THEN\n"                                                    \
                "    IF %3$s THEN\n"                                                               \
                "      EXECUTE format('DELETE FROM %%I.%%I', t.nspname, t.relname);\n"             \
                "    END IF;\n"                                                                    \
                "  ELSE\n"                                                                         \
                "    EXECUTE format('DELETE FROM %%I.%%I WHERE %%I = %%L', t.nspname, t.relname, " \
                "t.attname,"                                                                       \
                "      %2$s);\n"                                                                   \
                "  END IF;\n"                                                                      \
                "END LOOP; END $pgnear$"

bool job_city_quote(struct dbmove_job *j, char *column, char *city, size_t cap)
{
    /* A command after START (CUTOVER, ABORT) reads the column where START did. */
    if (j->city->column[0] == '\0' && !job_city_homed(j))
        return false;
    if (sql_quote_literal_into(column, cap, j->city->column) &&
        sql_quote_literal_into(city, cap, j->req.city))
        return true;
    job_problem(j, "22023", "the city's name is too long");
    return false;
}

int job_city_publication(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8], sql[6144];
    if (!job_city_quote(j, column, city, sizeof(column)))
        return JOB_FAIL;
    snprintf(sql, sizeof(sql), PUBLICATION_BLOCK, column, city,
             j->city->joining ? "false" : "true");
    return job_query(j, j->src_db, "creating the publication on the source", sql, 0, NULL,
                     job_take_nothing, NULL);
}

int job_city_delete_copy(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8], sql[4096];
    if (!job_city_quote(j, column, city, sizeof(column)))
        return JOB_FAIL;
    snprintf(sql, sizeof(sql), DELETE_COPY_BLOCK, column, city,
             j->city->joining ? "false" : "true");
    return job_query(j, j->dst_db, "deleting the rows the move copied to the target", sql, 0, NULL,
                     job_take_nothing, NULL);
}

int job_city_done(struct dbmove_job *j)
{
    char command[JOB_COMMAND_MAX];
    snprintf(j->summary, sizeof(j->summary),
             "copying %lld rows of city '%s' in %lld tables, and the tables without column %s, "
             "of database \"%s\" from region \"%s\" to region \"%s\"; SHOW MOVES shows the copy, "
             "%s ABORT undoes the move",
             (long long)j->city->rows, j->req.city, (long long)j->city->homed, j->city->column,
             j->req.database, j->from->name, j->to->name, job_command(j, command, sizeof(command)));
    return JOB_NEXT;
}
