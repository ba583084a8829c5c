/*
 * stats.c — summing workers' counters (stats.h).
 */
#include "proxy/base/stats.h"

#include <stddef.h>
#include <string.h>

/* Every field is a uint64_t counter: the struct is read as an array of them. */
_Static_assert(sizeof(struct worker_stats) % sizeof(uint64_t) == 0,
               "struct worker_stats holds only uint64_t counters");

void stats_accumulate(struct worker_stats *sum, const struct worker_stats *one)
{
    uint64_t *to = (uint64_t *)sum;
    const uint64_t *from = (const uint64_t *)one;
    for (size_t i = 0; i < sizeof(*sum) / sizeof(uint64_t); i++)
        to[i] += stat_read(&from[i]);
}

#define F(field, metric, help)                                                                     \
    {                                                                                              \
#field, metric, NULL, help, offsetof(struct worker_stats, field)                           \
    }
#define ROUTED(i, source)                                                                          \
    {                                                                                              \
        "routed_by_" source, "routing_decisions", "source=\"" source "\"",                         \
            "Sessions routed, by the evidence that decided the region.",                           \
            offsetof(struct worker_stats, routed_by_source) + (i) * sizeof(uint64_t)               \
    }
#define LOGIN_ERROR(i, class)                                                                      \
    {                                                                                              \
        "login_errors_" class, "login_errors", "sqlstate_class=\"" class "\"",                     \
            "Logins refused with an error, by SQLSTATE class.",                                    \
            offsetof(struct worker_stats, login_errors_by_class) + (i) * sizeof(uint64_t)          \
    }

#define MOVE_HOLD(i, le)                                                                           \
    {                                                                                              \
        "move_hold_" le, NULL, NULL, "Moves done whose client was held this long at most.",        \
            offsetof(struct worker_stats, move_hold_buckets) + (i) * sizeof(uint64_t)              \
    }

const unsigned stat_move_hold_le_ms[STAT_MOVE_HOLD_BUCKETS - 1] = {1,  5,   10,  25,
                                                                   50, 100, 250, 1000};

#define CANCEL_RESULT(i, result)                                                                   \
    {                                                                                              \
        "cancel_requests_" result, "cancel_requests", "result=\"" result "\"",                     \
            "Cancel requests received, by what became of them.",                                   \
            offsetof(struct worker_stats, cancel_results) + (i) * sizeof(uint64_t)                 \
    }

/* The classes counted apart, in login_errors_by_class order; "other" is the last. */
static const char *const sqlstate_classes[STAT_SQLSTATE_CLASSES] = {"08", "28", "53", "57",
                                                                    "3D", "42", "0A"};

static const struct stat_field fields[] = {
    F(sessions_total, "client_connections", "Client connections accepted."),
    F(sessions_refused, "client_connections_refused",
      "Client connections refused (max_client_conn, shutting down)."),
    F(login_failures, "login_failures",
      "Logins that pgnear or the server refused (a client that hung up is no failure)."),
    LOGIN_ERROR(0, "08"),
    LOGIN_ERROR(1, "28"),
    LOGIN_ERROR(2, "53"),
    LOGIN_ERROR(3, "57"),
    LOGIN_ERROR(4, "3D"),
    LOGIN_ERROR(5, "42"),
    LOGIN_ERROR(6, "0A"),
    LOGIN_ERROR(7, "other"),
    F(server_connect_failures, "server_connect_failures",
      "Connections to a server host that failed."),
    F(failovers, "failovers", "Sessions that went to another region than the first choice."),
    ROUTED(0, "region_hint"),
    ROUTED(1, "city"),
    ROUTED(2, "coordinates"),
    ROUTED(3, "geoip"),
    ROUTED(4, "default"),
    F(routed_by_header, "routed_by_header",
      "Sessions placed by a locality header of a trusted HTTP load balancer or CDN."),
    F(websocket_upgrades, "websocket_upgrades", "Connections upgraded to WebSocket."),
    F(websocket_refused, "websocket_refused",
      "HTTP requests on websocket_port answered with an error, or not sent whole in time."),
    F(queries, "queries",
      "Requests the servers answered: each simple Query, extended-protocol Sync and "
      "FunctionCall gets one ReadyForQuery."),
    F(transactions, "transactions",
      "ReadyForQuery answers that left the server idle: transactions ended, counting a "
      "statement outside a transaction as one."),
    F(cancels_forwarded, "cancels_forwarded", "Cancel requests forwarded to a server."),
    F(cancels_ignored, "cancels_ignored", "Cancel requests that matched no session."),
    CANCEL_RESULT(CANCEL_LOCAL, "local"),
    CANCEL_RESULT(CANCEL_FORWARDED, "forwarded"),
    CANCEL_RESULT(CANCEL_NO_SESSION, "no_session"),
    CANCEL_RESULT(CANCEL_BAD_KEY, "bad_key"),
    CANCEL_RESULT(CANCEL_MISROUTED, "misrouted"),
    CANCEL_RESULT(CANCEL_RATE_LIMITED, "rate_limited"),
    CANCEL_RESULT(CANCEL_PEER_FAILED, "peer_failed"),
    CANCEL_RESULT(CANCEL_BUSY, "busy"),
    F(bytes_client_to_server, "client_read_bytes",
      "Bytes read from clients (logins and relayed traffic)."),
    F(bytes_server_to_client, "server_read_bytes",
      "Bytes read from servers (logins and relayed traffic)."),
    F(logins_delayed, "logins_delayed", "Login attempts held by the failed-login throttle."),
    F(login_delay_ms, "login_delay_milliseconds",
      "Milliseconds login attempts were held by the throttle."),
    F(logins_throttle_refused, "logins_throttle_refused",
      "Login attempts refused by the throttle."),
    F(auth_throttle_evictions, "auth_throttle_evictions",
      "Throttle records dropped to make room for others."),
    F(server_reuses, "server_connection_reuses",
      "Logins served by a kept server connection instead of a new one (pool_mode = session)."),
    F(logins_without_server, "logins_without_server",
      "Logins answered without a server connection, as one of their pool's connections logged "
      "in (pool_mode = transaction)."),
    F(servers_kept, "server_connections_kept",
      "Server connections kept for the next client as their client left."),
    F(servers_not_kept, "server_connections_not_kept",
      "Server connections closed as their client left although pooling could keep them (in a "
      "transaction, too old, RECONNECT, reset failed)."),
    F(servers_rolled_back, "server_connections_rolled_back",
      "Server connections of clients gone inside a transaction kept after a cancel and a ROLLBACK "
      "(server_rollback_timeout), instead of closed."),
    F(txn_returns, "transaction_pool_returns",
      "Server connections given back to the pool at the end of a transaction (pool_mode = "
      "transaction)."),
    F(txn_direct_takes, "transaction_pool_direct_takes",
      "Idle server connections a transaction took at once, without a login of pgnear's own "
      "(pool_mode = transaction: an exact fit on its route's first host, nothing to check)."),
    F(txn_waited_takes, "transaction_pool_waited_takes",
      "Server connections a transaction that waited for its full pool took as they were given "
      "back, without a login of pgnear's own (pool_mode = transaction)."),
    F(txn_pins, "transaction_pool_pins",
      "Sessions under pool_mode = transaction that came to keep their server connection for the "
      "rest of their session (a temporary table, SET ROLE, ...)."),
    {"nearest_near", "nearest_transactions", "ran=\"near\"",
     "Transactions of sessions needing nearest, by where they ran: near (answered by a standby), "
     "forwarded (refused there as writes, run again on a primary), forward_failed (forwarded, "
     "and answered with an error there too).",
     offsetof(struct worker_stats, nearest_near)},
    {"nearest_forwarded", "nearest_transactions", "ran=\"forwarded\"",
     "Transactions of sessions needing nearest, by where they ran: near (answered by a standby), "
     "forwarded (refused there as writes, run again on a primary), forward_failed (forwarded, "
     "and answered with an error there too).",
     offsetof(struct worker_stats, nearest_forwarded)},
    {"nearest_forward_failed", "nearest_transactions", "ran=\"forward_failed\"",
     "Transactions of sessions needing nearest, by where they ran: near (answered by a standby), "
     "forwarded (refused there as writes, run again on a primary), forward_failed (forwarded, "
     "and answered with an error there too).",
     offsetof(struct worker_stats, nearest_forward_failed)},
    F(nearest_state_syncs, "nearest_state_syncs",
      "Times a session needing nearest under pool_mode = session had its settings, role and SQL "
      "PREPAREs carried from one of its server connections to the other."),
    {"moves_done", "session_moves", "result=\"moved\"",
     "Live sessions the admin asked to move to another server, by result.",
     offsetof(struct worker_stats, moves_done)},
    {"moves_failed", "session_moves", "result=\"not_moved\"",
     "Live sessions the admin asked to move to another server, by result.",
     offsetof(struct worker_stats, moves_failed)},
    {"move_hold_us", NULL, NULL, "Microseconds moves done held their client, summed.",
     offsetof(struct worker_stats, move_hold_us)},
    MOVE_HOLD(0, "1ms"),
    MOVE_HOLD(1, "5ms"),
    MOVE_HOLD(2, "10ms"),
    MOVE_HOLD(3, "25ms"),
    MOVE_HOLD(4, "50ms"),
    MOVE_HOLD(5, "100ms"),
    MOVE_HOLD(6, "250ms"),
    MOVE_HOLD(7, "1s"),
    MOVE_HOLD(8, "over_1s"),
};

_Static_assert(sizeof(fields) / sizeof(fields[0]) == sizeof(struct worker_stats) / sizeof(uint64_t),
               "every counter of struct worker_stats has a stat_field");

const struct stat_field *stat_fields(size_t *n)
{
    *n = sizeof(fields) / sizeof(fields[0]);
    return fields;
}

void stat_move_hold(struct worker_stats *st, int64_t hold_us)
{
    int i = 0;
    while (i < STAT_MOVE_HOLD_BUCKETS - 1 && hold_us > (int64_t)stat_move_hold_le_ms[i] * 1000)
        i++;
    stat_inc(&st->move_hold_buckets[i]);
    stat_add(&st->move_hold_us, hold_us > 0 ? (uint64_t)hold_us : 0);
}

int stat_sqlstate_class(const char *sqlstate)
{
    for (int i = 0; i < STAT_SQLSTATE_CLASSES - 1; i++)
        if (sqlstate_classes[i] != NULL && strncmp(sqlstate, sqlstate_classes[i], 2) == 0)
            return i;
    return STAT_SQLSTATE_CLASSES - 1;
}
