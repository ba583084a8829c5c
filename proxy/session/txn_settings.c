/*
 * txn_settings.c — a transaction-pooling client's settings, read back
 * where they changed and replayed where it runs next (txn_settings.h).
 */
#include "proxy/session/txn_settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/framing.h"
#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "protocol/session_state.h"
#include "proxy/base/log.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"

enum txn_settings_step {
    TXN_SETTINGS_IDLE,
    TXN_SETTINGS_READING,   /* the state query runs on the attached connection */
    TXN_SETTINGS_PIPELINED, /* the replay runs there, in the same write as the client's first
                               messages, before them: its answers swallowed */
};

struct txn_settings {
    struct session_state rec; /* the replay of what the client set (when have) */
    bool have;
    bool dirty;           /* the attached connection's settings may differ from rec */
    bool named_changes;   /* a named statement's text may change them: wherever it runs */
    bool unnamed_changes; /* the unnamed statement's text may (a Bind may run it again) */
    bool on_conn;         /* the attached connection may hold settings of the client's */
    enum txn_settings_step step;
    struct session_state read; /* the read under way */
    unsigned reads;            /* state queries sent for this read */
    bool canceled;             /* the last one was canceled (57014): asked again */
    bool failed;
    txn_settings_read_done read_done;
};

/* As near_sync's: a tight statement_timeout may cancel the query's first statements. */
#define TXN_SETTINGS_READS 5

static struct txn_settings *ts_of(const struct session *s)
{
    return s->rare->txn_set;
}

/*
 * The record, made at the session's first change: a client that never
 * sets anything (most of an idle crowd) carries none.  NULL when out of
 * memory: the session keeps its connection from then on instead.
 */
static struct txn_settings *ts_made(struct session *s)
{
    if (s->rare->txn_set != NULL || !s->txn_settings_follow || s->pinned != NULL)
        return s->rare->txn_set;
    struct session_rare *r = session_rare_own(&s->rare);
    if (r == NULL || (r->txn_set = calloc(1, sizeof(*r->txn_set))) == NULL)
        s->pinned = "out of memory";
    return s->rare->txn_set;
}

void txn_settings_start(struct session *s)
{
    s->txn_settings_follow = true;
}

void txn_settings_end(struct session *s)
{
    struct txn_settings *t = ts_of(s);
    if (t == NULL)
        return;
    if (t->have)
        session_state_free(&t->rec);
    if (t->step == TXN_SETTINGS_READING)
        session_state_free(&t->read);
    free(t);
    session_rare_own(&s->rare)->txn_set = NULL; /* (t was set: the part is the session's) */
}

bool txn_settings_on(const struct session *s)
{
    return s->txn_settings_follow;
}

void txn_settings_parsed(struct session *s, bool named, bool changes)
{
    struct txn_settings *t = changes ? ts_made(s) : ts_of(s);
    if (t == NULL)
        return; /* nothing changed yet, or pinned */
    if (named)
        t->named_changes |= changes;
    else
        t->unnamed_changes = changes;
    if (changes)
        txn_settings_touched(s);
}

void txn_settings_bound(struct session *s, const uint8_t *body, uint32_t blen)
{
    const struct txn_settings *t = ts_of(s);
    if (t == NULL || !(t->named_changes || t->unnamed_changes))
        return;
    if (body == NULL ? t->unnamed_changes
                     : s->prep != NULL && prep_client_bind_changes_settings(s->prep, body, blen))
        txn_settings_touched(s);
}

void txn_settings_touched(struct session *s)
{
    struct txn_settings *t = ts_made(s);
    if (t != NULL && t->step != TXN_SETTINGS_READING) /* its own answers are not the client's */
        t->dirty = t->on_conn = true;
}

unsigned txn_settings_count(const struct session *s)
{
    const struct txn_settings *t = ts_of(s);
    return t != NULL && t->have ? t->rec.settings + t->rec.nlimits : 0;
}

bool txn_settings_busy(const struct session *s)
{
    const struct txn_settings *t = ts_of(s);
    return t != NULL && t->step == TXN_SETTINGS_READING;
}

bool txn_settings_owed(const struct session *s)
{
    const struct txn_settings *t = ts_of(s);
    return t != NULL && t->step != TXN_SETTINGS_IDLE;
}

bool txn_settings_on_conn(const struct session *s)
{
    const struct txn_settings *t = ts_of(s);
    return t != NULL && (t->on_conn || t->step != TXN_SETTINGS_IDLE);
}

bool txn_settings_let_go(struct session *s)
{
    bool reset = txn_settings_on_conn(s);
    if (reset)
        s->rare->txn_set->on_conn = false;
    return reset;
}

/* The transaction-pooling reader takes the attached connection's answers again. */
static void ts_reader_back(struct session *s)
{
    endpoint_set_reader(&s->server_conn->ep, relay_server_reader(s)->read);
}

static void ts_bad_length(struct session *s)
{
    session_close(s, "its server sent a message of invalid length");
}

/* The state query, on the attached connection; false: the session ended. */
static bool ts_ask(struct session *s)
{
    struct txn_settings *t = ts_of(s);
    struct server_conn *sc = s->server_conn;
    t->reads++;
    t->canceled = false;
    if (session_state_init(&t->read) != SESSION_STATE_OK ||
        pkt_add_query(sc->ep.out, session_state_query_session_limits()) != 0) {
        session_close(s, "out of memory");
        return false;
    }
    t->read.skip_protocol_statements = true;
    if (sc->prep != NULL)
        prep_server_query_sent(sc->prep); /* the Query drops its unnamed statement */
    return endpoint_flush(s, &sc->ep) == 0;
}

/* Why what the read found keeps the client on this connection (static text), or NULL. */
static const char *ts_read_pins(const struct session *s, const struct session_state *st)
{
    const char *why = session_state_unmovable(st, s->user);
    if (why != NULL)
        return why;
    if (st->role_set)
        return "SET ROLE";
    if (st->channels > 0)
        return "LISTEN";
    if (st->statements > 0)
        return "a SQL PREPARE";
    return NULL;
}

/* The read ended (status: its ReadyForQuery's): the record is new, or the client pinned. */
static void ts_read_end(struct session *s, char status)
{
    struct txn_settings *t = ts_of(s);
    const char *why = t->failed || status != 'I' ? "its settings could not be read back" : NULL;
    if (why == NULL)
        why = ts_read_pins(s, &t->read);
    if (why == NULL && session_state_finish(&t->read) != SESSION_STATE_OK)
        why = "out of memory";
    t->step = TXN_SETTINGS_IDLE;
    /*
     * What the client sent meanwhile runs on this connection, no replay
     * before it: a statement parsed earlier that may change them (psycopg's
     * Parse and Sync, then its Bind) may run there, so it is read back after.
     */
    t->dirty = false;
    if (why != NULL) {
        session_state_free(&t->read);
    } else {
        if (t->have)
            session_state_free(&t->rec);
        t->have = t->read.settings + t->read.nlimits > 0;
        if (t->have)
            t->rec = t->read;
        else
            session_state_free(&t->read);
        t->on_conn = t->have; /* none read: the connection is at its login's, as is */
        slog_debug(s, "its settings follow it: %u", txn_settings_count(s));
    }
    memset(&t->read, 0, sizeof(t->read));
    ts_reader_back(s);
    t->read_done(s, why); /* the caller pins for why */
}

/* Whether an ErrorResponse (body: len bytes) says its statement was canceled. */
static bool ts_canceled(const uint8_t *body, uint32_t len)
{
    const char *code = pkt_report_field(body, len, 'C');
    return code != NULL && strcmp(code, "57014") == 0;
}

/* One message of the answer to the state query. */
static int ts_read_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct txn_settings *t = ts_of(s);
    if (type == 'D' && !t->failed && session_state_row(&t->read, body, len) != SESSION_STATE_OK)
        t->failed = true;
    if (type == 'E' && ts_canceled(body, len) && t->reads < TXN_SETTINGS_READS && !t->failed)
        t->canceled = true; /* before its own limits were lifted: asked again */
    else if (type == 'E')
        t->failed = true;
    if (type != 'Z')
        return MSG_CONSUMED;
    char status = len >= 1 ? (char)body[0] : '?';
    frame_consume(s->server_conn->ep.in, len);
    if (t->canceled && status == 'I') {
        session_state_free(&t->read);
        slog_debug(s, "reading its settings was canceled by its statement_timeout: again");
        ts_ask(s);
        return MSG_STOP;
    }
    ts_read_end(s, status);
    return MSG_STOP;
}

/* Each as large as a state row may be. */
#define TS_READER(name, handler)                                                                   \
    MSG_SERVER_READER(static, name, handler, SESSION_STATE_MAX_BYTES, ts_bad_length)

TS_READER(ts_read_reader, ts_read_message)

/*
 * One answer of the replay: swallowed up to its ReadyForQuery, the
 * ParameterStatus of a setting the server reports among them (the client
 * heard it when it set it).
 */
static int ts_pipelined_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct txn_settings *t = ts_of(s);
    if (type == 'E') {
        struct pg_error error;
        pg_error_from_report(&error, body, len);
        t->step = TXN_SETTINGS_IDLE;
        slog_info(s, "its settings could not be applied to its next server connection");
        session_fail(s, &error); /* the server's words; it skips the client's up to a Sync */
        return MSG_STOP;
    }
    if (type != 'Z')
        return MSG_CONSUMED;
    frame_consume(s->server_conn->ep.in, len);
    t->step = TXN_SETTINGS_IDLE;
    ts_reader_back(s); /* the client's answers follow */
    return MSG_STOP;
}

TS_READER(ts_pipelined_reader, ts_pipelined_message)

/* The attached connection's answers go to reader (paused reads resumed). */
static void ts_take(struct session *s, void (*reader)(struct session *))
{
    endpoint_resume_read(&s->server_conn->ep);
    endpoint_set_reader(&s->server_conn->ep, reader);
}

bool txn_settings_read(struct session *s, txn_settings_read_done done)
{
    struct txn_settings *t = ts_of(s);
    if (t == NULL || !t->dirty || t->step != TXN_SETTINGS_IDLE || s->server_conn == NULL)
        return false;
    t->step = TXN_SETTINGS_READING;
    t->reads = 0;
    t->failed = false;
    t->read_done = done;
    ts_take(s, ts_read_reader);
    ts_ask(s);
    return true;
}

/*
 * An empty Query behind the replay: it commits the replay's implicit
 * transaction, and its ReadyForQuery brings PostgreSQL's report of each
 * replayed setting that the server reports (14 and later report at a
 * ReadyForQuery): swallowed there, so that what the server reports after
 * it, at the client's, is measured from the client's own values, as on
 * a direct connection.  After a refused setting the server skips it, as
 * every message up to a Sync.
 */
static int ts_add_end(struct evbuffer *out)
{
    return pkt_add_query(out, "");
}

/*
 * The replay without its Sync, then an empty Query, in front of the
 * client's messages: they run after it, in a transaction of their own,
 * at no round trip of the replay's; a setting refused there has the
 * server skip them up to their Sync (the session ends with its error:
 * none of them ran).
 */
static bool ts_apply_pipelined(struct session *s, txn_settings_go go)
{
    struct txn_settings *t = ts_of(s);
    struct server_conn *sc = s->server_conn;
    static const uint8_t sync[5] = {'S', 0, 0, 0, 4};
    size_t n = evbuffer_get_length(t->rec.replay);
    const uint8_t *replay = evbuffer_pullup(t->rec.replay, -1);
    if (replay == NULL || n < sizeof(sync) || memcmp(replay + n - 5, sync, 5) != 0 ||
        evbuffer_add(sc->ep.out, replay, n - 5) != 0 || ts_add_end(sc->ep.out) != 0) {
        session_close(s, "out of memory");
        return true;
    }
    t->step = TXN_SETTINGS_PIPELINED;
    t->failed = false;
    t->on_conn = true;
    slog_debug(s, "its %u settings go to its server connection %llu, pipelined",
               txn_settings_count(s), (unsigned long long)sc->id);
    go(s); /* the client's messages in the same write */
    if (!s->closed && s->server_conn == sc && t->step == TXN_SETTINGS_PIPELINED)
        ts_take(s, ts_pipelined_reader);
    return true;
}

bool txn_settings_apply(struct session *s, txn_settings_go go)
{
    struct txn_settings *t = ts_of(s);
    if (t == NULL)
        return false;
    if (t->step == TXN_SETTINGS_READING) /* its connection ended under the read */
        session_state_free(&t->read);
    t->step = TXN_SETTINGS_IDLE;
    /* A statement parsed before, which may change them, may run in this transaction. */
    t->dirty = t->on_conn = t->named_changes || t->unnamed_changes;
    if (!t->have)
        return false;
    struct server_conn *sc = s->server_conn;
    if (sc->prep != NULL)
        prep_server_query_sent(sc->prep); /* the replay's Parse takes the unnamed statement */
    return ts_apply_pipelined(s, go);
}
