/*
 * txn_pin.h — which SQL ties a client to its server connection under
 * transaction pooling.
 *
 * Under transaction pooling a client's transactions run on whichever
 * server connection is free.  That is invisible to the client only as
 * long as everything it leaves behind ends with its transaction.  Some
 * SQL leaves state in the server's session instead, which the client's
 * next transaction expects to find and another client must not: such a
 * client is pinned to its server connection for the rest of its session.
 * txn_pin_scan reads the text of one Query message (or one Parse
 * message's query string) and says whether it does that, and why:
 *
 *   "a session-level SET"  a statement beginning with SET, except SET
 *        LOCAL, SET TRANSACTION and SET CONSTRAINTS, which end with the
 *        transaction.  SET SESSION, SET ROLE, SET TIME ZONE and SET x = y
 *        pin (a SET inside a transaction block outlives its COMMIT).
 *   "set_config() outside a transaction-local call"  set_config, as a word
 *        (pg_catalog.set_config too), unless its call's last argument is
 *        the bare keyword true or the literal 't', 'true' or 'on'.
 *   "a temporary object"  TEMP or TEMPORARY where PostgreSQL's grammar
 *        reads it as the keyword that makes one: right after CREATE,
 *        REPLACE, GLOBAL, LOCAL or INTO (CREATE TEMP TABLE, CREATE OR
 *        REPLACE TEMP VIEW, SELECT ... INTO TEMP t).  A column named temp
 *        elsewhere does not pin, nor does DISCARD TEMP.  Also a name
 *        qualified by pg_temp (or pg_temp_N) in a statement beginning
 *        with CREATE or right after INTO: CREATE TABLE pg_temp.t makes a
 *        temporary table as well.  Calling pg_temp.f() does not pin: the
 *        session that made f was pinned then.
 *   "LISTEN", "LOAD"  statements beginning with them.
 *   "a SQL PREPARE"  a statement beginning with PREPARE, except PREPARE
 *        TRANSACTION (two-phase commit).
 *   "a WITH HOLD cursor"  a statement beginning with DECLARE that holds
 *        the words WITH HOLD.
 *   "a session advisory lock"  pg_advisory_lock, pg_advisory_lock_shared,
 *        pg_try_advisory_lock or pg_try_advisory_lock_shared as a word;
 *        the _xact_ variants end with the transaction.
 *
 * The text is read as PostgreSQL's lexer reads it, so that nothing in a
 * string ('...', E'...' with its backslashes, $tag$...$tag$), a quoted
 * identifier ("temp" is a name, never the keyword) or a comment (-- to
 * the end of the line, and block comments, which nest) counts; $1 is a
 * parameter, not a dollar quote.  Words compare case-insensitively.  The function names are also
 * matched quoted ("set_config"(...) calls it all the same), case and all.  Any
 * ';' ends a statement: one inside parentheses is a syntax error, and
 * reading on as a new statement can only pin more.  The first reason in
 * the text is the one returned.
 *
 * What it cannot see: statements run by functions, DO blocks and
 * EXECUTE of dynamic SQL (their bodies are strings), and a function of
 * the client's own that does any of the above.  Where the text is
 * unclear it pins: a set_config not called, or whose call never closes;
 * SET or PREPARE alone; the words WITH HOLD anywhere in a DECLARE.
 * Unterminated strings and comments run to the end of the text.  One
 * pass, linear in len, no allocation, no byte read past len; an embedded
 * NUL is an ordinary byte (the server stops there, so what follows can
 * only pin more than it should).
 */
#ifndef PGNEAR_PROTOCOL_TXN_PIN_H
#define PGNEAR_PROTOCOL_TXN_PIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why sql (len bytes, not necessarily NUL-terminated) leaves state in the server's
 * session that outlives its transaction: a static English phrase, or NULL when it
 * does not (as far as the scan can tell). */
const char *txn_pin_scan(const uint8_t *sql, size_t len);

/*
 * The quick look both scans begin with: true when no word any reason
 * needs (SET, set_config, TEMP, pg_temp, LISTEN, LOAD, PREPARE, HOLD, an
 * advisory lock function, RESET, DISCARD, DEALLOCATE) begins where a
 * token could begin in the raw bytes, strings and comments read as text:
 * then the text cannot pin, and is not lexed.  A whole SET right after a
 * name (UPDATE t SET) is no statement's first word and does not count,
 * unless "--" occurs anywhere in the text.  Most queries are ruled out
 * here at a few instructions a byte; false says only that the full scan
 * must decide.
 */
bool txn_pin_rules_out(const uint8_t *sql, size_t len);

/*
 * The i-th word of the scan's keyword table (lower case), or NULL past
 * its end; *looked_for says whether txn_pin_rules_out must find it (the
 * rest matter only after one that it finds).  For test_txn_pin, which
 * holds the quick look to the table so that the two cannot drift.
 */
const char *txn_pin_keyword(size_t i, bool *looked_for);

/*
 * The same scan for a session whose settings are carried from one server
 * connection to another (a nearest session under session pooling, and a
 * transaction-pooling client, read them back and replay them:
 * session_state.h).  A session-level SET,
 * set_config(), a SQL PREPARE, and RESET, DISCARD or DEALLOCATE (which
 * undo them) do not pin it: they set *changes (left as it is otherwise),
 * and the scan reads on to the end of the text.  Returns the first reason
 * that does pin (a temporary object, LISTEN, LOAD, a WITH HOLD cursor, a
 * session advisory lock), or NULL.  A custom setting (a name with a dot:
 * SET [SESSION] app.tenant, set_config('app.tenant', ..., false), or a
 * set_config whose name is not one string constant) pins too, as "a
 * session-level custom setting (a name with a dot)": PostgreSQL shows
 * such a setting to no query, so it cannot be read back to be carried.
 */
const char *txn_pin_scan_carried(const uint8_t *sql, size_t len, bool *changes);

#endif
