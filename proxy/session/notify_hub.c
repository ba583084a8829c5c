/*
 * notify_hub.c — LISTEN and NOTIFY without pinning (notify_hub.h), the
 * sessions' side: their LISTEN and UNLISTEN answered, read in their
 * encoding, and their queues of notifications (the listening connection:
 * notify_conn.c).
 */
#include "proxy/session/notify_hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/listen_sql.h"
#include "protocol/pg_encoding.h"
#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/utf8.h"
#include "proxy/base/list.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/endpoint.h"
#include "proxy/session/notify_int.h"
#include "proxy/session/session.h"

/* ---- the sessions' side ---- */

bool notify_hub_waiting(const struct session *s)
{
    return s->rare->notify != NULL && s->rare->notify->wait_seq != 0;
}

/* c's queue, to its client when it is between transactions; false: the session ended. */
bool notify_client_flush(struct notify_client *c)
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
    /* An idle client's buffers are its worker's until something is sent (endpoint_park). */
    if (endpoint_wake(&s->client) != 0 || evbuffer_add_buffer(s->client.out, c->queue) != 0) {
        session_close(s, "out of memory");
        return false;
    }
    if (c->fatal != NULL) { /* after the notifications before it, as the server ends it */
        struct pg_error e = *c->fatal;
        session_fail(s, &e);
        return false;
    }
    if (endpoint_flush(s, &s->client) != 0)
        return false;
    session_rest(s); /* written at once: the buffers go back */
    return true;
}

/* c on the hub's list of clients to flush, once. */
void notify_client_mark(struct notify_client *c)
{
    if (c->flushing)
        return;
    c->flushing = true;
    list_append(&c->db->hub->to_flush, &c->flush_node);
}

/* Each client marked, flushed; one that ends meanwhile leaves the list first. */
void notify_hub_flush_marked(struct notify_hub *hub)
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
void notify_client_warn(struct notify_client *c, const struct pg_error *e)
{
    uint8_t buf[2560];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'N', "WARNING", e);
    if (!pkt_ok(&pb) || evbuffer_add(c->queue, buf, pb.len) != 0)
        slog_warn(c->s, "could not queue a notice for the client: %s", e->message);
}

/* s's side of the hub, made (in its database's table) the first time; NULL: out of memory. */
static struct notify_client *notify_client_get(struct session *s)
{
    if (s->rare->notify != NULL)
        return s->rare->notify;
    struct session_rare *r = session_rare_own(&s->rare);
    struct notify_db *db = r != NULL ? notify_db_get(s->w->notify_hub, s->database) : NULL;
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
    r->notify = c;
    return c;
}

/* db's channel of that name, or NULL. */
struct notify_chan *notify_chan_find(struct notify_db *db, const char *name)
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

/* ch off db's channels, freed (nobody listens on it, no query names it). */
void notify_chan_free(struct notify_db *db, struct notify_chan *ch)
{
    list_remove(&db->channels, &ch->node);
    free(ch);
}

/* The channels wanted on the server changed: the connection follows from the loop. */
void notify_db_changed(struct notify_db *db)
{
    db->want_seq++;
    notify_db_kick(db);
}

/*
 * One session no more listening on one channel: the channel UNLISTENed
 * by the next query where it was the last, or freed when the server never
 * listened on it.
 */
void notify_reg_drop(struct notify_reg *r)
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

/* c's registration on channel, or NULL when c does not listen there. */
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

/* c listens on no channel any more (UNLISTEN *, DISCARD ALL, its end). */
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
    if (endpoint_wake(&s->client) != 0) { /* its buffers, given back while it was quiet */
        session_close(s, "out of memory");
        return false;
    }
    if (c->refused != NULL) {
        /* The Query failed whole, as on the server: its new channels are not listened on. */
        for (size_t i = 0; i < c->nundo; i++) {
            struct notify_reg *r = notify_client_reg(c, c->undo[i]);
            if (r != NULL)
                notify_reg_drop(r);
        }
        uint8_t buf[2560];
        struct pktbuf pb;
        pkt_init(&pb, buf, sizeof(buf));
        pg_error_put(&pb, 'E', "ERROR", c->refused);
        rc = pkt_ok(&pb) ? evbuffer_add(s->client.out, buf, pb.len) : -1;
        free(c->refused);
        c->refused = NULL;
        c->answer_n = 0;
    }
    free(c->undo);
    c->undo = NULL;
    c->nundo = 0;
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

/*
 * The text of a Query in the client's encoding, as the server reads it:
 * in UTF8 (*text then points into conv, cap bytes), checked.  False: the
 * server reads it instead (an encoding pgnear does not convert, or one
 * whose text does not convert: the server says why).
 */
static bool notify_query_utf8(const struct session *s, const char **text, size_t *len, char *conv,
                              size_t cap)
{
    const char *enc = session_client_encoding(s);
    if (pg_encoding_is_utf8(enc))
        return true; /* checked once read as LISTEN and UNLISTEN */
    size_t out_len, bad_at;
    if (pg_encoding_convert(enc, "UTF8", *text, *len, conv, cap, &out_len, &bad_at) != PG_ENC_OK)
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
    if (head == NULL || head[0] != 'Q' || !listen_sql_may_begin(head[PKT_HEADER_LEN]))
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
    session_log(LOG_INFO, s, e->sqlstate, "LISTEN/UNLISTEN refused: %s %s", e->sqlstate,
                e->message);
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'E', "ERROR", e);
    if (!pkt_ok(&pb) || evbuffer_add(s->client.out, buf, pb.len) != 0 ||
        pkt_add_ready(s->client.out, 'I') != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    return endpoint_flush(s, &s->client) == 0 ? 1 : -1;
}

/*
 * A detached session's Query of LISTEN and UNLISTEN alone, answered here
 * (now, or once the listening connection listens); 0 for any other input,
 * which the caller runs as ever; -1: the session ended.
 */
int notify_hub_query(struct session *s)
{
    if (s->w->notify_hub == NULL || s->database == NULL || !txn_next_detached_idle(s) ||
        s->hold.held || notify_hub_waiting(s))
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
    char undo[LISTEN_SQL_OPS_MAX][LISTEN_SQL_NAME_MAX + 1];
    size_t nundo = 0;
    for (size_t i = 0; i < n; i++) {
        bool added =
            ops[i].kind == LISTEN_OP_LISTEN && notify_client_reg(c, ops[i].channel) == NULL;
        if (!notify_client_apply(c, &ops[i])) {
            session_close(s, "out of memory");
            return -1;
        }
        if (added) /* undone should the server refuse the Query's LISTEN (as it rolls back) */
            memcpy(undo[nundo++], ops[i].channel, sizeof(ops[i].channel));
        c->answer_listen[i] = ops[i].kind == LISTEN_OP_LISTEN;
        listens = listens || c->answer_listen[i];
    }
    c->answer_n = n;
    slog_debug(s, "LISTEN/UNLISTEN answered by pgnear: %zu statements, %zu channels", n,
               c->regs.count);
    struct notify_db *db = c->db;
    if (listens && db->done_seq < db->want_seq) {
        /* Answered once the server listens: a NOTIFY committed after the answer reaches it. */
        c->wait_seq = db->want_seq;
        if (nundo > 0 && (c->undo = malloc(nundo * sizeof(undo[0]))) != NULL) {
            memcpy(c->undo, undo, nundo * sizeof(undo[0]));
            c->nundo = nundo;
        }
        list_append(&db->waiters, &c->wait_node);
        endpoint_pause_read(&s->client);
        notify_db_kick(db);
        return 1;
    }
    return notify_client_answer(c) ? 1 : -1;
}

/* An UNLISTEN its server ran and committed: pgnear stops delivering too. */
void notify_hub_unlisten(struct session *s, const struct listen_op *op)
{
    if (s->rare->notify != NULL && notify_client_apply(s->rare->notify, op))
        slog_debug(s, "an UNLISTEN run on its server stops pgnear's delivery too (%s)",
                   op->channel[0] != '\0' ? op->channel : "*");
}

/* Between transactions: what waited for the session goes out. */
void notify_hub_idle(struct session *s)
{
    if (s->rare->notify != NULL)
        notify_client_flush(s->rare->notify);
}

/* The session's channels dropped, its place in the waiters' and flush lists given up. */
void notify_hub_session_end(struct session *s)
{
    struct notify_client *c = s->rare->notify;
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
    free(c->undo);
    free(c->fatal);
    free(c);
    session_rare_own(&s->rare)->notify = NULL; /* (c was set: the part is the session's) */
}

/* The first waiter, answered (done: the server listens; else it failed), its client read again. */
void notify_db_answer_first(struct notify_db *db)
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
void notify_db_wake(struct notify_db *db)
{
    while (db->waiters.count > 0 &&
           list_entry(db->waiters.head.next, struct notify_client, wait_node)->wait_seq <=
               db->done_seq)
        notify_db_answer_first(db);
}

/* The worker's table for database name, made when new; NULL: out of memory or a name too long. */
struct notify_db *notify_db_get(struct notify_hub *hub, const char *name)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &hub->dbs)
    {
        struct notify_db *db = list_entry(pos, struct notify_db, node);
        if (strcmp(db->name, name) == 0)
            return db;
    }
    struct notify_db *db = strlen(name) < sizeof(db->name) ? calloc(1, sizeof(*db)) : NULL;
    if (db == NULL || (db->kick = evtimer_new(hub->w->base, hub->db_step, db)) == NULL) {
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
