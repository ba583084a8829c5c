/*
 * prep_int.h — what the parts of prepared statements under transaction
 * pooling (prepared.h) share: the objects, and the functions one part uses
 * of another.  The parts, each using only those before it:
 *   prep_store.c   the tables, statements, registry, names and caches;
 *   prep_queue.c   the answers a server owes, and the messages pgnear writes;
 *   prep_sql.c     the name a DEALLOCATE or an EXECUTE names;
 *   prep_parse.c   the client's Parse, and forwarding a client's message;
 *   prep_check.c   the plan check of a name planned by another client;
 *   prep_client.c  the client's other messages (it drives parse and check);
 *   prep_server.c  the server's messages, and clients and servers made and freed.
 * A function's longer comment stays with its definition.
 */
#ifndef PGNEAR_PROTOCOL_PREP_INT_H
#define PGNEAR_PROTOCOL_PREP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "protocol/tx_track.h"

struct evbuffer;

/* PostgreSQL's largest message body; anything longer is no message of a session. */
#define PREP_MAX_BODY 0x3fffffffu
/* Unanswered-message entries a server keeps for reuse. */
#define PREP_SPARE_ENTRIES 32
#define STMT_NAME_LEN      (sizeof(PREP_NAME_PREFIX) - 1 + 16)
/* PostgreSQL's error for a statement whose result type changed, and where it comes from. */
#define STALE_PLAN_MESSAGE "cached plan must not change result type"
#define STALE_PLAN_ROUTINE "RevalidateCachedQuery"

/* ---- the objects ---- */

struct prep_link {
    struct prep_link *next;
    uint64_t hash;
};

struct prep_table {
    struct prep_link **b;
    size_t nb;
    size_t count;
};

/*
 * Takes l, which is in t, out of it: here, beside the tables, so that the
 * inline prep_stmt_unref below calls nothing of prep_store.c's (which
 * includes this header: no circle between the two).
 */
static inline void prep_table_del(struct prep_table *t, struct prep_link *l)
{
    struct prep_link **pp = &t->b[l->hash & (t->nb - 1)];
    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    t->count--;
}

struct prep_stmt {
    struct prep_link link; /* the registry's table, by mix64(id) */
    uint64_t key;          /* hash of context, types and text */
    uint64_t id;           /* the number in its name */
    uint64_t context;
    size_t text_len;
    const uint8_t *types; /* ntypes OIDs as a Parse carries them: 4 bytes each, big-endian */
    const char *text;     /* NUL-terminated */
    uint32_t refs;
    uint16_t ntypes;
    bool barrier;  /* the text mentions DISCARD or DEALLOCATE */
    bool settings; /* the text may change the session's settings (txn_pin_scan_carried) */
    bool proven;   /* a server has parsed it: a Parse of it can be answered without one */
    bool stale;    /* a server refused its plan, whose result type changed: see prep_stmt_retire */
    bool superseded; /* its text plans otherwise now (prep_plan_check): left to the names it has */
    bool described;  /* a client was told its description: desc (prep_verify_send) */
    uint64_t desc;   /* prep_desc_hash of the first Describe 'S' a client had of it */
    struct prep_stmt *runs; /* its text is "EXECUTE" of this one (prep_parse.c), referenced */
    char name[STMT_NAME_LEN + 1];
};

struct prep_registry {
    struct prep_table stmts;
    uint64_t seed;
    uint64_t seq; /* the last entry's number, over all the servers */
    struct prep_stats stats;
};

/*
 * A client's name.  real: what the answers the client has had made it;
 * spec: what the messages sent will make it; mod: the number of the last
 * unanswered entry that changes it (0: none).  Both NULL and no entry
 * naming it: freed.
 */
struct prep_name {
    struct prep_link link; /* the client's table */
    struct prep_stmt *real, *spec;
    uint64_t mod;
    uint32_t refs; /* unanswered entries naming it */
    uint8_t len;
    uint8_t replan; /* REPLAN_*: answered from another's plan, checked at its first use */
    char key[];     /* the name's first PREP_NAME_KEY bytes at most, NUL-terminated */
};

struct prep_client {
    struct prep_registry *reg;
    struct prep_server *server; /* where its unanswered entries are, while it has any */
    struct prep_table names;
    uint64_t context;
    struct prep_stmt *unnamed_real, *unnamed_spec;
    uint64_t unnamed_mod;
    uint32_t entries; /* unanswered entries on server */
    uint32_t nnames;  /* names with a speculative statement */
    bool replaying;   /* its messages run again elsewhere (prep_client_set_replay) */
    /* During prep_client_message_from: the input a Query is moved out of, and whether it was. */
    struct evbuffer *query_from;
    bool query_moved;
};

/* A statement in a server's cache: real and spec as for names. */
struct prep_slot {
    struct prep_link link;           /* the server's table, by mix64(stmt->id) */
    struct prep_slot *newer, *older; /* the LRU list: the slots whose spec is set */
    struct prep_stmt *stmt;
    uint64_t mod;
    uint32_t refs; /* unanswered entries that need it */
    bool real, spec;
    uint8_t verify; /* VERIFY_*: its fresh plan here compared with what clients were told */
};

/*
 * HOW_CHECK: pgnear's own question (prep_plan_check), whose answers, errors
 * included, go nowhere.
 */
enum entry_how { HOW_FORWARD, HOW_SKIP, HOW_FAKE, HOW_FAIL, HOW_CHECK };

/* A name's plan check (prep_plan_check): none due, due at its first use, asked. */
enum { REPLAN_NONE, REPLAN_DUE, REPLAN_ASKED };

/* A slot's prep_verify_send: none outstanding, its Describe asked, answered otherwise than told. */
enum { VERIFY_NONE, VERIFY_ASKED, VERIFY_WRONG };

/* A CHECK entry's description: the text afresh, the cached statement (prep_plan_check),
 * prep_verify_send. */
enum { CHECK_AFRESH, CHECK_CACHED, CHECK_VERIFY };

/* What answers an entry: none (FAKE, the end of a COPY), or the server's messages. */
enum entry_expect {
    X_NONE,
    X_MARK, /* the client's CopyDone or CopyFail: answered by nothing */
    X_PARSE,
    X_BIND,
    X_CLOSE,
    X_DESC_S,
    X_DESC_P,
    X_EXEC,
    X_SYNC,
    X_QUERY, /* Query and FunctionCall: anything up to ReadyForQuery */
};

/* What an entry changes: made real when answered, undone when skipped. */
enum entry_sets {
    SET_NAME = 1,     /* the client's name becomes name_val */
    SET_SLOT = 2,     /* the server has slot, or not (slot_val) */
    SET_CUNNAMED = 4, /* the client's unnamed statement becomes unnamed_val */
    SET_SUNNAMED = 8, /* the server's the same */
    SET_BARRIER = 16, /* may run DISCARD ALL or DEALLOCATE ALL */
};

struct prep_entry {
    struct prep_entry *prev, *next;
    struct prep_client *client; /* NULL: pgnear's own, or its client left */
    uint64_t seq;
    uint8_t how, expect, sets;
    uint8_t step;      /* Describe 'S': its ParameterDescription came */
    uint8_t fake_type; /* FAKE: '1', '3', or 'C' (DEALLOCATE's CommandComplete and 'Z') */
    bool slot_val;
    struct prep_name *name;
    struct prep_stmt *name_val;
    struct prep_slot *slot;
    struct prep_stmt *unnamed_val;
    uint8_t *error; /* FAIL: pgnear's ErrorResponse, whole */
    size_t error_len;
    uint8_t check; /* CHECK: which description it reads (CHECK_*) */
};

/*
 * A server connection.  Its transaction status is the tracker's (tx);
 * batch_open and copy_in look like TX_BATCH and TX_COPYING but are what
 * the queue of answers expects, and differ from them: a batch's messages
 * dropped after an error do not open it; a Sync that went to a COPY IN
 * leaves it closed; a COPY the server ended with an error lasts until
 * the client's CopyDone or CopyFail (its Syncs meanwhile are given no
 * entry).  Reading the tracker's there would change those answers.
 */
struct prep_server {
    struct prep_registry *reg;
    const struct tx_track *tx; /* the connection's: its status is the last ReadyForQuery's */
    struct prep_table slots;
    struct prep_slot *newest, *oldest;
    struct prep_entry *head, *tail, *spare;
    size_t cached; /* slots whose spec is set */
    unsigned capacity, nspare;
    struct prep_stmt *unnamed_real, *unnamed_spec;
    uint64_t unnamed_mod;
    uint64_t last_sync; /* the number of the last Sync queued */
    unsigned barriers;  /* unanswered entries that may run DISCARD/DEALLOCATE ALL */
    bool unnamed_real_known, unnamed_spec_known;
    bool batch_open;      /* extended-protocol messages of the client since the last Sync */
    bool batch_sent;      /* ... of which some were sent (not all answered by pgnear) */
    bool dropping;        /* the server skips to the Sync: the client's messages are dropped */
    bool copy_in;         /* in a COPY IN whose end the client has not sent */
    bool barrier_execute; /* the batch bound a statement that may deallocate: Executes are barriers
                           */
    bool flushed;         /* nothing sent since a Flush or Sync */
    bool broken;
    bool check_failed[2]; /* the plan check's: its fresh Parse or a Describe failed; cached */
    uint64_t check[2];    /* the plan check's descriptions, hashed: afresh, cached */
    uint64_t described;   /* the Describe 'S' answered now, hashed (prep_desc_hash) */
    struct prep_stats stats;
};

struct stmt_src {
    const char *text;
    size_t text_len;
    const uint8_t *types;
    uint16_t ntypes;
    uint64_t context;
};

/* ---- prep_store.c ---- */

/* Frees every element (drop, when not NULL, lets go of what each holds first) and the buckets. */
void prep_table_free(struct prep_table *t, void (*drop)(void *ctx, struct prep_link *l), void *ctx);
/* ASCII, case-insensitive: does word (lower case, a letter first) occur in text? */
bool prep_text_mentions(const char *text, size_t len, const char *word);
/* Whether text mentions DISCARD or DEALLOCATE (prep_text_mentions of either, in one reading). */
bool prep_text_may_deallocate(const char *text, size_t len);
struct prep_stmt *prep_registry_get(struct prep_registry *reg, const struct stmt_src *src);
/* The registry's statement for src, if it has one (no reference taken); NULL: none. */
struct prep_stmt *prep_registry_find(const struct prep_registry *reg, const struct stmt_src *src);
void prep_stmt_retire(struct prep_registry *reg, struct prep_stmt *st);
struct prep_name *prep_name_find(const struct prep_client *c, const char *name, size_t len);
struct prep_name *prep_name_get(struct prep_client *c, const char *name, size_t len);
void prep_name_set_spec(struct prep_client *c, struct prep_name *n, struct prep_stmt *val);
/* Frees n when nothing holds it. */
void prep_name_release(struct prep_client *c, struct prep_name *n);
struct prep_slot *prep_slot_find(const struct prep_server *s, const struct prep_stmt *st);
struct prep_slot *prep_slot_get(struct prep_server *s, struct prep_stmt *st);
void prep_slot_touch(struct prep_server *s, struct prep_slot *slot);
/* The cache counts, and the LRU list holds, the slots whose spec is set. */
void prep_slot_set_spec(struct prep_server *s, struct prep_slot *slot, bool has);
void prep_slot_release(struct prep_server *s, struct prep_slot *slot);

/* ---- prep_queue.c ---- */

struct prep_entry *prep_entry_push(struct prep_server *s, struct prep_client *c, uint8_t how,
                                   uint8_t expect);
void prep_entry_free(struct prep_server *s, struct prep_entry *e);
/* The entry makes the client's name n name val. */
void prep_entry_name(struct prep_server *s, struct prep_entry *e, struct prep_name *n,
                     struct prep_stmt *val);
/* The entry needs slot; with set, it puts it in the cache or takes it out (val). */
void prep_entry_slot(struct prep_server *s, struct prep_entry *e, struct prep_slot *slot, bool set,
                     bool val);
void prep_entry_settle(struct prep_server *s, struct prep_entry *e);
void prep_entry_fail(struct prep_server *s, struct prep_entry *e);
void prep_entry_discard(struct prep_server *s, struct prep_entry *e, uint64_t end);
/* The client left: the entry's answers go nowhere, and its names are not touched. */
void prep_entry_detach(struct prep_server *s, struct prep_entry *e);
/* Where st's text EXECUTEs another statement: that one parsed on s first if it lacks it. */
bool prep_runs_ready(struct prep_client *c, struct prep_server *s, const struct prep_stmt *st,
                     struct evbuffer *out);
/* prep_send_parse after prep_runs_ready: how every Parse of a statement goes (prep_parse.c). */
struct prep_entry *prep_parse_send(struct prep_client *c, struct prep_server *s, uint8_t how,
                                   const char *name, const struct prep_stmt *st,
                                   struct evbuffer *out);
/* Parse of st under name to s, and its entry (prep_parse_send first readies what st runs). */
struct prep_entry *prep_send_parse(struct prep_client *c, struct prep_server *s, uint8_t how,
                                   const char *name, const struct prep_stmt *st,
                                   struct evbuffer *out);
/* Close of statement name to s (SKIP), and its entry. */
struct prep_entry *prep_send_close(struct prep_client *c, struct prep_server *s, const char *name,
                                   struct evbuffer *out);
uint8_t *prep_build_error(const char *sqlstate, const char *head, const char *name,
                          const char *tail, const char *routine, size_t *len);
int prep_fail_batch_error(struct prep_client *c, struct prep_server *s, uint8_t *error, size_t len,
                          struct evbuffer *out);
/* prep_fail_batch_error with 'prepared statement "name"' and tail. */
int prep_fail_batch(struct prep_client *c, struct prep_server *s, const char *sqlstate,
                    const char *name, const char *tail, struct evbuffer *out);
/* Frees the head's FAKE answers and ends of COPY in order, the FAKE ones written to the client. */
int prep_queue_advance(struct prep_server *s, struct evbuffer *to_client);

/* ---- prep_sql.c ---- */

/*
 * A text that begins "EXECUTE name": the name as PostgreSQL reads it into
 * out (cap bytes), and in *rest the offset of what follows the name.
 */
bool prep_execute_name(const char *text, size_t len, char *out, size_t cap, size_t *rest);

/* ---- prep_parse.c ---- */

/* What sending a client's message of type as it came tells s (prep_forward does it). */
void prep_forward_note(struct prep_server *s, uint8_t type);
/* The client's message as it came. */
int prep_forward(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len,
                 struct evbuffer *out);
struct prep_entry *prep_forward_entry(struct prep_client *c, struct prep_server *s, uint8_t type,
                                      const uint8_t *body, size_t len, uint8_t expect,
                                      struct evbuffer *out);
int prep_make_room(struct prep_client *c, struct prep_server *s, size_t need, struct evbuffer *out);
/* Parse of st to s (how: FORWARD for the client's Parse, SKIP for one of pgnear's). */
struct prep_entry *prep_parse_into_cache(struct prep_client *c, struct prep_server *s, uint8_t how,
                                         struct prep_stmt *st, struct evbuffer *out);
int prep_verify_send(struct prep_client *c, struct prep_server *s, struct prep_stmt *st,
                     struct evbuffer *out);
int prep_verify_drop(struct prep_client *c, struct prep_server *s, struct prep_slot *slot,
                     bool retire, struct evbuffer *out);
int prep_client_parse(struct prep_client *c, struct prep_server *s, const uint8_t *body, size_t len,
                      struct evbuffer *out);

/* ---- prep_check.c ---- */

int prep_name_verified(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                       struct evbuffer *out);
int prep_plan_check(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                    struct evbuffer *out);

/* ---- inline ---- */

/*
 * The small functions that every message of a session runs through, here
 * so that each part inlines them: a call from one part's file to another's
 * would cost more than they do.  Their kin are in prep_store.c (references),
 * prep_queue.c (entries) and prep_parse.c (a client's message).
 */

static inline void prep_stmt_unref(struct prep_registry *reg, struct prep_stmt *st)
{
    while (st != NULL && --st->refs == 0) {
        struct prep_stmt *runs = st->runs; /* the statement it ran goes on without it */
        prep_table_del(&reg->stmts, &st->link);
        free(st);
        st = runs;
    }
}

/* *field = val, references moved. */
static inline void prep_stmt_set(struct prep_registry *reg, struct prep_stmt **field,
                                 struct prep_stmt *val)
{
    if (val != NULL)
        val->refs++;
    prep_stmt_unref(reg, *field);
    *field = val;
}

/* Was the change numbered mod sent before a Sync not yet answered (in an earlier batch)? */
static inline bool prep_earlier(const struct prep_server *s, uint64_t mod)
{
    return mod != 0 && mod < s->last_sync;
}

static inline void prep_entry_client_unnamed(struct prep_server *s, struct prep_entry *e,
                                             struct prep_stmt *val)
{
    struct prep_client *c = e->client;
    e->sets |= SET_CUNNAMED;
    prep_stmt_set(s->reg, &e->unnamed_val, val);
    c->unnamed_mod = e->seq;
    prep_stmt_set(s->reg, &c->unnamed_spec, val);
}

static inline void prep_entry_server_unnamed(struct prep_server *s, struct prep_entry *e,
                                             struct prep_stmt *val)
{
    e->sets |= SET_SUNNAMED;
    prep_stmt_set(s->reg, &e->unnamed_val, val);
    s->unnamed_mod = e->seq;
    prep_stmt_set(s->reg, &s->unnamed_spec, val);
    s->unnamed_spec_known = true;
}

static inline void prep_entry_barrier(struct prep_server *s, struct prep_entry *e)
{
    e->sets |= SET_BARRIER;
    s->barriers++;
}

/* A whole message of type to out (pkt_add_msg): PREP_OK or PREP_OOM. */
static inline int prep_put_msg(struct evbuffer *out, uint8_t type, const void *body, size_t len)
{
    return pkt_add_msg(out, (char)type, body, len) == 0 ? PREP_OK : PREP_OOM;
}

/* Messages of an active session, and whether they belong to an extended-protocol batch. */
static inline int prep_client_type(uint8_t type)
{
    switch (type) { /* a switch: twice for every message, where strchr cost ~20 instructions */
    case 'P':
    case 'B':
    case 'D':
    case 'C':
    case 'E':
        return 1;
    case 'S':
    case 'Q':
    case 'F':
    case 'c':
    case 'f':
    case 'H':
    case 'd':
        return 0;
    default:
        return -1;
    }
}

#endif
