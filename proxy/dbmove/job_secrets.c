/*
 * job_secrets.c — the check, by MOVE DATABASE and again by CUTOVER and
 * REVERT, that the roles which log in to the database hold the same SCRAM
 * secret in the region it goes to as in the one it leaves (job_steps.h).
 *
 * Under auth = scram pgnear logs in to a server with the ClientKey its
 * client's proof revealed, which fits only the secret the client's key
 * came from: a role whose secret differs where the database goes (CREATE
 * ROLE ... PASSWORD 'same' in each region gives each its own salt) could
 * not follow the cutover, and each of its sessions would end there.  So
 * the command is refused before it changes anything, the roles named, and
 * the hint gives the statements that copy the leaving side's secrets.
 *
 * The roles checked are the login roles that are, or are members (at any
 * depth) of, a role that owns the database or one of its schemas or
 * relations, is granted something on one of its relations, is granted
 * CONNECT on it by name, or has a session on it in the leaving region
 * now (pg_stat_activity: every session pgnear holds there; CUTOVER and
 * REVERT, which do not read the owners and grantees, go by the grants of
 * CONNECT and the sessions).  pgnear's own user (server_conninfo's, which
 * logs in with its own password) is left out.  A role that may connect
 * only through PUBLIC's CONNECT and has none of these is not checked.
 * pgnear's user is a superuser of both primaries (the checks before
 * refuse otherwise), so pg_authid, where the secrets are, is readable.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"

#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"

/* The source's login roles of the database and their secrets, as two text[] in the same order. */
static const char secrets_source_sql[] =
    "WITH RECURSIVE seed(oid) AS ("
    "   SELECT oid FROM pg_roles WHERE rolname = ANY ($1::text[])"
    "   UNION SELECT a.grantee FROM pg_database d CROSS JOIN aclexplode(d.datacl) a"
    "     WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT'"
    "       AND a.grantee <> 0"
    "   UNION SELECT usesysid FROM pg_stat_activity"
    "     WHERE datname = current_database() AND usesysid IS NOT NULL),"
    " role(oid) AS (SELECT oid FROM seed"
    "   UNION SELECT m.member FROM pg_auth_members m JOIN role r ON m.roleid = r.oid)"
    " SELECT coalesce(array_agg(a.rolname ORDER BY a.rolname), '{}')::text,"
    "   coalesce(array_agg(a.rolpassword ORDER BY a.rolname), '{}')::text"
    " FROM pg_authid a WHERE a.oid IN (SELECT oid FROM role) AND a.rolcanlogin"
    "   AND a.rolname <> current_user";

/*
 * On the target: of those roles ($1, secrets $2), the ones whose secret
 * differs or which do not exist, and the statements that fix them.
 */
static const char secrets_target_sql[] =
    "SELECT string_agg(quote_ident(s.n), ', ' ORDER BY s.n),"
    "   string_agg(format(CASE WHEN EXISTS (SELECT 1 FROM pg_authid WHERE rolname = s.n)"
    "     THEN 'ALTER ROLE %I PASSWORD %L;' ELSE 'CREATE ROLE %I LOGIN PASSWORD %L;' END,"
    "     s.n, s.p), ' ' ORDER BY s.n)"
    " FROM unnest($1::text[], $2::text[]) AS s(n, p)"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_authid a"
    "   WHERE a.rolname = s.n AND a.rolpassword IS NOT DISTINCT FROM s.p)";

/* Only auth = scram logs in with the client's key; under passthrough the server checks it. */
bool job_secrets_wanted(const struct dbmove_job *j)
{
    return j->cfg->auth == AUTH_SCRAM;
}

/* A text field into buf; false when it does not fit. */
static bool take_field(const PGresult *res, int col, char *buf, size_t cap)
{
    const char *v = PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col);
    size_t len = strlen(v);
    if (len >= cap)
        return false;
    memcpy(buf, v, len + 1);
    return true;
}

/* The source's login roles and their secrets, kept as text[] for the target's query. */
static int take_source_secrets(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    struct job_secrets *s = &j->secrets;
    (void)sqlstate;
    if (PQntuples(res) != 1 || PQnfields(res) != 2) {
        job_problem(j, "XX000", "the source's login roles could not be read");
        return 0;
    }
    if (!take_field(res, 0, s->names, sizeof(s->names)) ||
        !take_field(res, 1, s->secrets, sizeof(s->secrets)))
        job_problem(j, "54000",
                    "the database has more login roles than pgnear can check (over %zu bytes of "
                    "names or secrets)",
                    sizeof(s->secrets));
    return 0;
}

int job_source_secrets(struct dbmove_job *j)
{
    /* MOVE reads the owners and grantees first; CUTOVER and REVERT go by the sessions. */
    const char *params[1] = {j->src.roles[0] != '\0' ? j->src.roles : "{}"};
    const char *leave_db = j->cut.leave_db != NULL ? j->cut.leave_db : j->src_db;
    return job_query(j, leave_db, "reading the leaving side's login roles and their secrets",
                     secrets_source_sql, 1, params, take_source_secrets, NULL);
}

/* The roles whose secret differs in the target, and the statements that fix them. */
static int take_target_secrets(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    struct job_secrets *s = &j->secrets;
    (void)sqlstate;
    if (PQntuples(res) != 1 || PQnfields(res) != 2) {
        job_problem(j, "XX000", "the target's secrets could not be compared");
        return 0;
    }
    s->differ[0] = s->fix[0] = '\0';
    if (!PQgetisnull(res, 0, 0)) {
        snprintf(s->differ, sizeof(s->differ), "%s", PQgetvalue(res, 0, 0));
        snprintf(s->fix, sizeof(s->fix), "%s", PQgetvalue(res, 0, 1));
    }
    return 0;
}

int job_target_secrets(struct dbmove_job *j)
{
    const char *params[2] = {j->secrets.names, j->secrets.secrets};
    const char *arrive_ctl = j->cut.arrive_ctl != NULL ? j->cut.arrive_ctl : j->dst_ctl;
    return job_query(j, arrive_ctl, "comparing the login roles' secrets on the arriving side",
                     secrets_target_sql, 2, params, take_target_secrets, NULL);
}

int job_judge_secrets(struct dbmove_job *j)
{
    const struct job_secrets *s = &j->secrets;
    if (s->differ[0] == '\0')
        return JOB_NEXT;
    const char *to = j->cut.arriving != NULL ? j->cut.arriving->name : j->to->name;
    const char *from = j->cut.leaving != NULL ? j->cut.leaving->name : j->from->name;
    char detail[sizeof(s->differ) + 300], hint[sizeof(j->problem.hint)];
    snprintf(detail, sizeof(detail),
             "Under auth = scram pgnear logs in to a server with the key of its client's "
             "password, which fits the secret of region \"%s\" only: the cutover would end "
             "these roles' sessions. Differing or missing in region \"%s\": %s.",
             from, to, s->differ);
    if (snprintf(hint, sizeof(hint), "Give them region \"%s\"'s secrets in region \"%s\": %s", from,
                 to, s->fix) >= (int)sizeof(hint))
        snprintf(hint, sizeof(hint),
                 "Give each role region \"%s\"'s secret in region \"%s\": ALTER ROLE name "
                 "PASSWORD 'SCRAM-SHA-256$...' with its pg_authid.rolpassword there.",
                 from, to);
    job_problem(j, "55000",
                "roles that log in to database \"%s\" have another SCRAM secret in region \"%s\"",
                j->req.database, to);
    pg_error_detail(&j->problem, "%s", detail);
    pg_error_hint(&j->problem, "%s", hint);
    return JOB_FAIL;
}
