/*
 * prepared.h — extended-protocol prepared statements under transaction
 * pooling: a client's named statements kept working while its
 * transactions run on whichever server connection the pool gives it,
 * with the errors PostgreSQL itself would give.
 *
 * Three objects, one worker's, no locks:
 *
 *   struct prep_registry  the distinct statements (struct prep_stmt),
 *       keyed by a hash of (query text, parameter type OIDs, the caller's
 *       64-bit context digest: a digest of what changes how a text is
 *       analysed, the startup search_path and the like, and the database
 *       and user), compared in full when the hash matches.  Each has a
 *       server-side name "PGNEAR_" and 16 hex digits, unique in the
 *       registry (a hash already taken by another statement takes the next
 *       free number), its text and types (to Parse it again on any
 *       server), and a count of references: client names, servers' caches,
 *       unanswered messages.  It is freed when the last goes.
 *   struct prep_client    one per client session: its names, each naming
 *       a registry statement, and its unnamed statement.  Names are
 *       compared on their first PREP_NAME_KEY bytes, as PostgreSQL's own
 *       table of statements does (NAMEDATALEN - 1).
 *   struct prep_server    one per server connection: the statements it
 *       holds, kept in LRU order up to a capacity (max_prepared_statements,
 *       at least 1), whose unnamed statement it holds, and the queue of
 *       answers it owes, in the order it will send them.
 *
 * The rewriter.  The caller frames messages and hands each one here, type
 * byte and body: prep_client_message for a client's message on the server
 * connection it runs on now, prep_server_message for the server's.  The
 * first appends what to send to the server, and pushes on the server's
 * queue one entry per message sent or answered:
 *
 *   FORWARD  the server's answer goes to the client;
 *   SKIP     a message of pgnear's own (a Parse sent again, an eviction's
 *            Close, a Sync for a client that left): its answer is dropped,
 *            except an ErrorResponse that the client must see;
 *   FAKE     pgnear answers the client itself at this place in the stream:
 *            ParseComplete, CloseComplete;
 *   FAIL     pgnear's own failure: a Bind of a statement that never exists
 *            ("PGNEAR_ERROR") makes the server fail and skip to the Sync as
 *            PostgreSQL would have, and its ErrorResponse is replaced by
 *            the one pgnear built.
 *
 * A FAKE answer is written to the client as soon as every answer ahead of
 * it is: by prep_client_message, when the queue ahead of it is empty, or
 * by prep_server_message, around the server's message that ends the entry
 * before it.  prep_server_message writes the server's message itself to
 * the client too when it goes there, so that the order is kept in one
 * place: the client's buffer gets the bytes in the order PostgreSQL would
 * have sent them.
 *
 * A client's messages:
 *
 *   Parse ""        forwarded.  The client's unnamed statement is now this
 *                   text; a server holds one unnamed statement, whoever's.
 *   Parse "x"       x taken: ERROR 42P05 'prepared statement "x" already
 *                   exists' (FAIL), after the server parsed the text as its
 *                   unnamed statement (SKIP): PostgreSQL parses and
 *                   analyses a text before it looks at the name, so a text
 *                   that fails gets its own error, as there.  Else x names
 *                   the registry's statement;
 *                   the server has it: FAKE ParseComplete, nothing sent;
 *                   else Parse of PGNEAR_n is sent (FORWARD).  The name is
 *                   the client's once its ParseComplete reaches it; when
 *                   the server skips the Parse the name never was.
 *   Bind, Describe 'S'  the statement name is rewritten (the rest is copied
 *                   as it is, every length checked); a statement the server
 *                   lacks is Parsed first (SKIP), as is the client's
 *                   unnamed statement on a server that holds another one
 *                   (one that has none for a client that has none is
 *                   closed first).  An unknown name is forwarded as it
 *                   came: the server answers 26000 'prepared statement "x"
 *                   does not exist' and skips to the Sync, as PostgreSQL
 *                   would.  An unknown name beginning PGNEAR_ gets the same
 *                   error from pgnear (FAIL), so that no client can reach
 *                   another's statements through the protocol.
 *   Close 'S'       the name is dropped, FAKE CloseComplete, nothing sent
 *                   (the server keeps the statement in its cache); an
 *                   unknown name the same (PostgreSQL closes nothing
 *                   silently).
 *   Describe 'P', Close 'P', Execute, Sync, Flush, Query, FunctionCall,
 *   CopyData, CopyDone, CopyFail   forwarded.  A Query drops the client's
 *                   unnamed statement and the server's, as PostgreSQL does.
 *
 * Which server messages answer what: Parse '1', Bind '2', Close '3',
 * Describe 'S' 't' then 'T' or 'n', Describe 'P' 'T' or 'n', Execute
 * anything up to 'C', 'I' or 's', Sync 'Z', Query and FunctionCall
 * anything up to 'Z'.  NoticeResponse, ParameterStatus and
 * NotificationResponse come at any time and answer nothing.  A server
 * message the queue did not expect is PREP_DESYNC: the connection can no
 * longer be followed and must be closed.
 *
 * Errors.  An ErrorResponse to an extended-protocol message makes the
 * server skip everything up to the next Sync: the entries after it up to
 * that Sync's are dropped unanswered, FAKE ones too (PostgreSQL would not
 * have answered them), and whatever they were to change did not happen;
 * when the client has not sent that Sync yet, its messages are dropped
 * until it does.  A failed Parse leaves no statement.  COPY IN: the Syncs
 * a client sends inside one are not answered (the CopyInResponse says
 * so, as in tx_track.h).
 *
 * What was changed and what is known.  Every name, every unnamed
 * statement, every statement in a server's cache has two values: the one
 * the answers so far made real, and the one the messages sent so far will
 * make (the speculative one, by which the next message is rewritten).  An
 * entry answered makes its value real; entries skipped after an error put
 * the speculative values back to the real ones.  This is exact within a
 * batch (up to a Sync): the server skips the whole rest of it.  A message
 * whose rewriting depends on a value that a batch still unanswered before
 * it may change is therefore not rewritten yet: PREP_WAIT, and the caller
 * keeps it and presents it again after the next server message (pgnear
 * sends a Flush, once, so that answers come).  The same while an
 * unanswered message may run DISCARD ALL or DEALLOCATE ALL (a Query, or a
 * bound statement, whose text holds either word): named statements wait
 * for its CommandComplete.  A client that pipelines Parse ""/Bind/Execute/
 * Sync batches never waits; one that binds in a batch a name it parsed or
 * closed in a batch still unanswered waits one round trip.
 *
 * Eviction.  Adding a statement to a full server cache sends a Close of
 * the least recently used one (SKIP, in line with everything else, its
 * CloseComplete dropped) first.  A statement that an unanswered message
 * needs is never evicted: when all are, the cache goes over its capacity
 * and comes back down at a later Parse or Sync.  A statement counts as in
 * the cache from the Parse sent (so that a Bind behind it in the batch
 * does not Parse it again) but is real only once its ParseComplete came.
 *
 * CommandComplete "DISCARD ALL" or "DEALLOCATE ALL": the server's cache is
 * empty and the client's names are gone (the unnamed statement stays, as
 * in PostgreSQL).  SQL PREPARE names the server's own statements and is not
 * followed (it pins the session); a Query that is just "DEALLOCATE name" of
 * a client's protocol-level statement is (prep_client_deallocate), and so
 * is one that begins "EXECUTE name" of one (parameters, more statements
 * after it as they came): the server's name is put in the client's, and
 * where the server lacks the statement it is Parsed first, with a Sync of
 * pgnear's own (HOW_CHECK), so that the Query runs whatever the Parse did;
 * not in a failed transaction (the server's 25P02), nor EXPLAIN EXECUTE or
 * CREATE TABLE ... AS EXECUTE (the server's 26000).  Known difference: a
 * statement that no longer parses there (its table dropped) gets the
 * Parse's error and then the Query's 26000 naming pgnear's name, where
 * PostgreSQL gives the first alone.  A client that deallocates a PGNEAR_
 * name by SQL gets errors later, as under PgBouncer.
 *
 * A statement whose result type changed (ALTER TABLE ... TYPE, a table
 * made again): a server refuses its plan with 0A000 "cached plan must not
 * change result type" at Bind or Describe, and PostgreSQL does so for the
 * statement's whole life.  At the first such error the statement is
 * retired (stats.retired): the names holding it keep it and get the same
 * error on every server (pgnear's own, FAIL, where a server lacks it: a
 * new plan there would return the new type under the client's old
 * description), and the next Parse of its text makes a new statement,
 * parsed afresh under a new name, as a direct connection would plan it.
 *
 * A named Parse answered from another's plan (FAKE, or
 * prep_client_parse_known) is checked at the name's first use on a server
 * that holds the statement, where nothing of the batch was sent and the
 * last ReadyForQuery said idle: a batch of pgnear's own (HOW_CHECK: Parse
 * of the text as the unnamed statement, Describe of it and of the cached
 * statement, Sync; prep_server_answers_own) waits one round trip, and
 * descriptions that differ (a parameter's or a column's type changed) or a
 * cached one refused make the statement superseded (stats.superseded: out
 * of the registry's lookups, left to the names that hold it) and the name
 * take its text parsed afresh.  Elsewhere (inside a transaction block, in
 * a batch under way) the name is used as it is.
 *
 * A statement described to a client (the first Describe 'S' of it that a
 * client had answered: its parameter types and its columns' names, types
 * and modifiers, prep_desc.h) is never planned afresh on a server without
 * being compared with that: where a server lacks it, the Parse its use
 * needs goes with a Describe of pgnear's own and a Flush, in the client's
 * batch (stats.verifies; one round trip per statement and server
 * connection, paid the first time it is parsed there).  Described
 * otherwise (its table changed since), the statement is closed there and
 * leaves the registry's lookups, and: a Bind or Describe of a name that
 * holds it gets 0A000 "cached plan must not change result type" with
 * PostgreSQL's routine (what the client's own statement gets directly;
 * the statement is retired), unless the name was answered from another's
 * plan and not yet used (it takes its text parsed afresh, as plan_check
 * does); a client's Parse of the text gets it parsed afresh.  A changed
 * parameter type counts as a change too: directly, a statement keeps the
 * parameter types it was planned with (the new plan would read the
 * client's values, binary ones especially, as other types), so 0A000
 * rather than a plan that binds otherwise than the client was told.
 *
 * Known differences from a direct connection: a named Parse answered from
 * the cache inside an aborted transaction gets ParseComplete where
 * PostgreSQL answers 25P02 (the Bind then gets the 25P02); a name used
 * where it cannot be checked (above) may get the old plan's 0A000 or
 * parameter types; a statement whose parameter types alone changed gets
 * 0A000 where PostgreSQL would plan it with the old types (and mostly fail
 * to, 42883); a statement no client described is planned afresh where a
 * server lacks it without a comparison (its clients read each result's
 * own RowDescription), and so is a client's unnamed statement parsed in
 * one transaction and bound in a later one on another connection; pgnear's own
 * ErrorResponses carry S, V, C and M only (and R for 0A000).  Not
 * followed: a client that breaks a COPY IN with a message other than
 * CopyData/Done/Fail, Sync or Flush (the answers may then be PREP_DESYNC:
 * the connection is closed).
 *
 * The pool's part.  A server connection may go to another client only
 * when prep_server_idle; a client that leaves mid-batch leaves the server
 * waiting for a Sync, which prep_server_finish_batch sends.  A client's
 * messages go to one server connection at a time: one that has answers
 * outstanding on another is PREP_BUSY.  A server reset (DISCARD ALL by the
 * pool) is prep_server_forget_all.
 *
 * Memory (x86-64, malloc's own overhead not counted): a client with no
 * statements 80 bytes (its table of names is made at its first name); a
 * server connection 240 and its table; each client name 48 bytes and the
 * name (at most PREP_NAME_KEY); each registry statement 112 bytes, its
 * text and 4 bytes a parameter type; each statement in a server's cache
 * 56; each unanswered message 96 (32 kept for reuse a server).  Tables:
 * 8 bytes a bucket, between one and two buckets an element.
 */
#ifndef PGNEAR_PROTOCOL_PREPARED_H
#define PGNEAR_PROTOCOL_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tx_track;

struct evbuffer;
struct prep_registry;
struct prep_client;
struct prep_server;

/* Names are compared on this many bytes, as PostgreSQL's (NAMEDATALEN - 1). */
#define PREP_NAME_KEY 63
/* The statement name pgnear's failures Bind: it never exists on a server. */
#define PREP_ERROR_NAME "PGNEAR_ERROR"
/* Server-side names: this prefix and 16 hex digits. */
#define PREP_NAME_PREFIX "PGNEAR_"

enum prep_result {
    PREP_OK = 0,
    PREP_WAIT = 1,    /* client message: not taken; present it again after a server message */
    PREP_BAD = -1,    /* a client message malformed or not of an active session: fail the client */
    PREP_OOM = -2,    /* out of memory: the server connection's state is lost, close it */
    PREP_DESYNC = -3, /* a server message not expected: close the server connection */
    PREP_BUSY = -4,   /* the client, or another, has answers outstanding on another server */
};

/* SHOW figures: the registry's totals are those of all its servers. */
struct prep_stats {
    uint64_t statements;     /* registry: distinct statements; server: statements cached */
    uint64_t parses_sent;    /* Parse messages of PGNEAR_ names sent, injected ones included */
    uint64_t parses_skipped; /* named Parses answered from the cache (FAKE ParseComplete) */
    uint64_t evictions;      /* Close messages sent to make room */
    uint64_t waits;          /* client messages held back (PREP_WAIT) */
    uint64_t retired;        /* registry: statements a server refused as stale (0A000) */
    uint64_t plan_checks;    /* names answered from another's plan, checked at first use */
    uint64_t superseded;     /* registry: statements whose text a check found planned otherwise */
    uint64_t verifies;       /* statements described to a client, parsed afresh and compared */
};

/* seed: mixed into the hash (0 is fine; a random one makes collisions hard to craft). */
struct prep_registry *prep_registry_new(uint64_t seed);
/* After every client and server of it is freed. */
void prep_registry_free(struct prep_registry *reg);
void prep_registry_stats(const struct prep_registry *reg, struct prep_stats *out);

/* context: the digest that makes one text two statements (search_path, database, user...). */
struct prep_client *prep_client_new(struct prep_registry *reg, uint64_t context);
/*
 * The client left: its names are dropped; its unanswered messages stay on
 * the server's queue, their answers dropped, so that the server's cache
 * ends right (a Parse the server skips never puts a statement there).
 */
void prep_client_free(struct prep_client *c);

/*
 * The text of the client's statement name (len bytes; "" the unnamed
 * one), as a Bind of it would run it, into *len; NULL when it has none.
 */
const char *prep_client_statement_text(const struct prep_client *c, const char *name, size_t len,
                                       size_t *text_len);

/*
 * While on, the client's messages are ones it sent before, run again on
 * another server connection (a transaction a standby refused as a write,
 * run on a primary): a Parse of a name that already names the same
 * statement is that statement made ready there, not a name taken.
 */
void prep_client_set_replay(struct prep_client *c, bool on);

/*
 * capacity: statements kept in the server's cache (at least 1).  tx: the
 * connection's tracker (tx_track.h), which the caller tells of every
 * message of the client's and the server's, pgnear's own excepted: the
 * transaction status is read there, not kept twice.  It outlives s.
 */
struct prep_server *prep_server_new(struct prep_registry *reg, unsigned capacity,
                                    const struct tx_track *tx);
/* The connection is closed: what it held and owed is forgotten. */
void prep_server_free(struct prep_server *s);

/*
 * One message of client c, running on server s: type and body (len bytes,
 * the length word's value less 4).  Appends to to_server what s is sent,
 * to to_client the answers pgnear gives now.  PREP_OK, PREP_WAIT (nothing
 * appended but maybe a Flush to to_server), or an error (enum prep_result).
 */
int prep_client_message(struct prep_client *c, struct prep_server *s, uint8_t type,
                        const uint8_t *body, size_t len, struct evbuffer *to_server,
                        struct evbuffer *to_client);
/*
 * The same for a message that lies whole at the head of from, its header
 * there just before body: a Query sent on as it came is moved out of from
 * into to_server (libevent hands whole chains over: no copy) and *moved
 * set; anything else leaves from as it was, for the caller to drain.
 */
int prep_client_message_from(struct prep_client *c, struct prep_server *s, uint8_t type,
                             const uint8_t *body, size_t len, struct evbuffer *from, bool *moved,
                             struct evbuffer *to_server, struct evbuffer *to_client);
/*
 * A whole client message that goes to the server as it came and nothing
 * else with it (Execute, Sync, Flush, a portal's Describe or Close, the
 * unnamed statement's Parse, and its Bind where the server holds it):
 * followed as prep_client_message follows it, and true: the caller moves
 * it on (a run of them at once, no copy).  False: nothing changed;
 * prep_client_message's way.
 */
bool prep_client_take_whole(struct prep_client *c, struct prep_server *s, uint8_t type,
                            const uint8_t *body, size_t len, struct evbuffer *to_client);

/*
 * Whether the client's Bind (body: len bytes) runs a statement whose text
 * may change the session's settings (SET, set_config): the name as the
 * client's messages so far make it.  False for a malformed Bind, which the
 * server refuses, and for a name the client does not hold.
 */
bool prep_client_bind_changes_settings(const struct prep_client *c, const uint8_t *body,
                                       size_t len);
/*
 * A client's named Parse answered without a server (the client has no
 * server connection now, and would wait for one just to be told
 * ParseComplete): when the registry holds that statement for the client's
 * context, some server has parsed it, and the name is free, the name is
 * the client's at once.  PREP_OK: the caller answers ParseComplete itself;
 * PREP_WAIT: not so, the Parse goes to a server as usual; PREP_BAD,
 * PREP_OOM.  Known difference: a statement whose tables were dropped since
 * another client parsed it fails at its Bind, not here.
 */
int prep_client_parse_known(struct prep_client *c, const uint8_t *body, size_t len);

/*
 * The statement name of a text that is only "DEALLOCATE [PREPARE] name
 * [;]", as PostgreSQL reads it (an unquoted name folded to lower case, a
 * quoted one as it is), into out (cap bytes); false for any other text,
 * DEALLOCATE ALL included (followed from its CommandComplete).  An
 * unnamed Parse of such a text, of one of the client's names, is followed
 * too: the server parses an empty DO in its place, the name goes once
 * that is parsed (the CommandComplete then says DO).
 */
bool prep_deallocate_name(const char *text, size_t len, char *out, size_t cap);

/*
 * A client's Query "DEALLOCATE name" (or DEALLOCATE PREPARE) of one of its
 * protocol-level statements: the name is dropped as a Close would drop it,
 * and pgnear answers for the server, in its place among the answers:
 * CommandComplete "DEALLOCATE" and a ReadyForQuery whose status is the
 * one the server's last ReadyForQuery before it says (the tracker's then:
 * the Query would not change it).  Drivers that keep a cache of
 * statements evict from it this way (psycopg 3).
 * PREP_OK; PREP_WAIT when the name is not the client's or a batch is open
 * (the Query goes to the server as it is); an error otherwise.
 */
int prep_client_deallocate(struct prep_client *c, struct prep_server *s, const char *name,
                           size_t len, struct evbuffer *to_client);

/*
 * One message of server s.  Appends to to_client, in order, pgnear's
 * answers due before it, the message itself if it goes to the client, and
 * those due after it.  PREP_OK, PREP_DESYNC or PREP_OOM.
 */
int prep_server_message(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len,
                        struct evbuffer *to_client);

/*
 * Whether a server message of type would go to the client as it is, with
 * nothing about it to follow: a DataRow or CopyData of the answer at the
 * head of the queue.  The caller may then pass it on without reading it
 * whole (a large row), and without calling prep_server_message for it.
 */
bool prep_server_passes(const struct prep_server *s, uint8_t type);

/*
 * Whether a whole server message (body, len) would go to the client as it
 * is with nothing to follow, as for prep_server_passes, and also a simple
 * Query's RowDescription, rows, errors and CommandComplete (but the tags
 * of DISCARD ALL and DEALLOCATE ALL): the caller may move it on without
 * calling prep_server_message, and a run of them at once.
 */
bool prep_server_passes_whole(const struct prep_server *s, uint8_t type, const uint8_t *body,
                              size_t len);

/*
 * A whole server message that goes to the client as it is and nothing
 * else with it (no ErrorResponse, no answer the queue makes itself after
 * it): followed as prep_server_message follows it, and true: the caller
 * moves it on.  False: nothing changed; prep_server_message's way.
 */
bool prep_server_take_whole(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len);

/*
 * Whether the server's next message (not NoticeResponse, ParameterStatus or
 * NotificationResponse) answers a question of pgnear's own, a plan check
 * with its own Sync: the client sees none of it, and the caller's count of
 * the client's requests and answers must not count it.
 */
bool prep_server_answers_own(const struct prep_server *s);

/* Everything sent is answered and no batch is open: s may serve another client. */
bool prep_server_idle(const struct prep_server *s);
/* Whether every message sent so far was answered (a batch may still be open). */
bool prep_server_answered(const struct prep_server *s);
/*
 * The client left mid-batch: when s waits for a Sync, appends one
 * (SKIP) to to_server.  PREP_OK or PREP_OOM.
 */
int prep_server_finish_batch(struct prep_server *s, struct evbuffer *to_server);
/*
 * A Sync of pgnear's own, batch or none, its answers the client's never:
 * the server's ReadyForQuery for a Query pgnear answered itself, where the
 * session waits for one to settle (nearest).  PREP_OK, or as above.
 */
int prep_server_sync(struct prep_server *s, struct evbuffer *to_server);
/* The server was reset (DISCARD ALL, or its session state is unknown): it holds nothing. */
/*
 * pgnear sent a simple Query of its own on the connection while nothing of
 * the client's was unanswered (a nearest session's state read back from
 * it: near_sync.h): the server's unnamed statement is gone, as any Query
 * drops it, and a client's unnamed statement is Parsed again there.
 */
void prep_server_query_sent(struct prep_server *s);
void prep_server_forget_all(struct prep_server *s);
void prep_server_stats(const struct prep_server *s, struct prep_stats *out);

/* The server-side name of client c's statement name (NULL: c has no such name now). */
const char *prep_client_lookup(const struct prep_client *c, const char *name);
/* Names client c has now (speculatively: messages sent but not answered count). */
size_t prep_client_count(const struct prep_client *c);
/* Whether c holds nothing (no name, no unnamed statement, nothing owed, not replaying). */
bool prep_client_empty(const struct prep_client *c);

#endif
