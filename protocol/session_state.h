/*
 * session_state.h — what a PostgreSQL session carries that a move to
 * another server must give the new one, read back from the old server in
 * one round trip and replayed on the new one in one pipelined round trip.
 *
 * The read is one simple Query (session_state_query) whose rows are
 * (kind, name, value, extra), all text:
 *
 *   'f'  facts that keep a session where it is, and where it stands:
 *        temporary tables, session-level advisory locks, WITH HOLD
 *        cursors, the WAL position the session has seen, session_user
 *   's'  a setting the session changed (SET, set_config): pg_settings'
 *        source 'session', with its current value
 *   'r'  the role of SET ROLE ("none" when it was not set)
 *   'l'  a channel of LISTEN
 *   'q'  a statement of SQL PREPARE: its text as the client sent it
 *   'p'  a statement of the extended protocol's Parse: name, text and
 *        parameter types (an oid[] as text)
 *
 * in that order; session_state_query_own_limits's 'w' rows (a limit on a
 * statement, name and value) come before them.  Each row is parsed as it comes (session_state_row)
 * and turned at once into the extended-protocol messages that set it up again on a new server, in
 * the order settings, role, channels, statements, so that SET ROLE comes after the settings that
 * may need the login user's rights and before the statements whose names it may resolve.  One Sync
 * ends them (session_state_finish): the server runs them as one implicit
 * transaction, so that a failure of any undoes them all.
 *
 * What is not read, and so not carried: the unnamed statement, currval()
 * and lastval(), extension state, pg_backend_pid().  Nothing here trusts
 * a length field; nothing is sent to the server that came from it as SQL
 * text except the statements' own texts, which it parsed before.
 */
#ifndef PGNEAR_PROTOCOL_SESSION_STATE_H
#define PGNEAR_PROTOCOL_SESSION_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* The replay's size at most: a session with more prepared text than this is not moved. */
#define SESSION_STATE_MAX_BYTES (16u * 1024 * 1024)
/* The limits on a statement that pgnear lifts for its own (session_state_query_own_limits). */
#define SESSION_STATE_LIMITS 2
/* A Parse's parameter types at most (PostgreSQL's own limit is 65535). */
#define SESSION_STATE_MAX_TYPES 65535

enum session_state_result {
    SESSION_STATE_OK = 0,
    SESSION_STATE_BAD = -1,  /* a row not of the query's shape */
    SESSION_STATE_FULL = -2, /* the replay would be larger than SESSION_STATE_MAX_BYTES */
    SESSION_STATE_OOM = -3,
};

struct session_state {
    /* facts ('f' rows) */
    uint64_t temp_tables;
    uint64_t advisory_locks;
    uint64_t hold_cursors;
    bool lsn_known;   /* the server told its WAL position */
    uint64_t lsn;     /* the position the session has seen: written (primary) or replayed */
    bool in_recovery; /* the old server is a standby */
    char session_user[64];
    /* what is carried */
    unsigned settings, channels, statements;
    bool role_set; /* SET ROLE to something other than none */
    /* The session's limits on a statement ('w' rows), set again last in the replay. */
    struct {
        char name[32];
        char value[64];
    } limits[SESSION_STATE_LIMITS];
    unsigned nlimits;
    /* Parse/Bind/Execute messages, then a Sync: what the new server is sent. */
    struct evbuffer *replay;
    bool setting_statement_parsed; /* the set_config statement is in the replay */
    /*
     * Set by the caller: the extended protocol's statements ('p' rows)
     * are not replayed (a session whose statements pgnear follows has
     * them parsed again where it needs them: txn_prep.h).
     */
    bool skip_protocol_statements;
};

/* The query that reads a session's state: one round trip, rows as above. */
const char *session_state_query(void);

/*
 * The same read in a transaction of pgnear's own, whatever the session
 * set (a nearest session's sync, near_sync.h): read committed (a standby
 * refuses serializable), statement_timeout and lock_timeout lifted
 * (SET LOCAL, ended with the transaction).  The session's own limits come
 * first, as 'w' rows (name, value), kept aside and set again last in the
 * replay, so that nothing of the replay runs under them either.
 */
const char *session_state_query_own_limits(void);

/*
 * The same, with 'w' rows only for the limits the session set itself
 * (pg_settings' source 'session'): a transaction-pooling client's
 * settings (txn_settings.h), which carry nothing the client did not set.
 */
const char *session_state_query_session_limits(void);

/*
 * A replay's own transaction as above (read committed, no statement or
 * lock timeout), first in it: before any setting it carries.
 */
int session_state_own_limits(struct session_state *st);

/* An empty state; SESSION_STATE_OOM when its buffer could not be made. */
int session_state_init(struct session_state *st);
void session_state_free(struct session_state *st);

/* One DataRow of the query's answer (its body, len bytes). */
int session_state_row(struct session_state *st, const uint8_t *body, size_t len);

/*
 * One setting, name = value, replayed as the 's' rows are: the bound
 * set_config(name, value, false), parsed once and then bound and executed
 * for each; counted in settings.  A kept server connection's handover
 * replays the client's startup parameters through it too.
 */
int session_state_setting(struct session_state *st, const char *name, const char *value);

/* Ends the replay: the session's limits ('w' rows), then its Sync, after the last row. */
int session_state_finish(struct session_state *st);

/*
 * Why the state keeps the session where it is (static text), or NULL
 * when it may move: temporary tables, advisory locks, WITH HOLD cursors,
 * or SET SESSION AUTHORIZATION (session_user not login_user).
 */
const char *session_state_unmovable(const struct session_state *st, const char *login_user);

#endif
