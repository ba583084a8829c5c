/*
 * notify_hub.c — LISTEN and NOTIFY without pinning (notify_hub.h): each
 * worker's table of channels and the sessions listening on them, and its
 * one listening connection per database.
 */
#include "proxy/session/notify_hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/listen_sql.h"
#include "protocol/pg_error.h"
#include "protocol/pgasync.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/sql_quote.h"
#include "proxy/base/config.h"
#include "proxy/base/list.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/endpoint.h"
#include "proxy/session/session.h"
#include "routing/region.h"

/* How often each connection is checked to be on its database's primary; a failed connect's pause.
 */
#define NOTIFY_TICK_MS 1000

struct notify_hub {
    struct worker *w;
    struct list dbs;      /* struct notify_db */
    struct list to_flush; /* clients with notifications to send, by flush_node */
    struct event *tick;
};

struct notify_db {
    struct list_node node;
    struct notify_hub *hub;
    char name[128];
    struct list channels;           /* struct notify_chan */
    struct list clients;            /* struct notify_client, by db_node */
    struct list waiters;            /* clients whose LISTEN waits, by wait_node, oldest first */
    struct pgasync *conn;           /* connecting, running a query, or idle; NULL: none */
    bool busy;                      /* a query (the first with the connect) runs on conn */
    bool connected;                 /* conn has logged in */
    bool conn_lost;                 /* the server ended conn while it was idle */
    const struct registry_host *at; /* conn's host */
    char at_name[160];              /* its "host:port", for the logs and the warnings */
    uint64_t want_seq;  /* bumped by each change of the channels the server should have */
    uint64_t sent_seq;  /* the want_seq the query running makes true */
    uint64_t done_seq;  /* ... and the last one done */
    int64_t retry_ms;   /* a connect failed: the next not before (monotonic_ms) */
    bool gap_told;      /* its listeners were warned of this outage already */
    struct event *kick; /* the next step, from the loop */
};

struct notify_chan {
    struct list_node node;
    char name[LISTEN_SQL_NAME_MAX + 1];
    struct list regs; /* struct notify_reg, by chan_node */
    bool on_server;   /* listened on the server, as the queries sent leave it */
};

/* One session listening on one channel. */
struct notify_reg {
    struct list_node chan_node, client_node;
    struct notify_chan *chan;
    struct notify_client *client;
};

struct notify_client {
    struct list_node db_node, flush_node, wait_node;
    struct notify_db *db;
    struct session *s;
    struct list regs;       /* by client_node */
    struct evbuffer *queue; /* whole messages for the client: notifications, warnings */
    uint64_t wait_seq;      /* its LISTEN's answer waits for done_seq to reach it; 0: none */
    size_t answer_n;
    bool answer_listen[LISTEN_SQL_OPS_MAX]; /* each statement's tag: LISTEN, else UNLISTEN */
    bool flushing;                          /* on the hub's to_flush */
};

static void notify_db_kick(struct notify_db *db)
{
    event_active(db->kick, EV_TIMEOUT, 1);
}

static struct notify_db *notify_db_get(struct notify_hub *hub, const char *name);

/* ---- the sessions' side ---- */

bool notify_hub_waiting(const struct session *s)
{
    return s->notify != NULL && s->notify->wait_seq != 0;
}

/* c's queue, to its client when it is between transactions; false: the session ended. */
static bool notify_client_flush(struct notify_client *c)
{
    struct session *s = c->s;
    size_t queued = evbuffer_get_length(c->queue);
    if (queued == 0)
        return true;
    if (queued + endpoint_queued(&s->client) > NOTIFY_CLIENT_MAX) {
        struct pg_error e;
        pg_error_set(&e, "54000", "too many notifications wait for this session");
        pg_error_detail(&e,
                        "%zu bytes of notifications wait for its client, which reads them too "
                        "slowly (at most %u are kept).",
                        queued, NOTIFY_CLIENT_MAX);
        pg_error_hint(&e, "A client that listens must read its notifications.");
        session_fail(s, &e);
        return false;
    }
    if (c->wait_seq != 0 || s->txn == NULL || !s->txn->between(s))
        return true; /* it waits for the session's next pause between transactions */
    if (evbuffer_add_buffer(s->client.out, c->queue) != 0) {
        session_close(s, "out of memory");
        return false;
    }
    return endpoint_flush(s, &s->client) == 0;
}

/* c on the hub's list of clients to flush, once. */
static void notify_client_mark(struct notify_client *c)
{
    if (c->flushing)
        return;
    c->flushing = true;
    list_append(&c->db->hub->to_flush, &c->flush_node);
}

/* Each client marked, flushed; one that ends meanwhile leaves the list first. */
static void notify_hub_flush_marked(struct notify_hub *hub)
{
    while (hub->to_flush.count > 0) {
        struct notify_client *c =
            list_entry(hub->to_flush.head.next, struct notify_client, flush_node);
        list_remove(&hub->to_flush, &c->flush_node);
        c->flushing = false;
        notify_client_flush(c);
    }
}

/* A WARNING (sqlstate 01000) into c's queue, sent with its notifications. */
static void notify_client_warn(struct notify_client *c, const struct pg_error *e)
{
    uint8_t buf[2560];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'N', "WARNING", e);
    if (!pkt_ok(&pb) || evbuffer_add(c->queue, buf, pb.len) != 0)
        log_warn(c->s->id, "could not queue a notice for the client: %s", e->message);
}

static struct notify_client *notify_client_get(struct session *s)
{
    if (s->notify != NULL)
        return s->notify;
    struct notify_db *db = notify_db_get(s->w->notify_hub, s->database);
    struct notify_client *c = db != NULL ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL)
        return NULL;
    if ((c->queue = evbuffer_new()) == NULL) {
        free(c);
        return NULL;
    }
    c->db = db;
    c->s = s;
    list_init(&c->regs);
    list_append(&db->clients, &c->db_node);
    s->notify = c;
    return c;
}

static struct notify_chan *notify_chan_find(struct notify_db *db, const char *name)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &db->channels)
    {
        struct notify_chan *ch = list_entry(pos, struct notify_chan, node);
        if (strcmp(ch->name, name) == 0)
            return ch;
    }
    return NULL;
}

static void notify_chan_free(struct notify_db *db, struct notify_chan *ch)
{
    list_remove(&db->channels, &ch->node);
    free(ch);
}

/* The channels wanted on the server changed: the connection follows from the loop. */
static void notify_db_changed(struct notify_db *db)
{
    db->want_seq++;
    notify_db_kick(db);
}

static void notify_reg_drop(struct notify_reg *r)
{
    struct notify_chan *ch = r->chan;
    struct notify_db *db = r->client->db;
    list_remove(&ch->regs, &r->chan_node);
    list_remove(&r->client->regs, &r->client_node);
    free(r);
    if (ch->regs.count > 0)
        return;
    if (ch->on_server)
        notify_db_changed(db); /* UNLISTENed by the next query, then freed */
    else
        notify_chan_free(db, ch);
}

static struct notify_reg *notify_client_reg(struct notify_client *c, const char *channel)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &c->regs)
    {
        struct notify_reg *r = list_entry(pos, struct notify_reg, client_node);
        if (strcmp(r->chan->name, channel) == 0)
            return r;
    }
    return NULL;
}

/* c listens on channel; false: out of memory. */
static bool notify_client_listen(struct notify_client *c, const char *channel)
{
    if (notify_client_reg(c, channel) != NULL)
        return true;
    struct notify_db *db = c->db;
    struct notify_chan *ch = notify_chan_find(db, channel);
    if (ch == NULL) {
        if ((ch = calloc(1, sizeof(*ch))) == NULL)
            return false;
        snprintf(ch->name, sizeof(ch->name), "%s", channel);
        list_init(&ch->regs);
        list_append(&db->channels, &ch->node);
    }
    struct notify_reg *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        if (ch->regs.count == 0 && !ch->on_server)
            notify_chan_free(db, ch);
        return false;
    }
    r->chan = ch;
    r->client = c;
    list_append(&ch->regs, &r->chan_node);
    list_append(&c->regs, &r->client_node);
    if (!ch->on_server && ch->regs.count == 1)
        notify_db_changed(db);
    return true;
}

static void notify_client_unlisten_all(struct notify_client *c)
{
    while (c->regs.count > 0)
        notify_reg_drop(list_entry(c->regs.head.next, struct notify_reg, client_node));
}

/* The answer of c's Query, then what waited for it; false: the session ended. */
static bool notify_client_answer(struct notify_client *c)
{
    struct session *s = c->s;
    int rc = 0;
    for (size_t i = 0; i < c->answer_n && rc == 0; i++)
        rc = c->answer_listen[i] ? pkt_add_msg(s->client.out, 'C', "LISTEN", sizeof("LISTEN"))
                                 : pkt_add_msg(s->client.out, 'C', "UNLISTEN", sizeof("UNLISTEN"));
    c->answer_n = 0;
    if (rc != 0 || pkt_add_ready(s->client.out, 'I') != 0) {
        session_close(s, "out of memory");
        return false;
    }
    /* Between transactions now: what waited goes too. */
    if (evbuffer_get_length(s->client.in) == 0 && !notify_client_flush(c))
        return false;
    return endpoint_flush(s, &s->client) == 0;
}

/* One statement of c's Query applied; false: out of memory. */
static bool notify_client_apply(struct notify_client *c, const struct listen_op *op)
{
    struct notify_reg *r;
    switch (op->kind) {
    case LISTEN_OP_LISTEN:
        return notify_client_listen(c, op->channel);
    case LISTEN_OP_UNLISTEN:
        if ((r = notify_client_reg(c, op->channel)) != NULL)
            notify_reg_drop(r);
        return true;
    case LISTEN_OP_UNLISTEN_ALL:
        notify_client_unlisten_all(c);
        return true;
    }
    return true;
}

/* Whether a text that begins with c may be LISTEN or UNLISTEN: a blank, a comment, ';' first. */
static inline bool notify_may_begin(uint8_t c)
{
    switch (c) {
    case 'L':
    case 'l':
    case 'U':
    case 'u':
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case '/':
    case '-':
    case ';':
        return true;
    default:
        return false;
    }
}

/* Whether the head of s's client input is a whole Query of LISTEN and UNLISTEN alone: into ops. */
static size_t notify_query_ops(struct session *s, struct listen_op *ops, uint32_t *len)
{
    /* Read in place: most texts end the look at their first byte. */
    const uint8_t *head = evbuffer_pullup(s->client.in, PKT_HEADER_LEN + 1);
    if (head == NULL || head[0] != 'Q' || !notify_may_begin(head[PKT_HEADER_LEN]))
        return 0;
    *len = pkt_be32(head + 1);
    if (*len < 5 || *len - 4 > NOTIFY_QUERY_MAX ||
        evbuffer_get_length(s->client.in) < 1 + (size_t)*len)
        return 0;
    const uint8_t *msg = evbuffer_pullup(s->client.in, 1 + (ssize_t)*len);
    if (msg == NULL)
        return 0; /* the server reads it instead */
    const char *text = (const char *)msg + PKT_HEADER_LEN;
    size_t text_len = strnlen(text, *len - 4);
    if (text_len == *len - 4)
        return 0; /* no NUL: malformed, the server says so */
    return listen_sql_parse(text, text_len, ops, LISTEN_SQL_OPS_MAX);
}

int notify_hub_query(struct session *s)
{
    if (s->w->notify_hub == NULL || s->txn == NULL || s->database == NULL ||
        s->server_conn != NULL || s->fetcher != NULL || s->txn_wait.waiting || s->hold.held ||
        notify_hub_waiting(s))
        return 0;
    struct listen_op ops[LISTEN_SQL_OPS_MAX];
    uint32_t len = 0;
    size_t n = notify_query_ops(s, ops, &len);
    if (n == 0)
        return 0;
    struct notify_client *c = notify_client_get(s);
    if (c == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    evbuffer_drain(s->client.in, 1 + (size_t)len);
    bool listens = false;
    for (size_t i = 0; i < n; i++) {
        if (!notify_client_apply(c, &ops[i])) {
            session_close(s, "out of memory");
            return -1;
        }
        c->answer_listen[i] = ops[i].kind == LISTEN_OP_LISTEN;
        listens = listens || c->answer_listen[i];
    }
    c->answer_n = n;
    log_debug(s->id, "LISTEN/UNLISTEN answered by pgnear: %zu statements, %zu channels", n,
              c->regs.count);
    struct notify_db *db = c->db;
    if (listens && db->done_seq < db->want_seq) {
        /* Answered once the server listens: a NOTIFY committed after the answer reaches it. */
        c->wait_seq = db->want_seq;
        list_append(&db->waiters, &c->wait_node);
        endpoint_pause_read(&s->client);
        notify_db_kick(db);
        return 1;
    }
    return notify_client_answer(c) ? 1 : -1;
}

void notify_hub_idle(struct session *s)
{
    if (s->notify != NULL)
        notify_client_flush(s->notify);
}

void notify_hub_session_end(struct session *s)
{
    struct notify_client *c = s->notify;
    if (c == NULL)
        return;
    notify_client_unlisten_all(c);
    if (c->flushing)
        list_remove(&c->db->hub->to_flush, &c->flush_node);
    if (c->wait_seq != 0)
        list_remove(&c->db->waiters, &c->wait_node);
    list_remove(&c->db->clients, &c->db_node);
    evbuffer_free(c->queue);
    free(c);
    s->notify = NULL;
}

/* The first waiter, answered (done: the server listens; else it failed), its client read again. */
static void notify_db_answer_first(struct notify_db *db)
{
    struct notify_client *c = list_entry(db->waiters.head.next, struct notify_client, wait_node);
    struct session *s = c->s;
    list_remove(&db->waiters, &c->wait_node);
    c->wait_seq = 0;
    if (!notify_client_answer(c))
        return;
    endpoint_resume_read(&s->client);
    if (evbuffer_get_length(s->client.in) > 0)
        s->txn->client_pump(s);
}

/* The waiters whose LISTEN the server has now answered. */
static void notify_db_wake(struct notify_db *db)
{
    while (db->waiters.count > 0 &&
           list_entry(db->waiters.head.next, struct notify_client, wait_node)->wait_seq <=
               db->done_seq)
        notify_db_answer_first(db);
}

/* ---- the listening connection ---- */

/* One notification the connection received, to each session of the worker listening. */
static void notify_db_heard(void *arg, const PGnotify *n)
{
    struct notify_db *db = arg;
    struct notify_chan *ch = notify_chan_find(db, n->relname);
    if (ch == NULL || ch->regs.count == 0)
        return;
    uint8_t pid[4] = {(uint8_t)((uint32_t)n->be_pid >> 24), (uint8_t)((uint32_t)n->be_pid >> 16),
                      (uint8_t)((uint32_t)n->be_pid >> 8), (uint8_t)n->be_pid};
    const char *payload = n->extra != NULL ? n->extra : "";
    struct pkt_piece pieces[] = {
        {pid, sizeof(pid)},
        {n->relname, strlen(n->relname) + 1},
        {payload, strlen(payload) + 1},
    };
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &ch->regs)
    {
        struct notify_client *c = list_entry(pos, struct notify_reg, chan_node)->client;
        if (pkt_add_pieces(c->queue, 'A', pieces, 3) != 0)
            log_warn(c->s->id, "out of memory: a notification on channel \"%s\" is lost",
                     n->relname);
        notify_client_mark(c);
    }
    notify_hub_flush_marked(db->hub);
}

/* The primary the database's sessions write on: the first host up that is not a standby. */
static const struct region_host *notify_db_primary(const struct notify_db *db)
{
    struct worker *w = db->hub->w;
    struct region_subset sub;
    const struct region_subset *placed =
        placement_of(&w->shared->placement, w->cfg, db->name, &sub);
    for (size_t i = 0; i < w->cfg->regions.count; i++) {
        const struct region *r = &w->cfg->regions.items[i];
        if (placed != NULL && !region_subset_has(placed, r))
            continue;
        for (size_t j = 0; j < r->nhosts; j++)
            if (host_is_up(&r->hosts[j]) && !host_is_standby(&r->hosts[j]))
                return &r->hosts[j];
    }
    return NULL;
}

/*
 * The statements that make the server's channels the wanted ones (all:
 * a new connection, which has none); each channel marked as they leave
 * it, one nobody wants freed.  NULL: out of memory; "": nothing to do.
 */
static char *notify_db_batch(struct notify_db *db)
{
    struct evbuffer *sql = evbuffer_new();
    if (sql == NULL)
        return NULL;
    bool ok = true;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &db->channels)
    {
        struct notify_chan *ch = list_entry(pos, struct notify_chan, node);
        bool wanted = ch->regs.count > 0;
        char quoted[2 * LISTEN_SQL_NAME_MAX + 3];
        if (wanted != ch->on_server)
            ok = ok && sql_quote_ident_into(quoted, sizeof(quoted), ch->name) &&
                 evbuffer_add_printf(sql, "%sLISTEN %s;", wanted ? "" : "UN", quoted) > 0;
        ch->on_server = wanted;
        if (!wanted)
            notify_chan_free(db, ch);
    }
    size_t n = evbuffer_get_length(sql);
    char *text = ok ? malloc(n + 1) : NULL;
    if (text != NULL) {
        evbuffer_remove(sql, text, n);
        text[n] = '\0';
    }
    evbuffer_free(sql);
    return text;
}

/*
 * The sessions listening are told, between their transactions, what may
 * have been lost: once an outage (every failed try to listen again would
 * say it again), and each LISTEN answered meanwhile.
 */
static void notify_db_tell_lost(struct notify_db *db, const char *why)
{
    struct pg_error e;
    pg_error_set(&e, "01000", "notifications may have been lost");
    pg_error_detail(&e,
                    "pgnear's connection listening on database \"%s\" for this session's channels "
                    "ended (%s). It listens again on the database's primary; a notification sent "
                    "meanwhile is not delivered.",
                    db->name, why);
    pg_error_hint(&e, "Read again what the notifications announce.");
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &db->clients)
    {
        struct notify_client *c = list_entry(pos, struct notify_client, db_node);
        if (c->regs.count == 0 || (db->gap_told && c->wait_seq == 0))
            continue;
        notify_client_warn(c, &e);
        notify_client_mark(c);
    }
}

/* The connection is gone (freed by the caller or by pgasync): the next connects again. */
static void notify_db_failed(struct notify_db *db, const char *why)
{
    bool was = db->connected;
    db->conn = NULL;
    db->busy = db->connected = db->conn_lost = false;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &db->channels)
    {
        struct notify_chan *ch = list_entry(pos, struct notify_chan, node);
        ch->on_server = false;
        if (ch->regs.count == 0)
            notify_chan_free(db, ch);
    }
    db->want_seq++; /* a LISTEN from now on waits for the next connection */
    if (was)
        log_warn(0, "the connection listening on database \"%s\" at %s ended: %s; listening again",
                 db->name, db->at_name, why);
    else
        log_warn(0, "could not listen on database \"%s\": %s; trying again in %d ms", db->name, why,
                 NOTIFY_TICK_MS);
    notify_db_tell_lost(db, why);
    db->gap_told = true;
    /* A LISTEN that waited is answered all the same, after the warning. */
    while (db->waiters.count > 0)
        notify_db_answer_first(db);
    notify_hub_flush_marked(db->hub);
    if (was) {
        notify_db_kick(db);
        return;
    }
    db->retry_ms = monotonic_ms() + NOTIFY_TICK_MS;
    struct timeval tv = {NOTIFY_TICK_MS / 1000, (NOTIFY_TICK_MS % 1000) * 1000};
    evtimer_add(db->kick, &tv);
}

/* The server ended the idle connection: dropped from the loop, not from inside pgasync. */
static void notify_db_closed(void *arg)
{
    struct notify_db *db = arg;
    db->conn_lost = true;
    notify_db_kick(db);
}

static void notify_db_done(void *arg, const PGresult *res, const char *error, bool answered)
{
    (void)res;
    (void)answered;
    struct notify_db *db = arg;
    db->busy = false;
    if (error != NULL || !pgasync_keep(db->conn, notify_db_closed, db)) {
        notify_db_failed(db, error != NULL ? error : "its connection could not be kept");
        return; /* pgasync frees it */
    }
    if (!db->connected)
        log_info(0, "listening on database \"%s\" at %s for this worker's sessions", db->name,
                 db->at_name);
    db->connected = true;
    db->gap_told = false;
    db->done_seq = db->sent_seq;
    notify_db_wake(db);
    if (db->want_seq > db->done_seq || db->channels.count == 0)
        notify_db_kick(db);
}

/* A connection to the primary, which listens on every channel wanted. */
static void notify_db_connect(struct notify_db *db)
{
    int64_t now = monotonic_ms();
    if (db->channels.count == 0)
        return;
    if (now < db->retry_ms) {
        struct timeval tv = {(db->retry_ms - now) / 1000, ((db->retry_ms - now) % 1000) * 1000};
        evtimer_add(db->kick, &tv);
        return;
    }
    const struct region_host *h = notify_db_primary(db);
    char conninfo[2048], err[256];
    if (h == NULL || !pgconn_conninfo(db->hub->w->cfg, h, db->name, "pgnear listen", conninfo,
                                      sizeof(conninfo))) {
        notify_db_failed(db, h == NULL ? "no primary is up" : "its conninfo is too long");
        return;
    }
    char *sql = notify_db_batch(db);
    if (sql == NULL || sql[0] == '\0') {
        free(sql);
        if (sql == NULL)
            notify_db_failed(db, "out of memory");
        return;
    }
    db->at = h->runtime;
    snprintf(db->at_name, sizeof(db->at_name), "%s:%d", h->name, h->port);
    db->sent_seq = db->want_seq;
    db->conn = pgasync_query(db->hub->w->base, conninfo, sql, PGASYNC_SCRIPT, NULL,
                             db->hub->w->cfg->server_connect_timeout_ms * 2, notify_db_done, db,
                             err, sizeof(err));
    free(sql);
    if (db->conn == NULL) {
        notify_db_failed(db, err);
        return;
    }
    pgasync_set_notify(db->conn, notify_db_heard, db);
    db->busy = true;
}

/* The next step of db's connection: connect, follow the channels wanted, or close. */
static void notify_db_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct notify_db *db = arg;
    if (db->busy)
        return; /* its end steps again */
    if (db->conn_lost) {
        pgasync_abandon(db->conn);
        notify_db_failed(db, "the server ended the connection");
        return;
    }
    if (db->conn == NULL) {
        notify_db_connect(db);
        return;
    }
    char *sql = notify_db_batch(db);
    if (sql == NULL) {
        notify_db_kick(db);
        return;
    }
    if (sql[0] == '\0') {
        free(sql);
        db->done_seq = db->want_seq;
        notify_db_wake(db);
        if (db->channels.count == 0) {
            log_info(0, "no session listens on database \"%s\" any more: its connection closes",
                     db->name);
            pgasync_abandon(db->conn);
            db->conn = NULL;
            db->connected = false;
        }
        return;
    }
    db->sent_seq = db->want_seq;
    if (pgasync_requery(db->conn, sql, PGASYNC_SCRIPT, NULL,
                        db->hub->w->cfg->server_connect_timeout_ms * 2, notify_db_done, db) != 0) {
        free(sql);
        pgasync_abandon(db->conn);
        notify_db_failed(db, "out of memory");
        return;
    }
    free(sql);
    db->busy = true;
}

static struct notify_db *notify_db_get(struct notify_hub *hub, const char *name)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &hub->dbs)
    {
        struct notify_db *db = list_entry(pos, struct notify_db, node);
        if (strcmp(db->name, name) == 0)
            return db;
    }
    struct notify_db *db = strlen(name) < sizeof(db->name) ? calloc(1, sizeof(*db)) : NULL;
    if (db == NULL || (db->kick = evtimer_new(hub->w->base, notify_db_step, db)) == NULL) {
        free(db);
        return NULL;
    }
    db->hub = hub;
    snprintf(db->name, sizeof(db->name), "%s", name);
    list_init(&db->channels);
    list_init(&db->clients);
    list_init(&db->waiters);
    list_append(&hub->dbs, &db->node);
    return db;
}

/* Each connection still on its database's primary?  Else it moves there (a failover). */
static void notify_hub_check(struct notify_hub *hub)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &hub->dbs)
    {
        struct notify_db *db = list_entry(pos, struct notify_db, node);
        if (db->conn == NULL || !db->connected)
            continue;
        const struct region_host *h = notify_db_primary(db);
        if (h == NULL || h->runtime == db->at)
            continue;
        pgasync_abandon(db->conn);
        char why[256];
        snprintf(why, sizeof(why), "the primary is now %s:%d", h->name, h->port);
        notify_db_failed(db, why);
    }
}

static void notify_hub_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    notify_hub_check(arg);
}

/* ---- the worker's part ---- */

static int notify_part_start(struct worker *w, char *err, size_t errcap)
{
    struct notify_hub *hub = calloc(1, sizeof(*hub));
    struct timeval tv = {NOTIFY_TICK_MS / 1000, (NOTIFY_TICK_MS % 1000) * 1000};
    if (hub == NULL ||
        (hub->tick = event_new(w->base, -1, EV_PERSIST, notify_hub_tick, hub)) == NULL ||
        event_add(hub->tick, &tv) != 0) {
        if (hub != NULL && hub->tick != NULL)
            event_free(hub->tick);
        free(hub);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    hub->w = w;
    list_init(&hub->dbs);
    list_init(&hub->to_flush);
    w->notify_hub = hub;
    return 0;
}

static void notify_part_fenced(struct worker *w)
{
    if (w->notify_hub != NULL)
        notify_hub_check(w->notify_hub);
}

/* After the sessions' part closed every session: the connections and the table go. */
static void notify_part_free(struct worker *w)
{
    struct notify_hub *hub = w->notify_hub;
    if (hub == NULL)
        return;
    while (hub->dbs.count > 0) {
        struct notify_db *db = list_entry(hub->dbs.head.next, struct notify_db, node);
        while (db->clients.count > 0)
            notify_hub_session_end(
                list_entry(db->clients.head.next, struct notify_client, db_node)->s);
        while (db->channels.count > 0)
            notify_chan_free(db, list_entry(db->channels.head.next, struct notify_chan, node));
        pgasync_abandon(db->conn);
        event_free(db->kick);
        list_remove(&hub->dbs, &db->node);
        free(db);
    }
    event_free(hub->tick);
    free(hub);
    w->notify_hub = NULL;
}

const struct worker_part notify_hub_part = {
    .name = "notifications",
    .start = notify_part_start,
    .free = notify_part_free,
    .host_fenced = notify_part_fenced,
};
