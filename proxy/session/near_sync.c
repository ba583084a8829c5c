/*
 * near_sync.c — a nearest session's state carried between its two
 * connections (near_sync.h): read back from the parked connection that
 * has the newest, replayed on the one attached for the next transaction.
 */
#include "proxy/session/near_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "protocol/session_state.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/near_state.h"
#include "proxy/session/near_slots.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/server_params.h"
#include "proxy/session/session.h"

struct near_sync {
    struct server_conn *to; /* the transaction's connection, detached while the state is read */
    bool to_detached;
    int from; /* the slot of the connection the state is read from */
    struct session_state st;
    unsigned owed;  /* ReadyForQuery the replay's connection still owes */
    unsigned reads; /* state queries sent */
    bool canceled;  /* the last one was canceled (57014) */
    char failure[200];
    near_sync_done done;
};

/*
 * How many times the state is read: pgnear's own limits are set by its
 * query's first statements, which still run under the session's, and a
 * tight statement_timeout may cancel them on a busy server.
 */
#define NEAR_SYNC_READS 5

bool near_sync_running(const struct session *s)
{
    return near_sync_of(s) != NULL;
}

/* The sync's first failure, as text (a server's ErrorResponse: its SQLSTATE and message). */
static void near_sync_fail(struct near_sync *y, const char *what, const uint8_t *report,
                           uint32_t len)
{
    if (y->failure[0] != '\0')
        return;
    if (report == NULL) {
        snprintf(y->failure, sizeof(y->failure), "%s", what);
        return;
    }
    const char *code = pkt_report_field(report, len, 'C');
    const char *msg = pkt_report_field(report, len, 'M');
    snprintf(y->failure, sizeof(y->failure), "%s: %s %s", what, code != NULL ? code : "XX000",
             msg != NULL ? msg : "(no message)");
}

/* The sync's end: its memory goes, then the caller hears how it went. */
static void near_sync_finish(struct session *s, enum near_sync_end how, struct server_conn *spare)
{
    struct near_sync *y = near_sync_of(s);
    char why[sizeof(y->failure)];
    snprintf(why, sizeof(why), "%s", y->failure);
    near_sync_done done = y->done;
    session_state_free(&y->st);
    free(y);
    near_sync_set(s, NULL);
    if (how == NEAR_SYNC_DONE) {
        near_state_carried(s);
        stat_inc(&s->w->stats.nearest_state_syncs);
    }
    done(s, how, spare, why);
}

/* A connection set aside, unread, while the session's attached one is another. */
static void near_sync_set_aside(struct server_conn *sc)
{
    server_conn_detach(sc);
    sc->ep.read_paused = true;
    endpoint_arm(&sc->ep);
}

/* It is attached again for a query of the sync's: read by reader. */
static void near_sync_take(struct session *s, struct server_conn *sc, endpoint_handler reader)
{
    server_conn_attach(sc, s);
    endpoint_resume_read(&sc->ep);
    endpoint_set_reader(&sc->ep, reader);
}

static void near_sync_bad_length(struct session *s)
{
    session_close(s, "its server sent a message of invalid length");
}

static void near_sync_replay_read(struct session *s);

/*
 * The state is read: the replay goes to the transaction's connection
 * after a DISCARD ALL (it may hold an older state, or another client's
 * settings as the pool handed it over), the state read back from the
 * other connection into y->st behind the session's startup parameters.
 */
static void near_sync_replay(struct session *s)
{
    struct near_sync *y = near_sync_of(s);
    struct server_conn *from = s->server_conn, *to = y->to;
    near_sync_set_aside(from);
    near_slot_put(s, y->from, from);
    near_sync_take(s, to, near_sync_replay_read);
    y->to_detached = false;
    if (to->prep != NULL)
        prep_server_forget_all(to->prep);
    y->owed = 2;
    if (pkt_add_query(to->ep.out, "DISCARD ALL") != 0 ||
        evbuffer_add_buffer(to->ep.out, y->st.replay) != 0) {
        session_close(s, "out of memory");
        return;
    }
    slog_debug(s, "its state goes to its connection %llu (%u settings, %u statements)",
               (unsigned long long)to->id, y->st.settings, y->st.statements);
    endpoint_flush(s, &to->ep);
}

/* The state query's answer ended (status: its ReadyForQuery's). */
static void near_sync_state_done(struct session *s, char status)
{
    struct near_sync *y = near_sync_of(s);
    const char *pin = y->failure[0] ? NULL : session_state_unmovable(&y->st, s->user);
    if (y->failure[0] == '\0' && status != 'I')
        near_sync_fail(y, "its server was not idle", NULL, 0);
    if (y->failure[0] == '\0' && pin == NULL && session_state_finish(&y->st) != SESSION_STATE_OK)
        near_sync_fail(y, "out of memory", NULL, 0);
    if (y->failure[0] != '\0') {
        near_sync_finish(s, NEAR_SYNC_FAILED, y->to);
        return;
    }
    if (pin != NULL) {
        near_sync_fail(y, pin, NULL, 0);
        near_sync_finish(s, NEAR_SYNC_PINNED, y->to); /* stays on the one read, attached */
        return;
    }
    near_sync_replay(s);
}

/* Whether an ErrorResponse (body: len bytes) says its statement was canceled. */
static bool near_sync_canceled(const uint8_t *body, uint32_t len)
{
    const char *code = pkt_report_field(body, len, 'C');
    return code != NULL && strcmp(code, "57014") == 0;
}

/*
 * The replay's beginning, before the state read: its own limits (a
 * serializable session's transaction is refused by a standby; a tight
 * statement_timeout cancels it), then the session's startup parameters
 * the connection lacks (server_params.h).
 */
static int near_sync_replay_begin(struct session *s, struct server_conn *to,
                                  struct session_state *st)
{
    const char *name, *value;
    size_t off = 0;
    int rc = session_state_init(st);
    st->skip_protocol_statements = true;
    if (rc == SESSION_STATE_OK)
        rc = session_state_own_limits(st);
    while (rc == SESSION_STATE_OK && server_params_next_change(s, to, &off, &name, &value))
        rc = session_state_setting(st, name, value);
    return rc;
}

/* The state query to the connection that has the state (attached). */
static bool near_sync_ask(struct session *s)
{
    struct near_sync *y = near_sync_of(s);
    struct server_conn *sc = s->server_conn;
    y->reads++;
    if (pkt_add_query(sc->ep.out, session_state_query_own_limits()) != 0) {
        session_close(s, "out of memory");
        return false;
    }
    if (sc->prep != NULL)
        prep_server_query_sent(sc->prep); /* the Query drops its unnamed statement */
    return endpoint_flush(s, &sc->ep) == 0;
}

/* The state read was canceled (its ReadyForQuery is consumed by the caller): again. */
static bool near_sync_read_again(struct session *s)
{
    struct near_sync *y = near_sync_of(s);
    y->canceled = false;
    session_state_free(&y->st);
    slog_debug(s, "reading its state was canceled by its statement_timeout: read again");
    if (near_sync_replay_begin(s, y->to, &y->st) != SESSION_STATE_OK) {
        near_sync_fail(y, "out of memory", NULL, 0);
        near_sync_finish(s, NEAR_SYNC_FAILED, y->to);
        return false;
    }
    return near_sync_ask(s);
}

/* One message of the answer to the state query. */
static int near_sync_state_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct near_sync *y = near_sync_of(s);
    int rc;
    switch (type) {
    case 'D':
        rc = y->failure[0] ? SESSION_STATE_OK : session_state_row(&y->st, body, len);
        if (rc == SESSION_STATE_FULL)
            near_sync_fail(y, "its prepared statements are larger than pgnear carries", NULL, 0);
        else if (rc != SESSION_STATE_OK)
            near_sync_fail(y, "pgnear could not read its state back from the server", NULL, 0);
        return MSG_CONSUMED;
    case 'E':
        if (near_sync_canceled(body, len) && y->reads < NEAR_SYNC_READS && !y->failure[0])
            y->canceled = true; /* before its own limits were set: read again */
        else
            near_sync_fail(y, "reading its state failed", body, len);
        return MSG_CONSUMED;
    case 'Z': {
        char status = len >= 1 ? (char)body[0] : '?';
        if (y->canceled && status == 'I')
            return near_sync_read_again(s) ? MSG_CONSUMED : MSG_STOP;
        frame_consume(s->server_conn->ep.in, len);
        near_sync_state_done(s, status);
        return MSG_STOP;
    }
    default: /* RowDescription, CommandComplete, a notice: nothing the client waits for */
        return MSG_CONSUMED;
    }
}

/*
 * One message of the answers to the DISCARD ALL and the replay: the
 * ParameterStatus they send says what the client was told already.
 */
static int near_sync_replay_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct near_sync *y = near_sync_of(s);
    if (type == 'E')
        near_sync_fail(y, "its settings could not be replayed", body, len);
    if (type != 'Z' || --y->owed > 0)
        return MSG_CONSUMED;
    frame_consume(s->server_conn->ep.in, len);
    if (y->failure[0] == '\0') {
        slog_debug(s, "its state is on its connection %llu now",
                   (unsigned long long)s->server_conn->id);
        near_sync_finish(s, NEAR_SYNC_DONE, NULL);
        return MSG_STOP;
    }
    /* The one that has the state takes the transaction, and the session stays there. */
    struct server_conn *spare = s->server_conn, *from = near_slot_remove(s, y->from);
    near_sync_set_aside(spare);
    near_sync_take(s, from, NULL);
    near_sync_finish(s, NEAR_SYNC_PINNED, spare);
    return MSG_STOP;
}

/* Each of them as large as a state row may be. */
#define NEAR_SYNC_READER(name, handler)                                                            \
    MSG_SERVER_READER(static, name, handler, SESSION_STATE_MAX_BYTES, near_sync_bad_length)

NEAR_SYNC_READER(near_sync_state_read, near_sync_state_message)
NEAR_SYNC_READER(near_sync_replay_read, near_sync_replay_message)

void near_sync_start(struct session *s, near_sync_done done)
{
    struct server_conn *to = s->server_conn;
    int from = near_slot_newest(s);
    if (from < 0) {
        done(s, NEAR_SYNC_FAILED, NULL, "the server connection that held its settings ended");
        return;
    }
    struct near_sync *y = calloc(1, sizeof(*y));
    if (y == NULL || near_sync_replay_begin(s, to, &y->st) != SESSION_STATE_OK) {
        if (y != NULL)
            session_state_free(&y->st);
        free(y);
        done(s, NEAR_SYNC_FAILED, NULL, "out of memory");
        return;
    }
    y->to = to;
    y->from = from;
    y->done = done;
    near_sync_set(s, y);
    near_sync_set_aside(to);
    y->to_detached = true;
    struct server_conn *sc = near_slot_remove(s, from);
    slog_debug(s, "its state is read back from its connection %llu for its connection %llu",
               (unsigned long long)sc->id, (unsigned long long)to->id);
    near_sync_take(s, sc, near_sync_state_read);
    near_sync_ask(s);
}

void near_sync_end(struct session *s)
{
    struct near_sync *y = near_sync_of(s);
    if (y == NULL)
        return;
    if (y->to_detached)
        server_conn_close(y->to, false);
    session_state_free(&y->st);
    free(y);
    near_sync_set(s, NULL);
}
