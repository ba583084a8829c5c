/*
 * move_end.c — how a move of a live session ends (move_int.h): the result
 * told, the session handed back to its old server or ended with it, the
 * failure's words; and the old server's messages passed on to the client
 * while the session waits for its safe point.
 */
#include "proxy/session/move.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/session_state.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fetch.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_int.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"

void move_fail_text(struct session_move *mv, const char *prefix, const char *text)
{
    if (mv->failure[0] == '\0')
        snprintf(mv->failure, sizeof(mv->failure), "%s%s", prefix, text);
}

/* A server's ErrorResponse as the failure: its SQLSTATE and message, after prefix. */
void move_fail_report(struct session_move *mv, const char *prefix, const uint8_t *body,
                      uint32_t len)
{
    const char *sqlstate = pkt_report_field(body, len, 'C');
    const char *msg = pkt_report_field(body, len, 'M');
    char words[sizeof(mv->failure)];
    snprintf(words, sizeof(words), "%s %s", sqlstate != NULL ? sqlstate : "XX000",
             msg != NULL ? msg : "(no message)");
    move_fail_text(mv, prefix, words);
}

/*
 * The move failed: the session stays on its old server.  What the server
 * said meanwhile and was held back reaches the client now, and the relay
 * takes the connection again (unless it is gone, or still owes the answer
 * of a query of the move's, whose reader gives it back at its end).
 */
static void move_old_back(struct session_move *mv)
{
    struct session *s = mv->s;
    struct server_conn *old = s->server_conn;
    old->ep.owner = &session_endpoint_owner;
    if (mv->old_error_len > 0) {
        if (move_pass_on(s, 'E', mv->old_error, mv->old_error_len) < 0)
            return;
        old->ep.last_type = 'E';
        mv->old_error_len = 0;
    }
    if (!mv->old_gone && !s->move_answer_owed && old->ep.on_read == move_old_read)
        relay_attach_server(s);
}

/*
 * The move ends: whoever asked hears how, the session is read again (if
 * no other hold keeps it), and everything the move made is let go.  The
 * mover, if still there, is closed with its connection.
 */
void move_end(struct session_move *mv, bool moved, const char *reason)
{
    struct session *s = mv->s;
    struct session *mover = mv->mover;
    mv->res.moved = moved;
    snprintf(mv->res.reason, sizeof(mv->res.reason), "%s", moved ? "" : reason);
    mv->res.hold_us = mv->held_us > 0 ? monotonic_us() - mv->held_us : 0;
    if (mv->timer != NULL)
        event_free(mv->timer);
    if (mv->retry != NULL)
        event_free(mv->retry);
    session_state_free(&mv->st);
    struct session_rare *rare =
        session_rare_own(&s->rare); /* (the move was set: the session's part) */
    rare->move = NULL;
    rare->moving = NULL;
    mv->mover = NULL;
    if (mover != NULL)
        fetch_close(mover, moved ? "its connection went to the moved session" : reason);
    if (moved)
        slog_info(s, "moved from region %s to region %s (client held %.1f ms)", mv->res.from,
                  mv->res.to, (double)mv->res.hold_us / 1000.0);
    else
        slog_info(s, "not moved from region %s%s%s: %s", mv->res.from,
                  mv->res.to[0] ? " to region " : "", mv->res.to, reason);
    stat_inc(moved ? &s->w->stats.moves_done : &s->w->stats.moves_failed);
    if (moved)
        stat_move_hold(&s->w->stats, mv->res.hold_us);
    /* Moved without its old server, it has its login's state again: the new server's. */
    if (moved && mv->lost)
        s->state_unknown = NULL;
    bool old_gone = mv->old_gone && !moved && !s->closed;
    if (!moved && !s->closed && s->server_conn != NULL)
        move_old_back(mv);
    if (!s->closed)
        gate_release_session(s, HOLD_MOVE);
    char why[sizeof(mv->old_why)];
    snprintf(why, sizeof(why), "%s", mv->old_why);
    mv->done(&mv->res, mv->arg);
    free(mv);
    /* The old server is gone and the move could not save the session: it ends as it would have. */
    if (old_gone && !s->closed)
        session_server_gone(s, why);
}

void move_abandon(struct session *s)
{
    struct session_move *mv = s->rare->move;
    move_end(mv, false, s->closing_why != NULL ? s->closing_why : "the session ended");
}

/* A message of the old server that is not the move's: on to the client, as the relay would. */
int move_pass_on(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    if (pkt_add_msg(s->client.out, type, body, len) != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    return endpoint_flush(s, &s->client);
}

void move_bad_length(struct session *s)
{
    session_fail_msg(s, "08P01", "invalid message length from server");
}

/*
 * A message the idle old server sends while the move goes on: a
 * notification, a notice or a parameter goes on to the client, as the
 * relay would pass it; an ErrorResponse (the FATAL of a server shutting
 * down) is held back: if the server then goes, the move may still save
 * the session, which then never hears of it (move_end tells it
 * otherwise).
 */
static int move_old_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct session_move *mv = s->rare->move;
    if (type != 'E')
        return move_pass_on(s, type, body, len) < 0 ? MSG_STOP : MSG_CONSUMED;
    if (mv->old_error_len == 0 && len <= sizeof(mv->old_error)) {
        memcpy(mv->old_error, body, len);
        mv->old_error_len = len;
    }
    return MSG_CONSUMED;
}

MOVE_READER(move_old_read, move_old_message)
