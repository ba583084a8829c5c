/*
 * job_fleet.c — a cutover's part that waits for the other instances of a
 * fleet (peers): each holds its own sessions of the database and says so,
 * with their server processes, in the leaving region's pgnear_move_holds
 * (dbmove/follow_hold.c writes it); the cutover goes on once every peer
 * has, and passes those processes over when it ends the database's other
 * sessions, or gives up past move_timeout (55P03) and undoes what it did.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_cut.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/clock.h"
#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/session/gate.h"
#include "routing/health.h"

bool job_in_fleet(const struct dbmove_job *j)
{
    return j->cfg->peer_id != 0 && j->cfg->peer_list.count > 1;
}

int job_cut_holds_table(struct dbmove_job *j)
{
    return job_query(j, j->cut.leave_ctl, "preparing the fleet's holds", dbmove_holds_create_sql, 0,
                     NULL, job_take_nothing, NULL);
}

/* Appends "1,2,3" to the pids; false when they do not fit. */
static bool add_pid_list(struct gate_pids *p, const char *list)
{
    for (const char *c = list; *c != '\0';) {
        char *end;
        long pid = strtol(c, &end, 10);
        if (end == c)
            break;
        if (!gate_pids_add(p, pid))
            return false;
        c = *end == ',' ? end + 1 : end;
    }
    return true;
}

/* The peers not yet in pgnear_move_holds; the cutover waits while any is missing. */
static int take_peer_holds(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    char missing[256] = "";
    for (size_t k = 0; k < j->cfg->peer_list.count; k++) {
        int id = j->cfg->peer_list.items[k].id;
        bool found = id == j->cfg->peer_id;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = atoi(PQgetvalue(res, r, 0)) == id;
        size_t len = strlen(missing);
        if (!found)
            snprintf(missing + len, sizeof(missing) - len, "%s%d", len ? ", " : "", id);
    }
    if (missing[0] == '\0') {
        for (int r = 0; r < PQntuples(res); r++)
            if (!add_pid_list(&j->cut.pids, PQgetvalue(res, r, 1)))
                job_problem(j, "54000", "too many sessions to list the ones held");
        job_notice(j, "every instance of the fleet holds its sessions of database \"%s\"",
                   j->req.database);
        return 0;
    }
    if (monotonic_ms() >= j->cut.deadline_ms) {
        char detail[320];
        snprintf(detail, sizeof(detail), "No word from peer_id %s.", missing);
        job_problem(j, "55P03",
                    "the other instances of the fleet did not hold their sessions of database "
                    "\"%s\" within move_timeout (%d ms); nothing was changed",
                    j->req.database, j->cfg->move_timeout_ms);
        pg_error_detail(&j->problem, "%s", detail);
        pg_error_hint(&j->problem,
                      "Is each instance of peers running? One that is gone must leave peers.");
        return 0;
    }
    j->cut.poll_again = true;
    return 0;
}

int job_cut_wait_peers(struct dbmove_job *j)
{
    char id[24], version[16];
    snprintf(id, sizeof(id), "%lld", (long long)j->move.id);
    snprintf(version, sizeof(version), "%d", j->move.version);
    const char *params[2] = {id, version};
    return job_query(j, j->cut.leave_ctl, "waiting for the fleet to hold its sessions",
                     dbmove_holds_read_sql, 2, params, take_peer_holds, NULL);
}
