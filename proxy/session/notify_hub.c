/*
 * notify_hub.c — LISTEN and NOTIFY without pinning (notify_hub.h): each
 * worker's table of channels and the sessions listening on them, and its
 * one listening connection per database.
 */
#include "proxy/session/notify_hub.h"
#include "proxy/session/notify_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/listen_sql.h"
#include "protocol/pg_encoding.h"
#include "protocol/pg_error.h"
#include "protocol/pgasync.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/sql_quote.h"
#include "protocol/utf8.h"
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
    bool split;         /* a query of several statements was refused: one a query until done */
    bool counted;       /* in notify_senders' count of listening connections */
    bool gap_told;      /* its listeners were warned of this outage already */
    struct event *kick; /* the next step, from the loop */
};

struct notify_chan {
    struct list_node node;
    char name[LISTEN_SQL_NAME_MAX + 1];
    struct list regs; /* struct notify_reg, by chan_node */
    bool on_server;   /* listened on the server, as the queries done left it */
    bool sending;     /* in the query running: ... */
    bool send_listen; /* ... as a LISTEN, else an UNLISTEN */
};

/* Whether the server listens on ch once the query running is done. */
static bool notify_chan_will_listen(const struct notify_chan *ch)
{
    return ch->sending ? ch->send_listen : ch->on_server;
}

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
    struct pg_error *refused; /* the server refused its LISTEN: its answer; NULL: none */
    struct pg_error *fatal;   /* a notification it cannot be sent: the session ends; NULL */
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
    if (queued == 0 && c->fatal == NULL)
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
    if (c->fatal != NULL) { /* after the notifications before it, as the server ends it */
        struct pg_error e = *c->fatal;
        session_fail(s, &e);
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
    if (c == NULL || !notify_watch_start(s)) {
        free(c);
        return NULL;
    }
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
    if (notify_chan_will_listen(ch))
        notify_db_changed(db); /* UNLISTENed by the next query, then freed */
    else if (!ch->sending)
        notify_chan_free(db, ch); /* (else freed when the query running is done) */
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
        if (ch->regs.count == 0 && !ch->on_server && !ch->sending)
            notify_chan_free(db, ch);
        return false;
    }
    r->chan = ch;
    r->client = c;
    list_append(&ch->regs, &r->chan_node);
    list_append(&c->regs, &r->client_node);
    if (!notify_chan_will_listen(ch) && ch->regs.count == 1)
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
    if (c->refused != NULL) {
        uint8_t buf[2560];
        struct pktbuf pb;
        pkt_init(&pb, buf, sizeof(buf));
        pg_error_put(&pb, 'E', "ERROR", c->refused);
        rc = pkt_ok(&pb) ? evbuffer_add(s->client.out, buf, pb.len) : -1;
        free(c->refused);
        c->refused = NULL;
        c->answer_n = 0;
    }
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
    case LISTEN_OP_DISCARD_ALL:
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

/*
 * The text of a Query in the client's encoding, as the server reads it:
 * in UTF8 (*text then points into conv, cap bytes), checked.  False: the
 * server reads it instead (an encoding pgnear does not convert, or one
 * whose text does not convert: the server says why).
 */
static bool notify_query_utf8(const struct session *s, const char **text, size_t *len, char *conv,
                              size_t cap)
{
    if (pg_encoding_is_utf8(s->client_encoding))
        return true; /* checked once read as LISTEN and UNLISTEN */
    size_t out_len, bad_at;
    if (pg_encoding_convert(s->client_encoding, "UTF8", *text, *len, conv, cap, &out_len,
                            &bad_at) != PG_ENC_OK)
        return false;
    *text = conv;
    *len = out_len;
    return true;
}

/*
 * Whether the head of s's client input is a whole Query of LISTEN and
 * UNLISTEN alone: into ops, channels in UTF8.  A UTF8 text that is not
 * well-formed is refused with the server's error (*refused set) and no
 * statement applied, as the server refuses the whole Query.
 */
static size_t notify_query_ops(struct session *s, struct listen_op *ops, uint32_t *len,
                               struct pg_error *refused)
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
    char conv[4 * NOTIFY_QUERY_MAX + 1];
    if (!notify_query_utf8(s, &text, &text_len, conv, sizeof(conv)))
        return 0;
    size_t n = listen_sql_parse(text, text_len, ops, LISTEN_SQL_OPS_MAX);
    size_t bad_at = utf8_invalid_at((const uint8_t *)text, text_len);
    if (n > 0 && bad_at < text_len)
        pg_encoding_error(refused, PG_ENC_INVALID, "UTF8", "UTF8", text, text_len, bad_at);
    return n;
}

/* The client's Query (len bytes after its type) refused with e, as the server refuses it. */
static int notify_query_refuse(struct session *s, uint32_t len, const struct pg_error *e)
{
    uint8_t buf[2560];
    struct pktbuf pb;
    evbuffer_drain(s->client.in, 1 + (size_t)len);
    log_info(s->id, "LISTEN/UNLISTEN refused: %s %s", e->sqlstate, e->message);
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'E', "ERROR", e);
    if (!pkt_ok(&pb) || evbuffer_add(s->client.out, buf, pb.len) != 0 ||
        pkt_add_ready(s->client.out, 'I') != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    return endpoint_flush(s, &s->client) == 0 ? 1 : -1;
}

int notify_hub_query(struct session *s)
{
    if (s->w->notify_hub == NULL || s->txn == NULL || s->database == NULL ||
        s->server_conn != NULL || s->fetcher != NULL || s->txn_wait.waiting || s->hold.held ||
        notify_hub_waiting(s))
        return 0;
    struct listen_op ops[LISTEN_SQL_OPS_MAX];
    uint32_t len = 0;
    struct pg_error refused = {0};
    size_t n = notify_query_ops(s, ops, &len, &refused);
    if (n == 0)
        return 0;
    if (pg_error_is_set(&refused))
        return notify_query_refuse(s, len, &refused);
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

void notify_hub_unlisten(struct session *s, const struct listen_op *op)
{
    if (s->notify != NULL && notify_client_apply(s->notify, op))
        log_debug(s->id, "an UNLISTEN run on its server stops pgnear's delivery too (%s)",
                  op->channel[0] != '\0' ? op->channel : "*");
}

void notify_hub_idle(struct session *s)
{
    if (s->notify != NULL)
        notify_client_flush(s->notify);
}

void notify_hub_session_end(struct session *s)
{
    notify_watch_end(s);
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
    free(c->refused);
    free(c->fatal);
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

/* A notification in one client encoding: the channel and payload converted, or why not. */
struct notify_spelt {
    char encoding[24]; /* "": none yet */
    enum pg_enc_rc rc;
    struct pg_error why;
    struct evbuffer *msg; /* the whole NotificationResponse */
};

/* n's NotificationResponse in encoding enc into sp (the last one's kept: most clients share it). */
static void notify_spell(struct notify_spelt *sp, const PGnotify *n, const uint8_t pid[4],
                         const char *enc)
{
    if (sp->encoding[0] != '\0' && strcmp(sp->encoding, enc) == 0)
        return;
    snprintf(sp->encoding, sizeof(sp->encoding), "%s", enc);
    evbuffer_drain(sp->msg, evbuffer_get_length(sp->msg));
    const char *payload = n->extra != NULL ? n->extra : "";
    size_t chan_len = strlen(n->relname), pay_len = strlen(payload), chan_out, pay_out, bad;
    size_t cap = 4 * (chan_len + pay_len) + 2;
    char *buf = malloc(cap);
    if (buf == NULL) {
        sp->rc = PG_ENC_NOSPACE;
        return;
    }
    /* The server's bytes are UTF8 (the connection's client_encoding): to the client's. */
    sp->rc = pg_encoding_convert("UTF8", enc, n->relname, chan_len, buf, cap, &chan_out, &bad);
    const char *failed = n->relname;
    size_t failed_len = chan_len;
    if (sp->rc == PG_ENC_OK) {
        sp->rc = pg_encoding_convert("UTF8", enc, payload, pay_len, buf + chan_out + 1,
                                     cap - chan_out - 1, &pay_out, &bad);
        failed = payload;
        failed_len = pay_len;
    }
    if (sp->rc == PG_ENC_OK) {
        struct pkt_piece pieces[] = {{pid, 4}, {buf, chan_out + pay_out + 2}};
        if (pkt_add_pieces(sp->msg, 'A', pieces, 2) != 0)
            sp->rc = PG_ENC_NOSPACE;
    } else if (sp->rc == PG_ENC_UNMAPPABLE || sp->rc == PG_ENC_INVALID) {
        pg_encoding_error(&sp->why, sp->rc, "UTF8", enc, failed, failed_len, bad);
    }
    free(buf);
}

/*
 * n to one listening client, in its encoding.  One that cannot be said
 * there ends the session with the server's FATAL 22P05 once the ones
 * before it are sent, as the server ends a session it cannot send a
 * notification to.
 */
static void notify_client_heard(struct notify_client *c, struct notify_spelt *sp, const PGnotify *n,
                                const uint8_t pid[4])
{
    if (c->fatal != NULL)
        return;
    notify_spell(sp, n, pid, c->s->client_encoding);
    if (sp->rc == PG_ENC_UNMAPPABLE || sp->rc == PG_ENC_INVALID) {
        if ((c->fatal = malloc(sizeof(*c->fatal))) != NULL)
            *c->fatal = sp->why;
        log_info(c->s->id, "a notification on channel \"%s\" cannot be sent in %s: %s", n->relname,
                 c->s->client_encoding, sp->why.message);
    } else if (sp->rc != PG_ENC_OK || evbuffer_add(c->queue, evbuffer_pullup(sp->msg, -1),
                                                   evbuffer_get_length(sp->msg)) != 0) {
        log_warn(c->s->id, "out of memory: a notification on channel \"%s\" is lost", n->relname);
    }
    notify_client_mark(c);
}

/* One notification the connection received, to each session of the worker listening. */
static void notify_db_heard(void *arg, const PGnotify *n)
{
    struct notify_db *db = arg;
    struct notify_chan *ch = notify_chan_find(db, n->relname);
    if (ch == NULL || ch->regs.count == 0)
        return;
    /* The sender as it knows itself, when it is a client of pgnear (notify_senders.h). */
    uint32_t sender = notify_senders_pid(&db->hub->w->shared->notify_senders, db->at,
                                         (uint32_t)n->be_pid, monotonic_ms());
    if (sender == 0)
        sender = (uint32_t)n->be_pid;
    uint8_t pid[4] = {(uint8_t)(sender >> 24), (uint8_t)(sender >> 16), (uint8_t)(sender >> 8),
                      (uint8_t)sender};
    struct notify_spelt sp = {.msg = evbuffer_new()};
    if (sp.msg == NULL) {
        log_warn(0, "out of memory: a notification on channel \"%s\" is lost", n->relname);
        return;
    }
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &ch->regs)
        notify_client_heard(list_entry(pos, struct notify_reg, chan_node)->client, &sp, n, pid);
    evbuffer_free(sp.msg);
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
 * a new connection, which has none; only the first while db->split),
 * each channel in it marked sending.  NULL: out of memory; "": nothing
 * to do.
 */
static char *notify_db_batch(struct notify_db *db)
{
    struct evbuffer *sql = evbuffer_new();
    if (sql == NULL)
        return NULL;
    bool ok = true;
    size_t n = 0;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &db->channels)
    {
        struct notify_chan *ch = list_entry(pos, struct notify_chan, node);
        bool wanted = ch->regs.count > 0;
        char quoted[2 * LISTEN_SQL_NAME_MAX + 3];
        if (wanted == ch->on_server || (db->split && n > 0))
            continue;
        ok = ok && sql_quote_ident_into(quoted, sizeof(quoted), ch->name) &&
             evbuffer_add_printf(sql, "%sLISTEN %s;", wanted ? "" : "UN", quoted) > 0;
        ch->sending = true;
        ch->send_listen = wanted;
        n++;
    }
    if (n == 0)
        db->split = false;
    size_t bytes = evbuffer_get_length(sql);
    char *text = ok ? malloc(bytes + 1) : NULL;
    if (text != NULL) {
        evbuffer_remove(sql, text, bytes);
        text[bytes] = '\0';
    }
    evbuffer_free(sql);
    return text;
}

/*
 * The query running is done: each channel it held as it left it (ok),
 * or as before (refused); a channel nobody wants nor the server has
 * freed.  Returns the one channel of a query that held one, else NULL.
 */
static struct notify_chan *notify_db_sent(struct notify_db *db, bool ok, size_t *count)
{
    struct notify_chan *one = NULL;
    struct list_node *pos, *tmp;
    *count = 0;
    list_for_each_safe(pos, tmp, &db->channels)
    {
        struct notify_chan *ch = list_entry(pos, struct notify_chan, node);
        if (!ch->sending)
            continue;
        ch->sending = false;
        if (ok)
            ch->on_server = ch->send_listen;
        one = ch;
        (*count)++;
        if (ch->regs.count == 0 && !ch->on_server)
            notify_chan_free(db, ch);
    }
    return *count == 1 ? one : NULL;
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

/* Whether db's connection counts among those listening (notify_senders.h: senders noted). */
static void notify_db_count(struct notify_db *db, bool on)
{
    if (db->counted == on)
        return;
    db->counted = on;
    notify_senders_listening(&db->hub->w->shared->notify_senders, on ? 1 : -1);
}

/* The connection is gone (freed by the caller or by pgasync): the next connects again. */
static void notify_db_failed(struct notify_db *db, const char *why)
{
    bool was = db->connected;
    notify_db_count(db, false);
    db->conn = NULL;
    db->busy = db->connected = db->conn_lost = false;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &db->channels)
    {
        struct notify_chan *ch = list_entry(pos, struct notify_chan, node);
        ch->on_server = ch->sending = false;
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

/*
 * The server refused ch's LISTEN (e): its sessions no longer listen on
 * it; one whose LISTEN waits gets e as its answer, the others a WARNING.
 * The other channels go on.
 */
static void notify_chan_refuse(struct notify_chan *ch, const struct pg_error *e)
{
    log_warn(0, "the server refused to listen on channel \"%s\": %s %s; its sessions are told",
             ch->name, e->sqlstate, e->message);
    struct pg_error warn = *e;
    pg_error_detail(&warn, "pgnear could not listen on channel \"%s\" for this session.", ch->name);
    for (size_t left = ch->regs.count; left > 0; left--) {
        struct notify_reg *r = list_entry(ch->regs.head.next, struct notify_reg, chan_node);
        struct notify_client *c = r->client;
        if (c->wait_seq != 0 && c->refused == NULL && (c->refused = malloc(sizeof(*e))) != NULL)
            *c->refused = *e;
        else if (c->refused == NULL) {
            notify_client_warn(c, &warn);
            notify_client_mark(c);
        }
        notify_reg_drop(r); /* the last frees ch */
    }
}

/*
 * The server refused the query (sqlstate), its connection still good:
 * nothing in it was done.  One LISTEN: its channel is refused; several:
 * they are sent again one a query, so that only the one refused fails.
 */
static void notify_db_refused(struct notify_db *db, const char *sqlstate)
{
    struct pg_error e;
    const char *msg = pgasync_error_field(db->conn, PG_DIAG_MESSAGE_PRIMARY);
    pg_error_set(&e, sqlstate, "%s", msg != NULL ? msg : "the server refused LISTEN");
    size_t count;
    struct notify_chan *one = notify_db_sent(db, false, &count);
    if (one == NULL || !one->send_listen) {
        log_warn(0,
                 "the server refused %zu changes of the channels listened on in database "
                 "\"%s\" (%s): sent again one at a time",
                 count, db->name, e.message);
        db->split = true;
        db->connected = true;
        if (one != NULL) { /* an UNLISTEN refused: a new connection has no channel */
            pgasync_abandon(db->conn);
            notify_db_failed(db, e.message);
            return;
        }
        notify_db_kick(db);
        return;
    }
    db->connected = true;
    notify_db_count(db, true);
    notify_chan_refuse(one, &e);
    notify_hub_flush_marked(db->hub);
    notify_db_kick(db);
}

static void notify_db_done(void *arg, const PGresult *res, const char *error, bool answered)
{
    (void)res;
    (void)answered;
    struct notify_db *db = arg;
    db->busy = false;
    const char *sqlstate = error != NULL ? pgasync_error_sqlstate(db->conn) : NULL;
    if (sqlstate != NULL && pgasync_keep(db->conn, notify_db_closed, db)) {
        notify_db_refused(db, sqlstate);
        return;
    }
    if (error != NULL || !pgasync_keep(db->conn, notify_db_closed, db)) {
        notify_db_failed(db, error != NULL ? error : "its connection could not be kept");
        return; /* pgasync frees it */
    }
    size_t count;
    notify_db_sent(db, true, &count);
    if (!db->connected)
        log_info(0, "listening on database \"%s\" at %s for this worker's sessions", db->name,
                 db->at_name);
    notify_db_count(db, true);
    db->connected = true;
    db->gap_told = false;
    if (!db->split) /* else done once every change is (notify_db_step) */
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
    /*
     * The sessions' own database whatever server_conninfo names, and UTF8,
     * which the channels' names are converted to and notifications from.
     */
    if (h == NULL ||
        !pgconn_conninfo(db->hub->w->cfg, h, db->name, "pgnear listen", conninfo,
                         sizeof(conninfo)) ||
        !pgasync_conninfo_add(conninfo, sizeof(conninfo), "dbname", db->name) ||
        !pgasync_conninfo_add(conninfo, sizeof(conninfo), "client_encoding", "UTF8")) {
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
            notify_db_count(db, false);
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
        notify_db_count(db, false);
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
