/*
 * job_publisher.c — the connection a move's subscription makes to its
 * publisher, and the checks, before anything is made, that the servers
 * can make it: MOVE DATABASE's (the target to the source) and a
 * cutover's (the leaving side to the arriving side, for the way back)
 * (job_steps.h).
 *
 * A subscription's connection is made by the subscriber's server, from
 * the conninfo pgnear itself uses for the publisher's side: server_conninfo's
 * words, the region's host and port, the database.  What libpq found for
 * pgnear outside those words — a password from a passfile, PGPASSFILE,
 * ~/.pgpass or PGPASSWORD — that server cannot read, so the password
 * pgnear's own login used is added (libpq's PQpass).  It ends up in
 * pg_subscription.subconninfo, which only superusers may read; it is never
 * logged by pgnear.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "protocol/pgasync.h"
#include "protocol/sql_quote.h"

/* Whether conninfo gives a password itself (server_conninfo's password=). */
static bool sets_password(const char *conninfo)
{
    bool found = false;
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
            found = true;
    PQconninfoFree(opts);
    return found;
}

bool job_publisher_literal(const struct dbmove_job *j, const char *conninfo, char *buf, size_t cap)
{
    char full[DBMOVE_CONNINFO_MAX * 2];
    const char *password = strcmp(conninfo, j->src_db) == 0   ? j->src_password
                           : strcmp(conninfo, j->dst_db) == 0 ? j->dst_password
                                                              : NULL;
    snprintf(full, sizeof(full), "%s", conninfo);
    bool ok = (password == NULL || sets_password(conninfo) ||
               pgasync_conninfo_add(full, sizeof(full), "password", password)) &&
              sql_quote_literal_into(buf, cap, full);
    explicit_bzero(full, sizeof(full));
    return ok;
}

/*
 * The server of ctl connects to the publisher as a subscription will, in
 * a transaction that is rolled back: CREATE SUBSCRIPTION with connect =
 * true and no slot connects to the publisher, and makes nothing that
 * outlives the transaction.  Its publication is one that does not exist:
 * the tables of an existing one would have to exist where it runs.  A refusal of the
 * publisher's pg_hba.conf, a wrong or missing password, TLS, a network
 * between the regions that drops it: each is told with the server's words
 * before anything is made.  The statement holds the password: it is not
 * written to that server's log when it fails (log_min_error_statement).
 */
static int check_connection(struct dbmove_job *j, const char *ctl, const char *publisher,
                            const char *what, const char *hint)
{
    char conn[DBMOVE_CONNINFO_MAX * 2 + 16], sql[sizeof(conn) + 512];
    if (!job_publisher_literal(j, publisher, conn, sizeof(conn))) {
        job_problem(j, "22023", "the connection string is too long");
        return JOB_FAIL;
    }
    snprintf(sql, sizeof(sql),
             "BEGIN; SET LOCAL log_min_error_statement = panic;"
             " SET LOCAL client_min_messages = error;"
             " CREATE SUBSCRIPTION pgnear_check_%lld CONNECTION %s PUBLICATION pgnear_check"
             " WITH (connect = true, enabled = false, create_slot = false, slot_name = NONE);"
             " ROLLBACK",
             (long long)j->id, conn);
    explicit_bzero(conn, sizeof(conn));
    j->query_hint = hint;
    int rc = job_query(j, ctl, what, sql, PGASYNC_SCRIPT, NULL, job_take_nothing, NULL);
    explicit_bzero(sql, sizeof(sql));
    return rc;
}

int job_check_publisher(struct dbmove_job *j)
{
    return check_connection(j, j->dst_ctl, j->src_db,
                            "the target's server connecting to the source",
                            "The target's primary connects to the source's at the address pgnear "
                            "uses, with server_conninfo's words and the password pgnear logged in "
                            "with: the source's pg_hba.conf, the network between the regions and "
                            "TLS must let it.");
}

int job_check_way_back(struct dbmove_job *j)
{
    return check_connection(j, j->cut.leave_ctl, j->cut.arrive_db,
                            "the leaving region's server connecting to the arriving region",
                            "After the cutover the leaving region's primary subscribes to the "
                            "arriving one's, at the address pgnear uses, with server_conninfo's "
                            "words and the password pgnear logged in with: that region's "
                            "pg_hba.conf, the network and TLS must let it. Nothing was changed.");
}

int job_create_subscription(struct dbmove_job *j, const char *sub_db, const char *name,
                            const char *conn, const char *publications, const char *with,
                            const char *what, const char *tolerated)
{
    char sql[DBMOVE_CONNINFO_MAX * 2 + 512];
    snprintf(sql, sizeof(sql), "CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (%s)",
             name, conn, publications, with);
    int rc = job_query(j, sub_db, what, sql, 0, NULL, job_take_nothing, tolerated);
    explicit_bzero(sql, sizeof(sql));
    return rc;
}
