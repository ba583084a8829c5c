/*
 * city_sql.h — the SQL that keeps a database homed by city ([database]
 * home_by) whole across the regions where its cities live, as MOVE CITY
 * (proxy/dbmove/job_city*.c) makes it and the migrations' upkeep after a
 * run (run_upkeep.c) brings it up to date: one text each, here, in the
 * lowest room that needs it.
 *
 * In the region where the database lives (the origin), the tables
 * without the column (reference tables) are published in
 * CITY_REFERENCE_PUBLICATION, and each homed table has CITY_TRIGGER,
 * which refuses writes to the rows of the cities listed in
 * CITY_REFUSED_TABLE (moved away).  In each region where cities live, a
 * subscription follows that publication, and CITY_REFERENCE_TRIGGER
 * refuses the application's writes to the copies.
 */
#ifndef PGNEAR_PROXY_MIGRATE_CITY_SQL_H
#define PGNEAR_PROXY_MIGRATE_CITY_SQL_H

#include "proxy/migrate/history.h"

#define CITY_SCHEMA                "pgnear_move" /* pgnear's own schema in the database */
#define CITY_REFERENCE_PUBLICATION "pgnear_reference"
#define CITY_TRIGGER               "pgnear_move_city"      /* on each homed table of the origin */
#define CITY_REFERENCE_TRIGGER     "pgnear_move_reference" /* on a city region's reference tables */
#define CITY_REFUSED_TABLE         CITY_SCHEMA ".refused"  /* the cities whose rows it refuses */
/*
 * How long CREATE TRIGGER (or ALTER PUBLICATION ADD TABLE) may wait for a
 * table's writers, who queue behind it meanwhile; the caller tries again.
 */
#define CITY_LOCK_WAIT "200ms"

/*
 * The user tables of a side (ordinary, not partitions), each with its home
 * column (a.attnum, a.attname) or NULLs; col is the column's name as SQL
 * ($1, or a literal).  Of pgnear's own schema, the cutover's marker alone
 * (a table without the column: a move publishes it whole).
 */
#define CITY_TABLES_WITH_COLUMN(col)                                                               \
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"                               \
    " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = " col                         \
    "   AND a.attnum > 0 AND NOT a.attisdropped"                                                   \
    " WHERE c.relkind = 'r' AND NOT c.relispartition"                                              \
    "   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"    \
    "   AND (n.nspname <> '" CITY_SCHEMA "' OR c.relname = 'cutover')"

/*
 * Of those, the reference tables: without the column, neither pgnear's
 * nor the migrations' history (each region records its own steps).
 */
#define CITY_REFERENCE_ONLY                                                                        \
    "   AND a.attnum IS NULL AND n.nspname <> '" CITY_SCHEMA "'"                                   \
    "   AND c.relname <> '" MIGRATE_HISTORY_TABLE "'"

/*
 * A DO block: the reference tables (those also picks, a further condition
 * on n.nspname and c.relname, or "") emptied as the replication's role,
 * so that no trigger nor foreign key fires: a city region's copies, for
 * its feed to copy them anew.  col the column's literal.
 */
#define CITY_EMPTY_REFERENCES_BLOCK(col, also)                                                     \
    "DO $pgnear$ DECLARE t record; BEGIN\n"                                                        \
    "PERFORM set_config('session_replication_role', 'replica', true);\n"                           \
    "FOR t IN SELECT n.nspname, c.relname" CITY_TABLES_WITH_COLUMN(col) CITY_REFERENCE_ONLY also   \
        " LOOP\n"                                                                                  \
        "  EXECUTE format('DELETE FROM %%I.%%I', t.nspname, t.relname);\n"                         \
        "END LOOP; END $pgnear$"

/*
 * In a DO block declaring t record: each reference table not yet in
 * CITY_REFERENCE_PUBLICATION added to it; col the column's literal, also
 * a further condition on the table (n.nspname, c.relname), or "".
 */
#define CITY_PUBLISH_REFERENCES(col, also)                                                         \
    "FOR t IN SELECT n.nspname, c.relname" CITY_TABLES_WITH_COLUMN(col) CITY_REFERENCE_ONLY        \
        "   AND NOT EXISTS (SELECT FROM pg_publication_tables p"                                   \
        "     WHERE p.pubname = '" CITY_REFERENCE_PUBLICATION "'"                                  \
        "     AND p.schemaname = n.nspname AND p.tablename = c.relname)" also " LOOP\n"            \
        "  EXECUTE format('ALTER PUBLICATION " CITY_REFERENCE_PUBLICATION " ADD TABLE %%I.%%I',"   \
        " t.nspname, t.relname);\n"                                                                \
        "END LOOP;\n"

/*
 * In a DO block declaring t record: CITY_TRIGGER on each homed table that
 * lacks it, calling CITY_SCHEMA.refuse_city_write (made with
 * CITY_REFUSED_TABLE) with the column; %1$s the column's literal.
 */
#define CITY_TRIGGERS_LOOP                                                                         \
    "FOR t IN SELECT n.nspname, c.relname, c.oid" CITY_TABLES_WITH_COLUMN(                         \
        "%1$s") "   AND a.attnum IS NOT NULL AND NOT EXISTS (SELECT FROM pg_trigger g"             \
                "     WHERE g.tgrelid = c.oid AND g.tgname = '" CITY_TRIGGER "') LOOP\n"           \
                "  EXECUTE format('CREATE TRIGGER " CITY_TRIGGER                                   \
                " BEFORE INSERT OR UPDATE OR DELETE ON "                                           \
                "%%I.%%I FOR EACH ROW EXECUTE FUNCTION " CITY_SCHEMA ".refuse_city_write(%%L)',"   \
                " t.nspname, t.relname, %1$s);\n"                                                  \
                "END LOOP;\n"

/*
 * A city region's reference tables: copies that the region's feed keeps,
 * written where the database lives.  A statement trigger refuses the
 * application's writes there (25006), naming that region; the feed's
 * apply, as the replication's role, passes.  The migrations' history is
 * left out: a region holding a city's rows runs the steps and records
 * them in its own copy.  Made on each table that lacks it.  %1$s the
 * column, %2$s the database's region, as literals.
 */
#define CITY_REFERENCE_TRIGGERS_BLOCK                                                              \
    "DO $pgnear$ DECLARE t record; BEGIN\n"                                                        \
    "PERFORM set_config('lock_timeout', '" CITY_LOCK_WAIT "', true);\n"                            \
    "CREATE OR REPLACE FUNCTION " CITY_SCHEMA ".refuse_reference_write() RETURNS "                 \
    "trigger LANGUAGE plpgsql AS $f$ BEGIN\n"                                                      \
    "  RAISE EXCEPTION 'table %%.%% of database %% is written in region \"%%\"',"                  \
    " quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME), quote_ident(current_database()),"  \
    " TG_ARGV[0] USING ERRCODE = '25006',\n"                                                       \
    "    DETAIL = 'A table without the city column lives where the database lives; this region "   \
    "keeps a copy that replication updates.',\n"                                                   \
    "    HINT = 'Write it through a session of a city that lives there, or of no city: pgnear "    \
    "sends those where the database lives.';\n"                                                    \
    "END $f$;\n"                                                                                   \
    "FOR t IN SELECT n.nspname, c.relname" CITY_TABLES_WITH_COLUMN("%1$s") CITY_REFERENCE_ONLY     \
        "   AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = c.oid"                      \
        "     AND g.tgname = '" CITY_REFERENCE_TRIGGER "') LOOP\n"                                 \
        "  EXECUTE format('CREATE TRIGGER " CITY_REFERENCE_TRIGGER " BEFORE INSERT OR UPDATE OR "  \
        "DELETE OR TRUNCATE ON %%I.%%I FOR EACH STATEMENT EXECUTE FUNCTION " CITY_SCHEMA           \
        ".refuse_reference_write(%%L)', t.nspname, t.relname, %2$s);\n"                            \
        "END LOOP; END $pgnear$"

/* The subscriptions of the connection's database that follow CITY_REFERENCE_PUBLICATION. */
#define CITY_FEEDS                                                                                 \
    " FROM pg_subscription s WHERE s.subdbid = (SELECT oid FROM pg_database"                       \
    " WHERE datname = current_database())"                                                         \
    " AND '" CITY_REFERENCE_PUBLICATION "' = ANY (s.subpublications)"

#endif
