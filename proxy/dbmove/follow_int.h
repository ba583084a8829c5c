/*
 * follow_int.h — what the follower's files share: its state on worker 0
 * (follow.c) and a peer's part in another instance's cutover
 * (follow_hold.c).
 */
#ifndef PGNEAR_PROXY_DBMOVE_FOLLOW_INT_H
#define PGNEAR_PROXY_DBMOVE_FOLLOW_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/pg_error.h"
#include "proxy/dbmove/record.h"
#include "proxy/runtime/placement.h"
#include "proxy/session/gate.h"
#include "routing/region.h"

struct config;
struct dbmove_job;
struct event;
struct pgasync;
struct worker;

#define DBMOVE_FOLLOW_MS         1000 /* between rounds */
#define DBMOVE_FOLLOW_TIMEOUT_MS 5000 /* a round's queries */
#define FOLLOW_APP_NAME          "pgnear moves"
#define FOLLOW_HOLDS             8    /* other instances' cutovers followed at once */
#define FOLLOW_FAST_MS           100  /* the rounds while one is */
#define FOLLOW_SETTLE_MS         2000 /* between tries to settle a cutover nobody may run any more */

/*
 * This instance's part in a cutover another instance runs: its sessions
 * of the database held, their server processes told to the cutover (the
 * leaving region's pgnear_move_holds), then moved where the record says
 * the database went, or let go where it stayed.
 */
struct follow_hold {
    bool used;
    struct dbmove_follow *f;
    char database[DBMOVE_NAME_MAX + 1];
    char city[DBMOVE_NAME_MAX + 1]; /* a city's cutover (its sessions alone: scope.city_key) */
    int64_t move_id;
    int version; /* of the 'cutting over' or 'reverting' record */
    char leaving[DBMOVE_NAME_MAX + 1], arriving[DBMOVE_NAME_MAX + 1];
    struct gate_scope scope;
    struct gate_close *closing; /* while the gate closes */
    /* gate_shut: its gate closed; told: the pids gathered and the word sent */
    bool gate_shut, ending, told;
    char end_home[DBMOVE_NAME_MAX + 1]; /* where the record said it lives, once it moved on */
    struct gate_pids pids;
    bool pids_made;
    struct pgasync *q; /* the word to the cutover */
};

struct follow_query {
    struct dbmove_follow *f;
    struct pgasync *q;
    char region[DBMOVE_NAME_MAX + 1];
    bool database_only; /* asked again without the city moves' table (an older record) */
};

struct dbmove_follow {
    struct worker *w;
    struct event *timer;
    struct config *cfg; /* the round's (a reference) */
    struct follow_query queries[REGION_SUBSET_MAX];
    size_t nqueries, pending;
    char answered[REGION_SUBSET_MAX][DBMOVE_NAME_MAX + 1];
    size_t nanswered;
    struct dbmove_row *rows;
    size_t nrows;
    struct follow_hold holds[FOLLOW_HOLDS];
    bool transitional;    /* the last round saw a cutover under way */
    uint64_t round_epoch; /* placement_local_epoch as the round began */
    bool starting;        /* the read at start: no holds before the loops run */
    /* a cutover nobody runs any more, being settled (follow_settle.c) */
    struct dbmove_job *settling;
    char settle_database[DBMOVE_NAME_MAX + 1];
    int64_t settle_next_ms;
    char settle_told[PG_ERROR_MESSAGE_MAX]; /* the last problem logged */
    int64_t settle_move_id;
    bool settle_copying;
    int64_t copy_seen_id; /* the move whose copy this pgnear saw begun (or failed) */
    /* disagreements with the file already told, for warned_cfg */
    const struct config *warned_cfg;
    char warned[PLACEMENT_MAX][2 * (DBMOVE_NAME_MAX + 1)];
    size_t nwarned;
};

/* follow_hold.c: a round's newest row of a database, once where it lives is set. */
void follow_hold_round(struct dbmove_follow *f, const struct config *cfg,
                       const struct dbmove_row *r);
/* follow_settle.c: a round's newest row of a database: settles its cutover if nobody runs it. */
void follow_settle_round(struct dbmove_follow *f, const struct config *cfg,
                         const struct dbmove_row *r);
void follow_settle_free(struct dbmove_follow *f);
/* Whether some hold is under way: the next round comes sooner. */
bool follow_holding(const struct dbmove_follow *f);
void follow_holds_free(struct dbmove_follow *f);
/* follow_hold.c: the host a region's record is read from: its primary, else a standby that is up.
 */
const struct region_host *follow_record_host(const struct region *r);

#endif
