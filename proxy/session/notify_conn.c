/*
 * notify_conn.c — LISTEN and NOTIFY without pinning (notify_hub.h), the
 * listening connection: one per database and worker, on its primary, in
 * UTF8; each notification it hears to the sessions listening, in their
 * encoding; a LISTEN the server refuses failing its own sessions alone;
 * and the worker's part.
 */
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
#include "protocol/pkt_add.h"
#include "protocol/sql_quote.h"
#include "proxy/base/config.h"
#include "proxy/base/list.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/notify_hub.h"
#include "proxy/session/notify_int.h"
#include "proxy/session/session.h"
#include "routing/region.h"

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
    if (pg_encoding_is_utf8(enc)) { /* the server's UTF8 as it is: no copy to make */
        struct pkt_piece pieces[] = {
            {pid, 4}, {n->relname, strlen(n->relname) + 1}, {payload, strlen(payload) + 1}};
        sp->rc = pkt_add_pieces(sp->msg, 'A', pieces, 3) == 0 ? PG_ENC_OK : PG_ENC_NOSPACE;
        return;
    }
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
    notify_spell(sp, n, pid, session_client_encoding(c->s));
    if (sp->rc == PG_ENC_UNMAPPABLE || sp->rc == PG_ENC_INVALID) {
        if ((c->fatal = malloc(sizeof(*c->fatal))) != NULL)
            *c->fatal = sp->why;
        slog_info(c->s, "a notification on channel \"%s\" cannot be sent in %s: %s", n->relname,
                  session_client_encoding(c->s), sp->why.message);
    } else if (sp->rc != PG_ENC_OK || evbuffer_add(c->queue, evbuffer_pullup(sp->msg, -1),
                                                   evbuffer_get_length(sp->msg)) != 0) {
        slog_warn(c->s, "out of memory: a notification on channel \"%s\" is lost", n->relname);
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

/* The primary the database's sessions write on, where it lives now (placement_hosts). */
static const struct region_host *notify_db_primary(const struct notify_db *db)
{
    struct worker *w = db->hub->w;
    const struct region_host *h = NULL;
    placement_hosts(&w->shared->placement, w->cfg, db->name, PGCONN_PRIMARIES, &h, 1);
    return h;
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

/*
 * pgasync's answer to the statements sent: the server listens (the
 * connection kept for its notifications), refused one (its sessions alone
 * fail: notify_db_refused), or the connection failed (listened again
 * later: notify_db_failed).
 */
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

/* Every NOTIFY_TICK_MS: each connection checked against its database's primary. */
static void notify_hub_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    notify_hub_check(arg);
}

/* ---- the worker's part ---- */

/* The worker's hub, with its tick, made as the worker starts; -1 with err: out of memory. */
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
    hub->db_step = notify_db_step;
    list_init(&hub->dbs);
    list_init(&hub->to_flush);
    w->notify_hub = hub;
    return 0;
}

/* A host was fenced as a former primary: the connections on it move now, not at the tick. */
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
