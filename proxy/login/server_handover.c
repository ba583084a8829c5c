/*
 * server_handover.c — a kept server connection given to a new client.
 */
#include "proxy/login/server_handover.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/session_state.h"
#include "protocol/stream.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/login/hint_notice.h"
#include "proxy/login/server_login.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/server_params.h"
#include "proxy/session/session.h"
#include "proxy/session/txn_notify.h"
#include "routing/health.h"

/*
 * Appends to out the client's startup parameters that differ from the
 * ones the connection logged in with (which a reset returns it to),
 * replayed as a moved session's settings are (session_state_setting): one
 * Sync, so one ReadyForQuery, and none set when one fails.  Returns how
 * many, or -1 when out of memory.
 */
static int handover_settings(struct session *s, struct evbuffer *out)
{
    const char *name, *value;
    size_t off = 0;
    /* Most handovers set nothing (each fetch of transaction pooling): no replay is made then. */
    if (!server_params_next_change(s, s->server_conn, &off, &name, &value))
        return 0;
    struct session_state st;
    if (session_state_init(&st) != SESSION_STATE_OK)
        return -1;
    int rc = session_state_setting(&st, name, value);
    while (rc == SESSION_STATE_OK &&
           server_params_next_change(s, s->server_conn, &off, &name, &value))
        rc = session_state_setting(&st, name, value);
    if (rc == SESSION_STATE_OK)
        rc = session_state_finish(&st);
    if (rc == SESSION_STATE_OK && evbuffer_add_buffer(out, st.replay) != 0)
        rc = SESSION_STATE_OOM;
    int count = (int)st.settings;
    session_state_free(&st);
    return rc != SESSION_STATE_OK ? -1 : count;
}

/* The check query, as a Query message. */
static int handover_check(struct session *s, struct evbuffer *out)
{
    return pkt_add_query(out, s->cfg->server_check_query);
}

int server_greet_client(struct session *s, const struct param_set *reported,
                        const struct param_set *changed)
{
    uint8_t buf[2 * PARAM_SET_MAX_BYTES + 5 * 2 * PARAM_SET_MAX + 128];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_authentication(&pb, AUTH_OK, NULL, 0);
    param_set_write_merged(reported, changed, &pb);
    /* What the client is told of its encoding, for what pgnear says itself (notify_hub.h). */
    const char *enc = param_set_get(changed, "client_encoding");
    if (enc == NULL)
        enc = param_set_get(reported, "client_encoding");
    if (enc != NULL)
        txn_notify_encoding(s, enc);
    pkt_put_backend_key_data(&pb, s->cancel.client_pid, cancel_entry_key(&s->cancel),
                             s->cancel.client_key_len);
    if (!pkt_ok(&pb) || evbuffer_add(s->client.out, buf, pb.len) != 0) {
        session_fail_msg(s, "53200", "out of memory");
        return -1;
    }
    hint_notice_queue(s); /* after AuthenticationOk, before the first ReadyForQuery */
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_ready_for_query(&pb, 'I');
    evbuffer_add(s->client.out, buf, pb.len);
    return 0;
}

/*
 * What a server says at login, said by pgnear to the client for the kept
 * connection, with a cancel key of its own.  0, or -1 when the session
 * failed (out of memory).
 */
static int handover_greet(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    uint8_t key[CANCEL_KEY_MAX_LEN];
    memcpy(key, sc->key, sc->key_len);
    if (cancel_register(s, sc->pid, key, sc->key_len) != 0) {
        session_fail_msg(s, "53200", "out of memory registering the cancel key");
        return -1;
    }
    return server_greet_client(s, &sc->reported, &s->login->handover.params);
}

/*
 * The kept connection is the session's: its client is greeted, then the
 * relay starts.  A login of pgnear's own (a transaction's fetcher, a
 * mover) has no client to greet: its connection goes on to its owner.
 */
static void handover_finish(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (!session_login_internal(s->login) && handover_greet(s) != 0)
        return;
    tx_track_init(&sc->tx, 'I');
    sc->sent_to_client = true;
    server_login_served(s);
    phase_done(s);
}

/*
 * An ErrorResponse, kept to be told to the client as the FATAL error of
 * its login (as a server refuses a bad startup parameter: with its own
 * message, or "invalid startup parameter" where it gave none).
 */
static void handover_keep_error(struct session_login *l, const uint8_t *body, uint32_t len)
{
    struct pg_error *e = &l->handover.error;
    pg_error_from_report(e, body, len);
    if (e->sqlstate[0] == '\0')
        snprintf(e->sqlstate, sizeof(e->sqlstate), "22023");
    if (e->message[0] == '\0')
        snprintf(e->message, sizeof(e->message), "invalid startup parameter");
}

/* The last answer came: the client is let in, or told why its parameters were refused. */
static void handover_answered(struct session *s)
{
    struct session_login *l = s->login;
    if (!pg_error_is_set(&l->handover.error)) {
        handover_finish(s);
        return;
    }
    session_fail(s, &l->handover.error);
}

static int handover_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct session_login *l = s->login;
    struct server_conn *sc = s->server_conn;
    if (!sc->answered) {
        sc->answered = true;
        health_note_answer(sc->host);
        session_set_timer(s, s->cfg->client_login_timeout_ms);
    }
    switch (type) {
    case 'E':
        if (l->handover.checking) {
            phase_server_failed(s, "server_check_query failed", HOST_BUSY);
            return MSG_STOP;
        }
        handover_keep_error(l, body, len);
        return MSG_CONSUMED;
    case 'S':
        if (!l->handover.checking && param_set_note(&l->handover.params, body, len) != PARAM_SET_OK)
            sc->poolable = false; /* its client hears less than all: it is not kept after */
        return MSG_CONSUMED;
    case 'Z':
        l->handover.checking = false;
        if (--l->handover.answers > 0)
            return MSG_CONSUMED;
        frame_consume(sc->ep.in, len);
        handover_answered(s);
        return MSG_STOP;
    default:
        return MSG_CONSUMED; /* the check's and the settings' results */
    }
}

static void handover_bad_length(struct session *s)
{
    phase_server_failed(s, "server sent an invalid message length", HOST_BUSY);
}

static void handover_on_read(struct session *s)
{
    static const struct msg_reader reader = {
        .fill_max = 65536,
        .max_body = 65536,
        .on_message = handover_message,
        .on_bad_length = handover_bad_length,
    };
    endpoint_read_messages(s, &s->server_conn->ep, &reader);
}

void server_handover_enter(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    struct session_login *l = s->login;
    int64_t idle_us = wall_clock_us() - sc->idle_since;
    slog_info(s, "reusing server connection %llu to %s:%d (use %u, idle %lld ms)",
              (unsigned long long)sc->id, sc->host->name, sc->host->port, sc->use_count,
              (long long)(idle_us / 1000));
    stat_inc(&s->w->stats.server_reuses);
    l->handover.answers = 0;
    if (idle_us > (int64_t)s->cfg->server_check_delay_ms * 1000) {
        if (handover_check(s, sc->ep.out) != 0)
            goto oom;
        l->handover.answers++;
        l->handover.checking = true;
    }
    int settings = handover_settings(s, sc->ep.out);
    if (settings < 0)
        goto oom;
    l->handover.answers += settings > 0;
    if (l->handover.answers == 0) {
        handover_finish(s);
        return;
    }
    sc->answered = false; /* until it does, a timeout is the connection's fault */
    session_set_timer(s, s->cfg->server_connect_timeout_ms);
    endpoint_set_reader(&sc->ep, handover_on_read);
    if (endpoint_write_out(&sc->ep) < 0) {
        phase_server_failed(s, "could not send to server", HOST_BUSY);
        return;
    }
    return;
oom:
    session_fail_msg(s, "53200", "out of memory");
}
