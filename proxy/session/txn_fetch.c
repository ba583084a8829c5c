/*
 * txn_fetch.c — the server connection for a session's next transaction
 * under transaction pooling: a parked one (txn_slots.c), an idle one taken
 * at once, or one a fetcher (fetch.h) logs in for or waits for.
 */
#include "proxy/session/txn_fetch.h"

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/session/fetch.h"
#include "proxy/session/near.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/txn_slots.h"
#include "routing/need.h"

/* ---- the fetcher: an internal session logging in for the next transaction ---- */

/*
 * What the fetcher needs: the session's need, and no standby older than
 * what it has seen: its last server's position when that transaction ended
 * (need.h), and its own last write (pgnear.fence).
 */
static struct need_spec txn_need(struct session *s)
{
    struct need_spec need = s->need;
    if (s->near != NULL)
        need.role = near_next_need(s);
    if (!need_reads_standbys(need.role))
        return need;
    /* Without health checks no position is ever known: nothing to follow by. */
    if (s->cfg->health_check_interval_ms > 0)
        need.read_at = s->txn_read_at;
    need.read_until_ms = s->txn_read_until_ms;
    if (s->fence_lsn > need.min_lsn) {
        need.min_lsn = s->fence_lsn;
        need.min_tli = 0;
    }
    if (s->near != NULL)
        near_position(s, &need);
    return need;
}

static void txn_fetch_failed(struct session *s, const char *why)
{
    log_warn(s->id, "no server connection for its next transaction: %s", why);
    struct pg_error err;
    pg_error_set(&err, "08006", "pgnear could not get a server connection for the transaction");
    if (why != NULL)
        pg_error_detail(&err, "%s", why);
    session_fail(s, &err);
}

/* The fetcher m logged in: its connection takes the session's waiting message on. */
static void txn_fetch_ready(struct session *m, void *arg)
{
    struct session *s = arg;
    struct server_conn *ns = m->server_conn;
    s->fetcher = NULL;
    s->busy++;
    session_set_timer(m, 0);
    server_conn_hand_over(ns, m, s);
    fetch_close(m, "its connection went to the session's transaction");
    if (s->near != NULL)
        s->near->conn_gen = 0; /* as at login: the session's startup parameters alone */
    s->txn->attached(s);
    session_callback_done(s);
}

/* The fetcher m failed: the session ends with m's own error, or with why. */
static void txn_fetch_lost(struct session *m, void *arg, const char *why)
{
    struct session *s = arg;
    if (why == NULL)
        why = "its login failed";
    s->fetcher = NULL;
    s->busy++;
    /* The fetcher's own error, as its login wrote it for a client it does not have. */
    uint8_t err[2048];
    size_t n = 0;
    struct evbuffer *out = m->client.out;
    if (out != NULL && evbuffer_copyout(out, err, 5) == 5 && err[0] == 'E')
        n = 1 + (size_t)pkt_be32(err + 1);
    if (n > 5 && n <= sizeof(err) && evbuffer_copyout(out, err, n) == (ssize_t)n) {
        log_warn(s->id, "no server connection for its next transaction: %s", why);
        session_send_last(s, err, n, why);
    } else {
        txn_fetch_failed(s, why);
    }
    session_callback_done(s);
}

static const struct fetch_ops txn_fetch_ops = {
    .what = "transaction",
    .ready = txn_fetch_ready,
    .lost = txn_fetch_lost,
};

/* A fetcher for the session's next transaction: its need, in its region or a move's (move.h). */
void txn_fetch_start(struct session *s)
{
    struct fetch_want want = {.need = txn_need(s), .region = s->txn_region};
    if (txn_slot_take(s, &want.need))
        return;
    if (fetch_take_idle(s, &want) != NULL) {
        s->busy++;
        if (s->near != NULL)
            s->near->conn_gen = 0; /* as txn_fetch_ready's */
        s->txn->attached(s);
        session_callback_done(s);
        return;
    }
    const char *why = fetch_start(s, &want, &txn_fetch_ops, s, &s->fetcher);
    if (why != NULL)
        txn_fetch_failed(s, why);
}
