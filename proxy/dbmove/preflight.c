/*
 * preflight.c — the facts MOVE DATABASE reads before it changes anything,
 * and the judgement on them (preflight.h).
 */
#include "proxy/dbmove/preflight.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* User tables: outside the system schemas and TOAST. */
#define USER_RELATIONS                                                                             \
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"                               \
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"
#define LIST_OF_NAMES "string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY 1)"

const char dbmove_source_sql[] =
    "SELECT pg_is_in_recovery(), current_setting('wal_level'),"
    " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
    " current_setting('max_replication_slots')::int"
    "   - (SELECT count(*) FROM pg_replication_slots)::int,"
    " current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)::int,"
    " current_setting('server_version_num')::int,"
    " (SELECT count(*)" USER_RELATIONS " AND c.relkind IN ('r', 'p')),"
    " pg_database_size(current_database()),"
    " (SELECT " LIST_OF_NAMES USER_RELATIONS " AND c.relkind = 'r' AND (c.relreplident = 'n'"
    "   OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i"
    "       WHERE i.indrelid = c.oid AND i.indisprimary)))),"
    " (SELECT " LIST_OF_NAMES USER_RELATIONS " AND c.relkind = 'r' AND c.relpersistence = 'u'),"
    " (SELECT coalesce(array_agg(extname ORDER BY extname), '{}')::text FROM pg_extension"
    "   WHERE extname <> 'plpgsql'),"
    " (SELECT coalesce(array_agg(DISTINCT r), '{}')::text FROM ("
    "   SELECT pg_get_userbyid(c.relowner) AS r" USER_RELATIONS
    "   UNION SELECT pg_get_userbyid(a.grantee) FROM pg_class c"
    "     JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN aclexplode(c.relacl) a"
    "     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    "       AND n.nspname !~ '^pg_toast' AND a.grantee <> 0"
    "   UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace"
    "     WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')"
    "       AND nspname !~ '^pg_(toast|temp)'"
    "   UNION SELECT pg_get_userbyid(datdba) FROM pg_database"
    "     WHERE datname = current_database()) owners),"
    " pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype"
    " FROM pg_database d WHERE d.datname = current_database()";

const char dbmove_target_sql[] =
    "SELECT pg_is_in_recovery(), current_setting('wal_level'),"
    " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
    " current_setting('max_replication_slots')::int"
    "   - (SELECT count(*) FROM pg_replication_origin)::int,"
    " current_setting('max_logical_replication_workers')::int"
    "   - (SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL)::int,"
    " current_setting('server_version_num')::int,"
    " EXISTS (SELECT 1 FROM pg_database WHERE datname = $1),"
    " (SELECT string_agg(e, ', ' ORDER BY e) FROM unnest($2::text[]) e"
    "   WHERE NOT EXISTS (SELECT 1 FROM pg_available_extensions a WHERE a.name = e)),"
    " (SELECT string_agg(quote_ident(r), ', ' ORDER BY r) FROM unnest($3::text[]) r"
    "   WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r))";

const char dbmove_target_relations_sql[] =
    "SELECT count(*)" USER_RELATIONS " AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')";

/* A text field into buf, "..." at the end when it does not fit; false when it does not fit. */
static bool copy_text(const PGresult *res, int col, char *buf, size_t cap)
{
    const char *v = PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col);
    size_t len = strlen(v);
    if (len < cap) {
        memcpy(buf, v, len + 1);
        return true;
    }
    memcpy(buf, v, cap - 4);
    memcpy(buf + cap - 4, "...", 4);
    return false;
}

/* A fact the server left NULL counts as 0. */
static int64_t int_at(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

/* NULL is false. */
static bool bool_at(const PGresult *res, int col)
{
    return !PQgetisnull(res, 0, col) && PQgetvalue(res, 0, col)[0] == 't';
}

/* A query's answer is one row of ncols: else why says what came back. */
static bool shape_ok(const PGresult *res, int ncols, const char *what, char *why, size_t cap)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == ncols)
        return true;
    snprintf(why, cap, "the %s's facts came back in an unexpected shape (%d rows of %d columns)",
             what, PQntuples(res), PQnfields(res));
    return false;
}

int dbmove_source_parse(const PGresult *res, struct dbmove_source_facts *out, char *why, size_t cap)
{
    memset(out, 0, sizeof(*out));
    if (!shape_ok(res, 16, "source", why, cap))
        return -1;
    out->in_recovery = bool_at(res, 0);
    copy_text(res, 1, out->wal_level, sizeof(out->wal_level));
    out->superuser = bool_at(res, 2);
    out->free_slots = (int)int_at(res, 3);
    out->free_senders = (int)int_at(res, 4);
    out->server_version = (int)int_at(res, 5);
    out->tables = int_at(res, 6);
    out->bytes = int_at(res, 7);
    copy_text(res, 8, out->no_identity, sizeof(out->no_identity));
    copy_text(res, 9, out->unlogged, sizeof(out->unlogged));
    if (!copy_text(res, 10, out->extensions, sizeof(out->extensions)) ||
        !copy_text(res, 11, out->roles, sizeof(out->roles))) {
        snprintf(why, cap,
                 "the database has more extensions or roles than pgnear can check "
                 "(over %d bytes of names)",
                 DBMOVE_ARRAY_MAX);
        return -1;
    }
    copy_text(res, 12, out->owner, sizeof(out->owner));
    copy_text(res, 13, out->encoding, sizeof(out->encoding));
    copy_text(res, 14, out->collate, sizeof(out->collate));
    copy_text(res, 15, out->ctype, sizeof(out->ctype));
    return 0;
}

int dbmove_target_parse(const PGresult *res, struct dbmove_target_facts *out, char *why, size_t cap)
{
    memset(out, 0, sizeof(*out));
    if (!shape_ok(res, 9, "target", why, cap))
        return -1;
    out->in_recovery = bool_at(res, 0);
    copy_text(res, 1, out->wal_level, sizeof(out->wal_level));
    out->superuser = bool_at(res, 2);
    out->free_slots = (int)int_at(res, 3);
    out->free_workers = (int)int_at(res, 4);
    out->server_version = (int)int_at(res, 5);
    out->has_database = bool_at(res, 6);
    copy_text(res, 7, out->missing_ext, sizeof(out->missing_ext));
    copy_text(res, 8, out->missing_roles, sizeof(out->missing_roles));
    return 0;
}

/* What each side must be: a writable primary, pgnear a superuser there, wal_level logical. */
static bool judge_side(const char *region, bool in_recovery, bool superuser, const char *wal_level,
                       struct pg_error *out)
{
    if (in_recovery) {
        pg_error_set(out, "25006", "region \"%s\" has no writable primary", region);
        pg_error_detail(out, "The host pgnear found as its primary is in recovery.");
        pg_error_hint(out, "Move the database when the region's primary is up.");
        return true;
    }
    if (!superuser) {
        pg_error_set(out, "42501",
                     "pgnear's user is not a superuser on the primary of region \"%s\"", region);
        pg_error_detail(out,
                        "A move creates the database, a publication and a subscription on both "
                        "sides; PostgreSQL 15 lets only a superuser create a subscription.");
        pg_error_hint(out,
                      "Connect pgnear (server_conninfo) as a superuser of each region's primary.");
        return true;
    }
    if (strcmp(wal_level, "logical") == 0)
        return false;
    pg_error_set(out, "55000", "region \"%s\" cannot take part in logical replication", region);
    pg_error_detail(
        out,
        "Logical replication copies the database and streams its changes, and after the "
        "cutover streams them back: wal_level is \"%s\" there.",
        wal_level);
    pg_error_hint(out, "Set wal_level = logical and restart that server.");
    return true;
}

/* What the tables must be for logical replication to copy them and keep writes working. */
static bool judge_tables(const struct dbmove_source_facts *src, struct pg_error *out)
{
    if (src->no_identity[0] != '\0') {
        pg_error_set(out, "55000", "some tables have neither a primary key nor a replica identity");
        pg_error_detail(
            out,
            "Without one, an UPDATE or DELETE of a published table fails on the source: "
            "%s.",
            src->no_identity);
        pg_error_hint(
            out,
            "Add a primary key, or set ALTER TABLE ... REPLICA IDENTITY FULL (or USING INDEX).");
        return true;
    }
    if (src->unlogged[0] != '\0') {
        pg_error_set(out, "55000", "some tables are unlogged");
        pg_error_detail(out, "Logical replication does not copy them: %s.", src->unlogged);
        pg_error_hint(out, "ALTER TABLE ... SET LOGGED, or drop them.");
        return true;
    }
    return false;
}

/* Room for one more slot and WAL sender on the source, and a subscription on the target. */
static bool judge_capacity(const char *source, const char *target,
                           const struct dbmove_source_facts *src,
                           const struct dbmove_target_facts *dst, struct pg_error *out)
{
    if (src->free_slots < 1 || src->free_senders < 1) {
        pg_error_set(out, "53400", "region \"%s\" has no free replication slot or WAL sender",
                     source);
        pg_error_detail(
            out,
            "The move needs a replication slot and a WAL sender there: %d slot%s and %d "
            "sender%s left.",
            src->free_slots, src->free_slots == 1 ? "" : "s", src->free_senders,
            src->free_senders == 1 ? "" : "s");
        pg_error_hint(out, "Raise max_replication_slots and max_wal_senders there.");
        return true;
    }
    if (dst->free_slots < 1 || dst->free_workers < 1) {
        pg_error_set(out, "53400", "region \"%s\" has no room for another subscription", target);
        pg_error_detail(out,
                        "A subscription needs a replication origin (max_replication_slots) and a "
                        "logical replication worker: %d and %d left.",
                        dst->free_slots, dst->free_workers);
        pg_error_hint(out,
                      "Raise max_replication_slots and max_logical_replication_workers there.");
        return true;
    }
    return false;
}

bool dbmove_judge(const char *database, const char *source, const char *target,
                  const struct dbmove_source_facts *src, const struct dbmove_target_facts *dst,
                  struct pg_error *out)
{
    memset(out, 0, sizeof(*out));
    if (judge_side(source, src->in_recovery, src->superuser, src->wal_level, out) ||
        judge_side(target, dst->in_recovery, dst->superuser, dst->wal_level, out))
        return true;
    if (dst->server_version < src->server_version) {
        pg_error_set(out, "0A000", "region \"%s\" runs an older PostgreSQL than region \"%s\"",
                     target, source);
        pg_error_detail(out, "The source runs %d, the target %d.", src->server_version,
                        dst->server_version);
        pg_error_hint(out, "Upgrade the target first.");
        return true;
    }
    if (judge_tables(src, out))
        return true;
    if (dst->missing_ext[0] != '\0') {
        pg_error_set(out, "0A000",
                     "an extension of database \"%s\" is not available in region \"%s\"", database,
                     target);
        pg_error_detail(out, "The database uses %s, which region \"%s\" lacks.", dst->missing_ext,
                        target);
        pg_error_hint(out, "Install the extension's package on the target's server.");
        return true;
    }
    if (dst->missing_roles[0] != '\0') {
        pg_error_set(out, "42704",
                     "roles that own or are granted objects of database \"%s\" do not exist in "
                     "region \"%s\"",
                     database, target);
        pg_error_detail(out, "Missing: %s.", dst->missing_roles);
        pg_error_hint(
            out, "Create them there first (pg_dumpall --roles-only on the source shows them).");
        return true;
    }
    if (judge_capacity(source, target, src, dst, out))
        return true;
    if (dst->has_database && dst->relations > 0 && !dst->holds_cities) {
        pg_error_set(out, "42P04",
                     "database \"%s\" already exists in region \"%s\" and is not empty", database,
                     target);
        pg_error_detail(out, "It holds %lld relations.", (long long)dst->relations);
        pg_error_hint(out, "Drop it there, or move the database to another region.");
        return true;
    }
    return false;
}
