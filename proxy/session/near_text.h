/*
 * near_text.h — what the text of a nearest session's messages says of
 * where its transaction runs (near.h): the need a message begins it with
 * (a block, an advisory lock, a text that pins, DO, CALL, or a name that
 * its database's catalog does not positively know to only read,
 * func_catalog.h), the names that catalog does not know yet, and the
 * Queries a READ ONLY block on a standby refuses.
 */
#ifndef PGNEAR_PROXY_NEAR_TEXT_H
#define PGNEAR_PROXY_NEAR_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "routing/need.h"

struct session;

/*
 * What a transaction that the whole message msg (n bytes, header
 * included) begins needs: a primary for a block that is not READ ONLY, an
 * advisory lock, a text that would pin the session, or one that runs a
 * routine that may write; else the nearest host.  read_only: a READ ONLY
 * block.
 */
enum session_need near_need_of(const struct session *s, const uint8_t *msg, size_t n,
                               bool *read_only);

struct func_set;

/*
 * Whether a Query, Parse or Bind (msg, n bytes) names a function,
 * relation, operator or type that names (its database's copy,
 * func_catalog.h) does not know: the caller has the catalog read again
 * before it places the transaction.  settle: names was read after the
 * message came, so what it still lacks is noted absent there (a primary
 * gives PostgreSQL's own error for it) and the answer is false.
 */
bool near_text_unknown(const struct session *s, struct func_set *names, const uint8_t *msg,
                       size_t n, bool settle);

/*
 * The first pinning reason in a text (a Query's, a Parse's, the statement
 * a Bind names) of the session: txn_pin_scan's, or under pool_mode =
 * session txn_pin_scan_carried's, which sets *changes (when not NULL)
 * for a change of its state that it does not pin for.
 */
const char *near_text_pins(const struct session *s, const uint8_t *sql, size_t len, bool *changes);

/*
 * pool_mode = session: a Bind's statement may change the session's state
 * (a set_config it runs, say): its text is scanned again.  msg holds the
 * first n bytes of the Bind (its portal and statement names, when n
 * covers them).  The first pinning reason, or NULL.
 */
const char *near_bind_pins(struct session *s, const uint8_t *msg, size_t n);

/* Why a Query in a block that runs on a standby is refused: its error's words. */
struct near_refusal {
    char what[128];     /* "an advisory lock", a pin's reason, "NOTIFY" ... */
    const char *detail; /* what the standby would do with it, or cannot */
    const char *hint;   /* the way out */
};

/*
 * Whether a Query or Parse (msg, n bytes) in a block that runs on a standby would
 * do there what a primary's block would not, or what a standby cannot:
 * take an advisory lock (which would exclude no session of the primary),
 * keep the session on the standby (a pin), NOTIFY, or make the block
 * READ WRITE or SERIALIZABLE.  Then *out says why.
 */
bool near_block_refusal(const struct session *s, const uint8_t *msg, size_t n,
                        struct near_refusal *out);

/*
 * The Query or Parse at the head of client.in (msg, n bytes) replaced by
 * a DO of pgnear's own that has the standby raise 0A000 with r's words
 * (a Parse's as it executes, its statement's name and parameters kept).
 * False: out of memory.
 */
bool near_refuse_in_block(struct session *s, const uint8_t *msg, size_t n,
                          const struct near_refusal *r);

#endif
