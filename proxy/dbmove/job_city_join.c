/*
 * job_city_join.c — MOVE CITY into a region where other cities of the
 * database live already, and the feed of the tables without the column
 * that such a region keeps (job_city_steps.h).
 *
 * A city's move copies its rows (the publication pgnear_move, filtered
 * by city) and, into a region that holds no city of the database yet,
 * the tables without the column too: those are published apart, in
 * pgnear_reference, which every region's copy follows.  The move's
 * subscription takes both; its FINISH keeps it, narrowed to
 * pgnear_reference, as the region's feed of those tables, for as long as
 * cities live there (the first city's ABORT drops it: none does then).
 *
 * The next city into that region joins: its database there is not
 * empty, by design, so it is neither created nor given the schema; its
 * tables must be the source's, column by column (the migrations keep
 * them so: a difference is refused, naming the first table that
 * differs); its subscription takes the city's rows alone (the region
 * follows the tables without the column already), and its ABORT deletes
 * the city's rows there, nothing else.  A region whose feed is missing
 * (dropped by hand) gets it again with the next city: its copies of the
 * tables without the column are emptied and copied anew.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pgasync.h"
#include "proxy/dbmove/record.h"
#include "routing/region.h"

/* Whether a record says that a city of the move's database lives in region (a finished move). */
static bool city_lives_in(const struct dbmove_job *j, const char *region)
{
    for (size_t i = 0; i < j->nrecords; i++) {
        const struct dbmove_row *r = &j->records[i];
        if (r->id != j->move.id && r->city[0] != '\0' && r->state == DBMOVE_FINISHED &&
            strcmp(r->database, j->req.database) == 0 &&
            (region == NULL || strcmp(r->to_region, region) == 0))
            return true;
    }
    return false;
}

int job_city_joining(struct dbmove_job *j)
{
    bool lives = city_lives_in(j, j->to->name);
    if (!j->has_move) { /* START: the database there holds their rows, not empty by design */
        lives = lives && j->dst.has_database;
        j->dst.holds_cities = lives;
    }
    j->city->joining = lives;
    return JOB_NEXT;
}

bool job_city_joins(const struct dbmove_job *j)
{
    return job_is_city(j) && j->city->joining;
}

bool job_city_first(const struct dbmove_job *j)
{
    return job_is_city(j) && !j->city->joining;
}

/*
 * A whole database's move while cities of it live away from its region:
 * the move would take the rows its region holds, and leave the cities'
 * regions following a region it no longer lives in.  Refused, naming them.
 */
int job_refuse_cities_away(struct dbmove_job *j)
{
    char list[DBMOVE_LIST_MAX] = "";
    size_t len = 0;
    for (size_t i = 0; i < j->nrecords && len < sizeof(list); i++) {
        const struct dbmove_row *r = &j->records[i];
        if (r->city[0] != '\0' && r->state == DBMOVE_FINISHED &&
            strcmp(r->database, j->req.database) == 0)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s'%s' in \"%s\"",
                                    len ? ", " : "", r->city, r->to_region);
    }
    if (len == 0)
        return JOB_NEXT;
    job_problem(j, "0A000", "cities of database \"%s\" live in other regions than its own",
                j->req.database);
    pg_error_detail(&j->problem, "Moved by MOVE CITY: %s.", list);
    pg_error_hint(&j->problem, "Moving a database whose cities live apart is not supported; move "
                               "its cities instead (MOVE CITY).");
    return JOB_FAIL;
}

bool job_city_no_homes(const struct dbmove_job *j)
{
    return job_is_city(j) && !city_lives_in(j, NULL);
}

/* Each user table with its columns and their types, a line each, in order: what is compared. */
static const char tables_sql[] =
    "SELECT coalesce(string_agg(format('%I.%I (%s)', n.nspname, c.relname, (SELECT"
    " string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod),"
    " CASE WHEN a.attnotnull THEN ' not null' ELSE '' END), ', ' ORDER BY a.attnum)"
    " FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)),"
    " E'\\n' ORDER BY n.nspname, c.relname), '')"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema',"
    " '" DBMOVE_MARKER_SCHEMA "') AND n.nspname !~ '^pg_toast'";

static int take_source_tables(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    free(j->city->tables);
    j->city->tables = strdup(PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    if (j->city->tables == NULL) {
        job_problem(j, "53200", "out of memory");
        return -1;
    }
    return 0;
}

int job_city_source_tables(struct dbmove_job *j)
{
    return job_query(j, j->src_db, "reading the source's tables", tables_sql, 0, NULL,
                     take_source_tables, NULL);
}

/* The line of text at which two lists first differ, cut to cap ("": none). */
static void line_at(const char *text, size_t at, char *buf, size_t cap)
{
    while (at > 0 && text[at - 1] != '\n')
        at--;
    size_t len = strcspn(text + at, "\n");
    snprintf(buf, cap, "%.*s", (int)len, text + at);
    if (buf[0] == '\0')
        snprintf(buf, cap, "(no such table)");
}

static int take_target_tables(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    const char *mine = j->city->tables != NULL ? j->city->tables : "";
    const char *theirs = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    size_t at = 0;
    while (mine[at] != '\0' && mine[at] == theirs[at])
        at++;
    if (mine[at] == theirs[at])
        return 0;
    char source[DBMOVE_LIST_MAX / 2], target[DBMOVE_LIST_MAX / 2];
    line_at(mine, at, source, sizeof(source));
    line_at(theirs, at, target, sizeof(target));
    job_problem(j, "55000",
                "the tables of database \"%s\" differ between regions \"%s\" and \"%s\"",
                j->req.database, j->from->name, j->to->name);
    pg_error_detail(&j->problem, "Region \"%s\" has %s; region \"%s\" has %s.", j->from->name,
                    source, j->to->name, target);
    pg_error_hint(&j->problem,
                  "A city moves into a region that holds other cities of the database only when "
                  "both have the same tables: run the migrations there (MIGRATE UP), or make the "
                  "change by hand.");
    return 0;
}

int job_city_target_tables(struct dbmove_job *j)
{
    return job_query(j, j->dst_db, "reading the target's tables", tables_sql, 0, NULL,
                     take_target_tables, NULL);
}

/* Whether a subscription of the target's database follows pgnear_reference already. */
static int take_reference_feed(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    j->city->feeds_references = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") == 0;
    return 0;
}

int job_city_reference_feed(struct dbmove_job *j)
{
    return job_query(j, j->dst_db, "looking for the target's feed of the tables without the city",
                     "SELECT count(*) FROM pg_subscription WHERE subdbid = (SELECT oid FROM"
                     " pg_database WHERE datname = current_database())"
                     " AND '" JOB_REFERENCE_PUBLICATION "' = ANY (subpublications)",
                     0, NULL, take_reference_feed, NULL);
}

bool job_city_refeeds(const struct dbmove_job *j)
{
    return job_city_joins(j) && j->city->feeds_references;
}

/* A joining region without the feed: its copies emptied, for the move's subscription to copy. */
#define EMPTY_REFERENCES_BLOCK CITY_EMPTY_REFERENCES_BLOCK("%1$s", "")

int job_city_empty_references(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8], sql[2048];
    if (!job_city_quote(j, column, city, sizeof(column)))
        return JOB_FAIL;
    snprintf(sql, sizeof(sql), EMPTY_REFERENCES_BLOCK, column);
    return job_query(j, j->dst_db, "emptying the target's copies of the tables without the city",
                     sql, 0, NULL, job_take_nothing, NULL);
}

/* The cutover's marker table on a target that has the schema already (not copied to it). */
int job_city_target_marker(struct dbmove_job *j)
{
    return job_query(j, j->dst_db, "creating the cutover's marker on the target",
                     dbmove_marker_create_sql, PGASYNC_SCRIPT, NULL, job_take_nothing, NULL);
}

const char *job_city_publications(const struct dbmove_job *j)
{
    return !j->city->joining || j->city->feeds_references ? DBMOVE_OBJECT_NAME
               ", " JOB_REFERENCE_PUBLICATION
                                                          : DBMOVE_OBJECT_NAME;
}

/*
 * FINISH keeps a feed that carries the tables without the column, as the
 * region's; ABORT does only where other cities live (they read them).
 */
static int take_feed(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    bool carries = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    j->city->feed_kept = carries && (j->move.state == DBMOVE_MOVED || j->city->joining);
    return 0;
}

int job_city_read_feed(struct dbmove_job *j)
{
    char name[64];
    dbmove_subscription_name(j->move.id, name, sizeof(name));
    const char *params[1] = {name};
    return job_query(j, j->dst_db, "reading what the move's subscription follows",
                     "SELECT '" JOB_REFERENCE_PUBLICATION "' = ANY (subpublications)"
                     " FROM pg_subscription WHERE subname = $1",
                     1, params, take_feed, "3D000");
}

int job_city_end_feed(struct dbmove_job *j)
{
    char name[64], sql[200];
    dbmove_subscription_name(j->move.id, name, sizeof(name));
    if (j->city->feed_kept)
        snprintf(sql, sizeof(sql),
                 "ALTER SUBSCRIPTION %s SET PUBLICATION " JOB_REFERENCE_PUBLICATION
                 " WITH (refresh = false)",
                 name);
    else
        snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION IF EXISTS %s", name);
    return job_query(j, j->dst_db,
                     j->city->feed_kept ? "keeping the feed of the tables without the city"
                                        : "dropping the subscription on the target",
                     sql, 0, NULL, job_take_nothing, "3D000");
}

bool job_city_feed_dropped(const struct dbmove_job *j)
{
    return j->city == NULL || !j->city->feed_kept;
}

int job_city_drop_references(struct dbmove_job *j)
{
    return job_query(j, j->src_db, "dropping the publication of the tables without the city",
                     "DROP PUBLICATION IF EXISTS " JOB_REFERENCE_PUBLICATION, 0, NULL,
                     job_take_nothing, NULL);
}
