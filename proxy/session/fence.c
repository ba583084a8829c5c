/*
 * fence.c — pgnear.fence after each transaction that wrote (fence.h).
 */
#include "proxy/session/fence.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/lsn.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/notify_watch.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"

/*
 * Where the WAL written so far ends, on its timeline as the WAL file name
 * gives it, with the sizes lsn_record_end needs:
 * "00000001/0/3000148 8192 16777216".  The insert position is past the
 * transaction's commit.
 */
#define FENCE_QUERY                                                                                \
    "SELECT substr(pg_walfile_name(i), 1, 8) || '/' || i || ' ' || "                               \
    "current_setting('wal_block_size') || ' ' || "                                                 \
    "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') "                           \
    "FROM pg_current_wal_insert_lsn() AS i"

/* FENCE_QUERY's answer is read only this long (the position and the two sizes). */
#define FENCE_ANSWER_MAX (LSN_TEXT_MAX + 32)

/* The fence's statement on the server, for the length of its request (fence_add_request). */
#define FENCE_STATEMENT PREP_NAME_PREFIX "FENCE"

/* A CommandComplete or ReadyForQuery longer than this is no tag worth reading whole. */
#define FENCE_TAG_MAX 256

/* Whether a CommandComplete tag names a command that writes (its first word). */
static bool fence_tag_writes(const uint8_t *tag, uint32_t len)
{
    static const char *const writes[] = {
        "INSERT",  "UPDATE",   "DELETE", "MERGE",    "CREATE",  "ALTER",
        "DROP",    "TRUNCATE", "GRANT",  "REVOKE",   "COMMENT", "REINDEX",
        "CLUSTER", "REFRESH",  "IMPORT", "SECURITY", "CALL",    "DO",
    };
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        size_t n = strlen(writes[i]);
        if (len >= n && memcmp(tag, writes[i], n) == 0 && (len == n || tag[n] == ' ' || !tag[n]))
            return true;
    }
    return false;
}

/* Moves n bytes from the server's input to the client's output. */
static int fence_move(struct session *s, size_t n)
{
    return msg_move(s, &s->server_conn->ep, s->client.out, n) < 0 ? -1 : 0;
}

/*
 * FENCE_QUERY in the extended protocol, under a statement name of
 * pgnear's own (PGNEAR_, as the follower of prepared statements names
 * its own on the server and refuses to a client): Close, Parse, Bind of
 * the unnamed portal (none is open: the session is between
 * transactions), Execute, Close, Sync.  A simple Query would drop the
 * server's unnamed statement, which a client may Bind again in its next
 * transaction.  The first Close takes away what a failed Execute left
 * (the server then skips to the Sync), the last leaves nothing behind.
 */
static int fence_add_request(struct evbuffer *out)
{
    static const char bind[] = "\0" FENCE_STATEMENT "\0\0\0\0\0\0\0"; /* no parameters */
    size_t name_len = sizeof(FENCE_STATEMENT) - 1;
    if (pkt_add_target(out, 'C', 'S', FENCE_STATEMENT, name_len) != 0 ||
        pkt_add_parse(out, FENCE_STATEMENT, name_len, FENCE_QUERY, sizeof(FENCE_QUERY) - 1, NULL,
                      0) != 0)
        return -1;
    if (pkt_add_msg(out, 'B', bind, sizeof(bind) - 1) != 0 || pkt_add_execute_all(out) != 0 ||
        pkt_add_target(out, 'C', 'S', FENCE_STATEMENT, name_len) != 0)
        return -1;
    return pkt_add_sync(out);
}

/* Sends the fence's request on the session's connection, nothing of the client's unanswered. */
static int fence_send_query(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    /* Counted as one request (its Sync), so that no safe point is seen until its answer is in. */
    tx_track_client(&sc->tx, 'Q');
    if (fence_add_request(sc->ep.out) != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    return endpoint_flush(s, &sc->ep);
}

int fence_begin(struct session *s)
{
    if (s->fence == NULL)
        s->fence = calloc(1, sizeof(*s->fence));
    return s->fence != NULL ? 0 : -1;
}

int fence_ask_after(struct session *s)
{
    s->fence->position_after = 0;
    /* Its backend's FATAL came after the transaction's end: nothing to ask (it ends). */
    if (server_conn_error_waits(s->server_conn))
        return 0;
    s->fence->after = true;
    return fence_send_query(s);
}

int fence_ask(struct session *s, uint32_t z_len)
{
    evbuffer_drain(s->server_conn->ep.in, 1 + (size_t)z_len);
    s->fence->asked = true;
    s->fence->answered = false;
    return fence_send_query(s);
}

/* FENCE_QUERY's answer: the position on its timeline, as the end of the last record. */
static bool fence_read(const char *answer, uint32_t *tli, uint64_t *lsn)
{
    unsigned long long block = 0, segment = 0;
    const char *space = strchr(answer, ' ');
    if (space == NULL || sscanf(space, " %llu %llu", &block, &segment) != 2 ||
        lsn_parse(answer, (size_t)(space - answer), tli, lsn) != LSN_OK)
        return false;
    *lsn = lsn_record_end(*lsn, block, segment);
    return true;
}

/* The answer is in: the fence (when the server gave one), then the ReadyForQuery held. */
static int fence_tell(struct session *s)
{
    uint8_t buf[64];
    struct pktbuf pb;
    s->fence->asked = false;
    s->fence->wrote = false;
    pkt_init(&pb, buf, sizeof(buf));
    if (s->fence->answered) {
        char fence[LSN_TEXT_MAX];
        s->fence->tli = s->fence->answer_tli;
        s->fence->lsn = s->fence->answer_lsn;
        lsn_format(s->fence->tli, s->fence->lsn, fence, sizeof(fence));
        pkt_begin(&pb, 'S');
        pkt_put_cstr(&pb, "pgnear.fence");
        pkt_put_cstr(&pb, fence);
        pkt_end(&pb);
    } else {
        slog_debug(s, "no fence for the transaction that wrote: the server did not say");
    }
    if ((pb.len > 0 && (!pkt_ok(&pb) || evbuffer_add(s->client.out, buf, pb.len) != 0)) ||
        pkt_add_ready(s->client.out, 'I') != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    return 0;
}

/*
 * The server ended the connection as it answered pgnear's own question (a
 * shutdown's 57P01, body: its blen bytes): no ReadyForQuery follows.  The
 * question ends here as at one, the ReadyForQuery held for it to the
 * client (no fence), and the connection serves nothing more (fatal_read):
 * transaction pooling lets it go, closed, and a session idle under
 * session pooling moves, as from an idle server's FATAL.  <0: the session
 * ended or moved.
 */
static int fence_answer_fatal(struct session *s, const uint8_t *body, uint32_t blen, uint32_t len)
{
    struct server_conn *sc = s->server_conn;
    const struct session_flow *flow = s->w->shared->flow;
    slog_info(s, "server connection %llu: its server ended it as it answered pgnear's question",
              (unsigned long long)sc->id);
    sc->fatal_read = true;
    sc->ep.last_type = 'Z'; /* the error was pgnear's, not the client's */
    tx_track_server(&sc->tx, 'Z', 'I');
    sc->tx.answered--;
    sc->tx.answered_idle--;
    bool after = s->fence->after;
    s->fence->after = false;
    if (!after && fence_tell(s) < 0)
        return -1;
    if (s->txn == NULL && flow->server_ended_idle != NULL &&
        flow->server_ended_idle(s, body, blen, "it sent a FATAL error")) {
        endpoint_flush(s, &s->client); /* the ReadyForQuery held is the client's */
        return -1;
    }
    evbuffer_drain(sc->ep.in, 1 + (size_t)len);
    return 0;
}

int fence_answer(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct server_conn *sc = s->server_conn;
    uint32_t blen = len - 4; /* the body's bytes: the length counts itself */
    /* A setting's change, or a notification that came meanwhile: the client's. */
    if (type == 'S' || type == 'A') {
        if (type == 'S' && s->txn != NULL) /* transaction pooling follows a setting (txn.h) */
            s->txn->server_param(s, body, len);
        return fence_move(s, 1 + (size_t)len);
    }
    if (type == 'D' && blen >= 6 && pkt_be32(body + 2) < FENCE_ANSWER_MAX &&
        6 + pkt_be32(body + 2) <= blen) {
        uint32_t n = pkt_be32(body + 2);
        char value[FENCE_ANSWER_MAX];
        uint32_t tli;
        uint64_t lsn;
        memcpy(value, body + 6, n);
        value[n] = '\0';
        bool read = fence_read(value, &tli, &lsn);
        if (read && s->fence->after)
            s->fence->position_after = lsn;
        else if (read) {
            s->fence->answered = true;
            s->fence->answer_tli = tli;
            s->fence->answer_lsn = lsn;
        }
    }
    if (type == 'E' && pkt_report_fatal(body, blen))
        return fence_answer_fatal(s, body, blen, len);
    if (type == 'E')
        slog_debug(s, "the server could not say where its WAL is: no fence");
    uint8_t status = pkt_ready_status(type, body, blen); /* read before the drain frees it */
    evbuffer_drain(sc->ep.in, 1 + (size_t)len);
    if (type != 'Z')
        return 0;
    tx_track_server(&sc->tx, 'Z', status);
    /* pgnear's own request is no query of the client's (SHOW STATS). */
    sc->tx.answered--;
    sc->tx.answered_idle -= sc->tx.status == 'I';
    if (s->fence->after) {
        s->fence->after = false;
        return 0;
    }
    return fence_tell(s);
}

/* A CommandComplete or ReadyForQuery, whole: a write seen, or a transaction's end. */
static int fence_watch(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct server_conn *sc = s->server_conn;
    uint8_t status = pkt_ready_status(type, body, len - 4);
    if (type == 'S') {
        s->txn->server_param(s, body, len);
        return fence_move(s, 1 + (size_t)len);
    }
    tx_track_server(&sc->tx, (uint8_t)type, status);
    if (notify_watch_on(s))
        notify_watch_server_msg(s, (uint8_t)type, body, len - 4);
    if (fence_note(s, type, body, len))
        return fence_ask(s, len);
    return fence_move(s, 1 + (size_t)len);
}

bool fence_note(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    if (!s->report_fence)
        return false;
    if ((type == 'C' && body != NULL && len >= 4 && fence_tag_writes(body, len - 4)) || type == 'G')
        s->fence->wrote = true; /* (G: COPY FROM STDIN) */
    /* With more of a pipelining client's requests outstanding, the next quiet one asks. */
    return pkt_ready_status(type, body, len >= 4 ? len - 4 : 0) == 'I' && s->fence->wrote &&
           tx_track_at_safe_point(&s->server_conn->tx);
}

bool server_error_unasked(const struct session *s, uint8_t type)
{
    return type == 'E' && s->txn != NULL && s->pinned == NULL && !fence_asking(s->fence) &&
           tx_track_at_safe_point(&s->server_conn->tx);
}

void server_error_passes(struct session *s, const uint8_t *body, size_t len)
{
    if (pkt_report_fatal(body, len))
        s->server_conn->fatal_sent = true;
}

/* Enough of a report to hold its severity fields (S and V, "FATAL" each). */
#define SERVER_ERROR_PEEK 64

void server_error_passes_head(struct session *s, struct endpoint *src, const struct msg_head *h)
{
    uint8_t head[PKT_HEADER_LEN + SERVER_ERROR_PEEK];
    size_t want = 1 + (size_t)h->len < sizeof(head) ? 1 + (size_t)h->len : sizeof(head);
    ev_ssize_t n = evbuffer_copyout(src->in, head, want);
    if (n > PKT_HEADER_LEN)
        server_error_passes(s, head + PKT_HEADER_LEN, (size_t)n - PKT_HEADER_LEN);
}

bool server_error_ended(struct session *s, struct server_conn *sc)
{
    if (__builtin_expect(!sc->fatal_sent, 1) || s->closed || s->server_conn != sc)
        return false;
    session_server_gone(s, "it sent a FATAL error");
    return true;
}

/*
 * An ErrorResponse from the server of a session idle (h, whole or not
 * yet): the FATAL of a backend that ends, perhaps read with the answer
 * before it.  Under session pooling, MSG_ENDED when the flow's
 * server_ended_idle moves the session instead (the connection is the
 * move's: nothing more is read here), MSG_WAIT for the rest of it.  Under
 * transaction pooling, MSG_WAIT when it is not the client's
 * (server_error_unasked).  MSG_HEAD when it goes on to the client as any
 * message.
 */
static int fence_idle_error(struct session *s, struct endpoint *src, const struct msg_head *h)
{
    const struct session_flow *flow = s->w->shared->flow;
    if (s->txn != NULL)
        return server_error_unasked(s, h->type) ? MSG_WAIT : MSG_HEAD;
    if (h->type != 'E' || fence_asking(s->fence) || !tx_track_at_safe_point(&s->server_conn->tx) ||
        flow->server_ended_idle == NULL)
        return MSG_HEAD;
    if (!msg_whole(h))
        return MSG_WAIT;
    const uint8_t *body = msg_body(s, src, h);
    if (body == NULL)
        return MSG_ENDED;
    if (!flow->server_ended_idle(s, body, h->len - 4, "it sent a FATAL error"))
        return MSG_HEAD;
    endpoint_flush(s, &s->client); /* what came before it is the client's */
    return MSG_ENDED;
}

/* One message at the front of the server's input; 1: go on, 0: wait for more, <0: ended. */
static int fence_step(struct session *s)
{
    struct endpoint *src = &s->server_conn->ep;
    struct msg_head h;
    int rc = msg_step_head(s, src, s->client.out, &h, "server");
    if (rc != MSG_HEAD)
        return rc;
    if (__builtin_expect(h.type == 'E', 0) && (rc = fence_idle_error(s, src, &h)) != MSG_HEAD)
        return rc;
    /* Transaction pooling follows the reported settings (txn.h). */
    bool tag = h.type == 'C' || h.type == 'Z' || (h.type == 'S' && s->txn != NULL);
    if (fence_asking(s->fence) || (tag && h.len <= FENCE_TAG_MAX)) {
        if (!msg_whole(&h))
            return MSG_WAIT;
        const uint8_t *body = msg_body(s, src, &h);
        if (body == NULL)
            return MSG_ENDED;
        rc = fence_asking(s->fence) ? fence_answer(s, (char)h.type, body, h.len)
                                    : fence_watch(s, (char)h.type, body, h.len);
        return rc < 0 ? MSG_ENDED : MSG_MOVED;
    }
    tx_track_server(&s->server_conn->tx, h.type, 0);
    if (notify_watch_on(s))
        notify_watch_server_msg(s, h.type, NULL, 0);
    fence_note(s, (char)h.type, NULL, 0);
    if (__builtin_expect(h.type == 'E', 0))
        server_error_passes_head(s, src, &h);
    return msg_step_pass(s, src, s->client.out, &h);
}

static int fence_pump(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (msg_pump(s, fence_step) < 0 || server_error_ended(s, sc))
        return -1;
    /* Under transaction pooling the connection may go back to the pool here. */
    if (s->txn != NULL && !s->txn->server_idle(s))
        return -1;
    return 0;
}

static void fence_server_read(struct session *s)
{
    msg_server_read(s, fence_pump);
}

const struct server_reader fence_reader = {.read = fence_server_read, .pump = fence_pump};
