/*
 * timeouts_state.h — what PgBouncer's timeouts keep of a session
 * (timeouts.h), s->timeouts from the first timeout that applies to the
 * session (NULL before).  Only timeouts.c writes it; the others read it.
 */
#ifndef PGNEAR_PROXY_SESSION_TIMEOUTS_STATE_H
#define PGNEAR_PROXY_SESSION_TIMEOUTS_STATE_H

#include <stdbool.h>
#include <stdint.h>

/* Where the session's client is, as the timeouts see it. */
enum timeouts_phase {
    TIMEOUTS_IDLE,     /* between transactions, nothing asked: client_idle_timeout */
    TIMEOUTS_QUERY,    /* a request going on (or waiting for a connection): query_timeout */
    TIMEOUTS_IDLE_TXN, /* inside a transaction, nothing asked: idle_transaction_timeout */
};

struct timeouts_state {
    bool on;        /* followed at each of its events: a timeout is set, or a reload's wait */
    bool stale;     /* a reload came: the values are read again as the next transaction starts */
    bool armed;     /* the session timer runs for deadline_ms */
    bool canceled;  /* query_timeout canceled the request going on */
    bool canceling; /* that cancel is being answered here (txn_cancel.h) */
    uint8_t where;  /* enum timeouts_phase */
    /* The values in force (milliseconds, 0: off), read as its transaction started. */
    int32_t query_ms, transaction_ms, idle_transaction_ms, client_idle_ms;
    /* monotonic_ms: the request, the transaction, the idle time began; the timer's deadline */
    int64_t query_since_ms, transaction_since_ms, idle_since_ms, deadline_ms;
    /*
     * The server connection's answers (tx_track's counts) when last seen: a
     * later one while a request goes on began the next request; one that
     * left the server idle ended a transaction, though nothing saw the
     * session idle between (its next request sent at once).
     */
    const void *answered_on; /* that connection (compared, never followed) */
    uint64_t answered, answered_idle;
    /*
     * query_timeout's cancel sent to a server that has said nothing since:
     * the connection (NULL: none watched), its bytes read then, when
     * (monotonic_ms).
     */
    const void *cancel_on;
    uint64_t cancel_bytes_in;
    int64_t cancel_sent_ms;
};

#endif
