/*
 * txn_settings.h — under pool_mode = transaction, the settings a client
 * set for its session (SET, SET SESSION, SET TIME ZONE, RESET,
 * set_config(name, value, false)) follow it from one server connection
 * to the next instead of pinning it to the one that ran them.
 *
 * The mechanism is nearest's (near_sync.h), on session_state.h: a
 * transaction whose text may change the session's settings
 * (txn_pin_scan_carried), or whose server reports a setting changed
 * (ParameterStatus), marks them unknown; before the connection goes back
 * to the pool, the session's state is read back from it in one round
 * trip (session_state_query_session_limits), so that what is recorded is
 * what PostgreSQL applied: a SET in a transaction that rolled back is
 * gone, SET LOCAL left nothing, RESET ALL and DISCARD ALL cleared them.
 * What that read finds that cannot follow a client (temporary tables,
 * session advisory locks, WITH HOLD cursors, SET ROLE, SET SESSION
 * AUTHORIZATION, LISTEN, SQL PREPARE) pins it, as the text would have.
 *
 * A connection given back with a client's settings on it is reset
 * (server_reset_query) before anyone else takes it, as one that ran
 * anything else is: every idle connection is at its login's state, and
 * the pool needs no second key.  On the next connection the recorded
 * settings are replayed before the client's first message, in the same
 * write, with no Sync, ended by an empty Query of their own: no round
 * trip.  Its ReadyForQuery carries what the server reports of them
 * (TimeZone, application_name, ...: PostgreSQL reports a change at the
 * next ReadyForQuery), swallowed with their other answers: the client
 * heard those when it set them, and the server measures its next reports,
 * at the client's ReadyForQuery, from the client's own values, as on a
 * direct connection.  A replay the server refuses ends the session with
 * the server's error: nothing of the client's ran without its settings.
 * A client that never sets anything pays nothing.  Used only where
 * server_reset_query is set (without it a given-back connection would
 * keep them: such a session pins as before).
 */
#ifndef PGNEAR_PROXY_TXN_SETTINGS_H
#define PGNEAR_PROXY_TXN_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;
struct server_conn;

/* The replay is done: the client's first message goes on. */
typedef void (*txn_settings_go)(struct session *s);
/* The read is done: why (static text) the client must be pinned, or NULL. */
typedef void (*txn_settings_read_done)(struct session *s, const char *why);

/* Settings follow this session from now on; its record is made at its first change. */
void txn_settings_start(struct session *s);

/* The session ends: its record goes. */
void txn_settings_end(struct session *s);

/* Whether they follow it (txn_settings_start ran). */
bool txn_settings_on(const struct session *s);

/* Its settings may have changed on the attached connection (a text, a ParameterStatus). */
void txn_settings_touched(struct session *s);

/*
 * A Parse (named: not the unnamed statement) whose text may change them
 * (changes): its statement may run in a later transaction, on another
 * connection, so each transaction after reads them back (a named one's
 * for good; the unnamed one's until a Parse replaces it).
 */
void txn_settings_parsed(struct session *s, bool named, bool changes);

/*
 * A Bind (body: blen bytes; NULL: of the unnamed statement, without the
 * prepared-statement follower) of a statement parsed earlier whose text
 * may change them: they may change where it runs.  A Bind the client sent
 * while the last transaction's settings were read back runs on that
 * connection after the read, in no new transaction's replay: without
 * this, psycopg's Bind of a prepared set_config() after its Parse and
 * Sync changed a setting nobody read back.
 */
void txn_settings_bound(struct session *s, const uint8_t *body, uint32_t blen);

/* Settings recorded (for SHOW CLIENTS): 0 when none. */
unsigned txn_settings_count(const struct session *s);

/* Whether a read or a replay runs on the attached connection: the client waits. */
bool txn_settings_busy(const struct session *s);

/* Whether answers of pgnear's own are owed there (a pipelined replay's too). */
bool txn_settings_owed(const struct session *s);

/* Whether the attached connection may hold settings of the client's: it must be reset. */
bool txn_settings_on_conn(const struct session *s);

/* The connection goes back to the pool: true when it must be reset first. */
bool txn_settings_let_go(struct session *s);

/*
 * The connection is idle and about to go back: when its settings may have
 * changed, reads them back (true: done is called once the record is new,
 * or with why the session must be pinned for what the read found).  False: nothing to read.
 */
bool txn_settings_read(struct session *s, txn_settings_read_done done);

/*
 * A connection attached for the next transaction: the recorded settings
 * are replayed on it first (true: go is called when it has them; a
 * refusal ends the session).  False: nothing to replay.
 */
bool txn_settings_apply(struct session *s, txn_settings_go go);

#endif
