/*
 * txn_prep.c — prepared statements under transaction pooling (txn_prep.h).
 */
#include "proxy/session/txn_prep.h"

#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <event2/buffer.h>

#include "protocol/fnv.h"
#include "protocol/param_set.h"
#include "protocol/pkt.h"
#include "protocol/prepared.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fence.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/near.h"
#include "proxy/session/notify_watch.h"
#include "proxy/session/session.h"

/*
 * What makes one text two statements: the user, the database and every
 * startup parameter (search_path, and settings that change how a text is
 * analysed).  Sessions share a server connection only when all of these
 * are the same (pool.c), so they then share its statements too.
 */
static uint64_t txn_prep_context(const struct session *s)
{
    uint64_t h = FNV1A_BASIS;
    const char *name, *value;
    h = fnv1a(h, s->user, strlen(s->user) + 1);
    h = fnv1a(h, s->database, strlen(s->database) + 1);
    for (size_t off = 0; param_set_next(&s->server_startup, &off, &name, &value);) {
        h = fnv1a(h, name, strlen(name) + 1);
        h = fnv1a(h, value, strlen(value) + 1);
    }
    return h;
}

bool txn_prep_start(struct session *s)
{
    struct worker *w = s->w;
    if (w->prep_registry == NULL) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        /* A seed nobody knows makes colliding texts hard to craft. */
        uint64_t seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)w;
        if ((w->prep_registry = prep_registry_new(seed)) == NULL)
            return false;
    }
    s->prep = prep_client_new(w->prep_registry, txn_prep_context(s));
    return s->prep != NULL;
}

void txn_prep_end(struct session *s)
{
    prep_client_free(s->prep);
    s->prep = NULL;
}

void txn_prep_rest(struct session *s)
{
    if (s->prep != NULL && prep_client_empty(s->prep))
        txn_prep_end(s);
}

bool txn_prep_idle(const struct server_conn *sc)
{
    return sc->prep == NULL || prep_server_idle(sc->prep);
}

/* A failure of the rewriter: the session ends, with the reason a client can act on. */
static void txn_prep_failed(struct session *s, int rc, const char *side)
{
    if (rc == PREP_BAD) {
        session_fail_msg(s, "08P01", "invalid frontend message for an active session");
        return;
    }
    slog_warn(s, "prepared statements: %s %s", side,
              rc == PREP_OOM ? "out of memory" : "no longer followed (unexpected message)");
    session_fail_msg(s, rc == PREP_OOM ? "53200" : "08006",
                     "pgnear lost track of the server connection's prepared statements");
}

/* The attached connection's statements followed from now on (a reset one has none): false: OOM. */
static bool txn_prep_server(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (sc->prep == NULL &&
        (sc->prep = prep_server_new(s->w->prep_registry, (unsigned)s->cfg->max_prepared_statements,
                                    &sc->tx)) == NULL) {
        txn_prep_failed(s, PREP_OOM, "a server connection's statements:");
        return false;
    }
    return true;
}

int txn_prep_client(struct session *s, uint8_t type, const uint8_t *body, uint32_t blen,
                    bool *moved)
{
    struct server_conn *sc = s->server_conn;
    if (!txn_prep_server(s))
        return -1;
    struct evbuffer *answers = near_answers(s);
    /* Only a Query can be moved: the others skip the bookkeeping of a move. */
    int rc = type == 'Q'
                 ? prep_client_message_from(s->prep, sc->prep, type, body, blen, s->client.in,
                                            moved, sc->ep.out, answers)
                 : prep_client_message(s->prep, sc->prep, type, body, blen, sc->ep.out, answers);
    if (rc == PREP_OK)
        return 1;
    if (rc == PREP_WAIT)
        return 0;
    txn_prep_failed(s, rc, "a client message:");
    return -1;
}

bool txn_prep_client_take(struct session *s, uint8_t type, const uint8_t *body, uint32_t blen)
{
    struct server_conn *sc = s->server_conn;
    return sc->prep != NULL &&
           prep_client_take_whole(s->prep, sc->prep, type, body, blen, near_answers(s));
}

int txn_prep_deallocate(struct session *s, const uint8_t *body, uint32_t blen)
{
    struct server_conn *sc = s->server_conn;
    char name[PREP_NAME_KEY + 2];
    size_t len = strnlen((const char *)body, blen);
    if (!txn_prep_server(s))
        return -1;
    /* A failed transaction refuses it (25P02): the server says so itself. */
    if ((sc->tx.flags & TX_COPYING) || (sc->tx.status != 'I' && sc->tx.status != 'T') ||
        !prep_deallocate_name((const char *)body, len, name, sizeof(name)))
        return 0;
    int rc = PREP_OK;
    if (sc->tx.flags & TX_BATCH) {
        /*
         * A batch is open (Parse, Describe and Flush, as asyncpg prepares):
         * the Query would end it on the server.  A Sync of pgnear's own
         * ends it there before pgnear answers in the Query's place.
         */
        if (prep_client_lookup(s->prep, name) == NULL)
            return 0;
        rc = prep_server_finish_batch(sc->prep, sc->ep.out);
        tx_track_client(&sc->tx, 'S');
    } else if (s->near != NULL) {
        /*
         * nearest settles where a Query ran at the server's ReadyForQuery,
         * which a Query pgnear answers never gets: a Sync of pgnear's own
         * gives it one.
         */
        if (prep_client_lookup(s->prep, name) == NULL)
            return 0;
        rc = prep_server_sync(sc->prep, sc->ep.out);
        tx_track_client(&sc->tx, 'S');
    }
    if (rc == PREP_OK)
        rc = prep_client_deallocate(s->prep, sc->prep, name, strlen(name), near_answers(s));
    if (rc == PREP_WAIT)
        return 0;
    if (rc != PREP_OK) {
        txn_prep_failed(s, rc, "a DEALLOCATE:");
        return -1;
    }
    return 1;
}

/* One whole server message through the rewriter; <0: the session ended. */
static int txn_prep_server_message(struct session *s, uint8_t type, uint32_t len)
{
    struct server_conn *sc = s->server_conn;
    const uint8_t *msg = evbuffer_pullup(sc->ep.in, 1 + (ssize_t)len);
    if (msg == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    const uint8_t *body = msg + 5;
    if (fence_asking(s->fence)) /* the answer to pgnear's own question (fence.h) */
        return fence_answer(s, (char)type, body, len);
    if (type == 'S')
        s->txn->server_param(s, body, len);
    bool own = type != 'S' && type != 'N' && type != 'A' && sc->prep != NULL &&
               prep_server_answers_own(sc->prep);
    if (!own)
        tx_track_server(&sc->tx, type, pkt_ready_status((char)type, body, len - 4));
    if (!own && notify_watch_on(s))
        notify_watch_server_msg(s, type, body, len - 4);
    if (type == 'E' && !own)
        server_error_passes(s, body, len - 4);
    /* The ReadyForQuery that ends a writing transaction waits for its fence, followed meanwhile. */
    bool fence = !own && fence_note(s, (char)type, body, len);
    struct evbuffer *to = fence ? NULL : s->near != NULL ? near_sink(s, type) : s->client.out;
    int rc = sc->prep != NULL
                 ? prep_server_message(sc->prep, type, body, len - 4, to)
                 : (fence || evbuffer_add(to, msg, 1 + (size_t)len) == 0 ? PREP_OK : PREP_OOM);
    if (rc == PREP_OK && fence)
        return fence_ask(s, len);
    evbuffer_drain(sc->ep.in, 1 + (size_t)len);
    if (rc != PREP_OK) {
        txn_prep_failed(s, rc, "a server message:");
        return -1;
    }
    return 0;
}

/*
 * For msg_run: a server message that goes to the client as it is and
 * nothing with it (prep_server_passes_whole: a Query's RowDescription,
 * rows and CommandComplete; prep_server_take_whole: the answers that end
 * a request), followed as it is read.
 */
static bool txn_prep_server_take(struct session *s, uint8_t type, const uint8_t *body,
                                 uint32_t blen)
{
    struct server_conn *sc = s->server_conn;
    if (prep_server_answers_own(sc->prep) || server_error_unasked(s, type) ||
        (!prep_server_passes_whole(sc->prep, type, body, blen) &&
         !prep_server_take_whole(sc->prep, type, body, blen)))
        return false;
    tx_track_server(&sc->tx, type, pkt_ready_status((char)type, body, blen));
    if (notify_watch_on(s))
        notify_watch_server_msg(s, type, body, blen);
    if (type == 'E')
        server_error_passes(s, body, blen);
    return true;
}

/* One message at the front of the server's input; 1: go on, 0: wait for more, <0: ended. */
static int txn_prep_server_step(struct session *s)
{
    struct endpoint *src = &s->server_conn->ep;
    struct msg_head h;
    int rc;
    /* A fence's session has each CommandComplete read for whether it wrote (fence_note). */
    if (s->server_conn->prep != NULL && s->near == NULL && !s->report_fence &&
        !fence_asking(s->fence) &&
        (rc = msg_run(s, src, s->client.out, txn_prep_server_take)) != MSG_WAIT)
        return rc;
    rc = msg_step_head(s, src, near_answers(s), &h, "server");
    if (rc != MSG_HEAD)
        return rc;
    struct prep_server *ps = s->server_conn->prep;
    if (__builtin_expect(h.type == 'E', 0) && (ps == NULL || !prep_server_answers_own(ps)) &&
        server_error_unasked(s, h.type))
        return MSG_WAIT; /* the connection's, not the client's */
    if (h.len - 4 >= TXN_PREP_STREAM_MIN && !fence_asking(s->fence) &&
        (ps == NULL || prep_server_passes(ps, h.type))) {
        /* A large row or COPY data of an answer: on as it comes, never whole in memory. */
        tx_track_server(&s->server_conn->tx, h.type, 0);
        if (notify_watch_on(s))
            notify_watch_server_msg(s, h.type, NULL, 0);
        if (h.type == 'E')
            server_error_passes_head(s, src, &h);
        return msg_step_pass(s, src, s->near != NULL ? near_sink(s, h.type) : s->client.out, &h);
    }
    if (!msg_whole(&h))
        return MSG_WAIT;
    return txn_prep_server_message(s, h.type, h.len) < 0 ? MSG_ENDED : MSG_MOVED;
}

static int txn_prep_server_pump(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (msg_pump(s, txn_prep_server_step) < 0 || server_error_ended(s, sc))
        return -1;
    /* A client message that waited for this answer goes on now. */
    if (evbuffer_get_length(s->client.in) > 0 && !s->hold.held && s->txn->client_pump(s) < 0)
        return -1;
    if (s->server_conn == sc && !s->txn->server_idle(s))
        return -1;
    return 0;
}

static void txn_prep_server_read(struct session *s)
{
    msg_server_read(s, txn_prep_server_pump);
}

const struct server_reader txn_prep_reader = {.read = txn_prep_server_read,
                                              .pump = txn_prep_server_pump};
