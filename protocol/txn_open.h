/*
 * txn_open.h — what the text of a transaction's first Query or Parse
 * says of where the transaction may run (the `nearest` need).
 *
 * A session that needs `nearest` runs each transaction on the nearest
 * host that can run it.  pgnear does not parse SQL to tell reads from
 * writes: a statement that writes is tried near and, answered 25006 by a
 * standby before anything reached the client, run again on a primary.
 * What that cannot do is move a transaction block once its client has
 * seen rows, so blocks are placed when they begin, from the words that
 * begin them, and this scan reads those words:
 *
 *   TXN_FIRST_BEGIN  BEGIN or START TRANSACTION, with the access mode it
 *        names, if any: READ ONLY or READ WRITE (ISOLATION LEVEL READ
 *        COMMITTED and the like are not access modes);
 *        and whether it names ISOLATION LEVEL SERIALIZABLE, which a standby
 *        cannot run;
 *   TXN_FIRST_SET_TRANSACTION  SET TRANSACTION with its access mode;
 *        SET SESSION CHARACTERISTICS AS TRANSACTION is a session default
 *        (default_transaction_read_only, which the server reports), and
 *        counts as TXN_FIRST_OTHER;
 *   TXN_FIRST_BLOCK_END  COMMIT, END, ROLLBACK, ABORT (not COMMIT
 *        PREPARED or ROLLBACK PREPARED, which end another transaction,
 *        nor PREPARE TRANSACTION);
 *   TXN_FIRST_OTHER  anything else, an empty text included.
 *
 * and, over the whole text, whether it calls an advisory-lock function
 * (pg_advisory_*, pg_try_advisory_*, session or transaction level, lock
 * or unlock): a lock taken on a standby excludes nobody on the primary,
 * so such a transaction belongs on the primary; and whether the text
 * holds more than one statement, and whether one after the first is not
 * a plain read: a statement that begins with SELECT, VALUES, TABLE, SHOW
 * or WITH and has none of the words INSERT, UPDATE, DELETE, MERGE, INTO,
 * SHARE (FOR UPDATE, FOR SHARE), nextval or setval.  Anything else a
 * standby would refuse, or may (a block, a SET, DDL, COPY), counts as not
 * a plain read: a Query whose first statement's rows may have reached
 * the client past the hold cannot be run again elsewhere, so it begins
 * on a primary.  A word in a later statement errs towards the primary.
 *
 * The text is cut by sql_lex.c as PostgreSQL's lexer cuts it: nothing in
 * a string, a quoted identifier or a comment counts.  Words compare
 * without case; advisory-lock function names also match quoted, exactly.
 * One pass, linear, no allocation, no byte read past len.
 */
#ifndef PGNEAR_PROTOCOL_TXN_OPEN_H
#define PGNEAR_PROTOCOL_TXN_OPEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum txn_first {
    TXN_FIRST_OTHER,
    TXN_FIRST_BEGIN,
    TXN_FIRST_SET_TRANSACTION,
    TXN_FIRST_BLOCK_END,
};

enum txn_access {
    TXN_ACCESS_UNSAID,     /* the statement names no access mode */
    TXN_ACCESS_READ_ONLY,  /* READ ONLY, the last one named */
    TXN_ACCESS_READ_WRITE, /* READ WRITE, the last one named */
};

struct txn_open {
    enum txn_first first;   /* the text's first statement */
    enum txn_access access; /* the first statement's access mode (BEGIN, SET TRANSACTION) */
    bool serializable;      /* ISOLATION LEVEL SERIALIZABLE in the first statement (BEGIN...) */
    bool advisory_lock;     /* an advisory-lock function called anywhere in the text */
    bool several;           /* a statement after the first one */
    bool later_writes;      /* a statement after the first that is not a plain read */
};

/* Reads sql (len bytes, not necessarily NUL-terminated) into *out. */
void txn_open_scan(const uint8_t *sql, size_t len, struct txn_open *out);

/*
 * The lock mode of the first LOCK statement in a text (len bytes) that a
 * standby refuses (25006, "cannot execute LOCK TABLE during recovery"),
 * as PostgreSQL spells it ("SHARE", "ACCESS EXCLUSIVE", ...), or NULL:
 * none.  A standby grants ACCESS SHARE, ROW SHARE and ROW EXCLUSIVE
 * alone; a LOCK that names no mode takes ACCESS EXCLUSIVE.  A primary
 * grants them all in a READ ONLY block.  Read as txn_open_scan reads.
 */
const char *txn_open_lock_refused(const uint8_t *sql, size_t len);

/*
 * Whether a text (len bytes) may make the session's transactions
 * serializable by default, which a standby cannot run: it names
 * SERIALIZABLE and default_transaction_isolation (SET, set_config) or
 * SESSION CHARACTERISTICS.  The bytes are read without the lexer, case
 * aside: a mention in a string or a comment counts too, which only sends
 * the session's transactions to a primary.
 */
bool txn_open_sets_serializable(const uint8_t *sql, size_t len);

/*
 * Whether startup parameters make the session serializable by default:
 * options (-c or --default_transaction_isolation=serializable, NULL
 * none) or the parameter default_transaction_isolation itself (NULL none).
 */
bool txn_open_startup_serializable(const char *options, const char *isolation);

#endif
