/*
 * tx_track.h — what a relay learns from message types alone about the
 * state of a server connection: the transaction status of the server's
 * last ReadyForQuery, and how many requests the server has yet to answer.
 *
 * The relay reads every message header going either way (framing.c) and
 * hands each type here once, as the message starts: a few instructions a
 * message, no allocation.  The status comes only from ReadyForQuery
 * messages the server sent; nothing a client sends can set it.
 *
 * Which requests a ReadyForQuery answers.  PostgreSQL sends exactly one
 * ReadyForQuery for each Query, FunctionCall and Sync it reads outside
 * COPY IN, and for nothing else: a Query ends with one however many
 * statements it held (a COPY FROM STDIN among them included), an
 * extended-protocol batch (Parse/Bind/Describe/Execute/Close) with the one
 * of the Sync that ends it, also after an error.  CopyDone and CopyFail
 * get none of their own: they end the COPY IN, and the ReadyForQuery that
 * follows answers the Query that started it (simple protocol) or the Sync
 * the client sends after them (extended protocol).  While in COPY IN the
 * server ignores Sync and Flush, so a Sync sent between the Query or
 * Execute that starts a COPY IN and the CopyDone or CopyFail that ends it
 * is never answered: libpq sends one right behind the Execute before it
 * knows that the statement is a COPY, then CopyDone or CopyFail, then
 * another Sync, and gets one ReadyForQuery for the two.
 *
 * The rule, then:
 *   +1  for each Query, FunctionCall and Sync the client sends, except a
 *       Sync inside a COPY IN;
 *   -1  for each ReadyForQuery the server sends.
 * A COPY IN is known from the server's CopyInResponse (or
 * CopyBothResponse), which arrives after the client may have sent Syncs
 * behind the COPY's Execute, and even, from a client that does not wait,
 * its CopyData and CopyDone: the Syncs since the last Query or Execute
 * (the window) are counted when sent, and taken back when the
 * CopyInResponse shows that they went to a COPY IN.  From then on until
 * the client's CopyDone or CopyFail, or until the server ends the COPY
 * with CommandComplete or ErrorResponse, the client's Syncs are not
 * counted.  A COPY IN also ends when the client sends something it does
 * not take (an extended-protocol message, a FunctionCall, a Query): the
 * server fails the COPY on it, and reads the Syncs after it again.
 *
 * Extended-protocol messages since the last Sync (the batch) keep the
 * connection busy too, though nothing is outstanding yet: the server may
 * be executing them, inside an implicit transaction, and waits for the
 * Sync.  A Query sent after them ends the batch as well: the server runs
 * it in the batch's implicit transaction and ends that with the Query
 * (one that an error has the server skip to the Sync gets no answer at
 * all), so its ReadyForQuery, nothing else outstanding, closes the batch
 * (node-postgres's cursors send a Close and then their next Query
 * without a Sync).  The safe point — a server connection that could be
 * paused or handed to another client — is status 'I', nothing
 * outstanding, no batch open and no doubt (tx_track_at_safe_point).
 *
 * Doubt.  When the count cannot be trusted any more it says so, for good
 * (TX_UNSURE): the connection is then never at a safe point, which costs
 * a pause or a pool a connection but never hands one over mid-request.
 * That happens when a client sends a new Query or Execute after ending a
 * COPY whose CopyInResponse has not come yet (a later CopyInResponse
 * could belong to either), and when a ReadyForQuery comes that the count
 * did not expect.  The latter is how the one known imprecision shows
 * itself: when the server fails a COPY IN before it has read a Sync that
 * the client sent behind the COPY's Execute (COPY into a view fails before
 * reading any data; a cancel can land there too), that Sync is answered
 * after all, though it was taken back; until its ReadyForQuery arrives the
 * count may read one low if the client has sent another request
 * meanwhile.  libpq's own bookkeeping makes the same assumption.  A Query
 * that the server takes as the failure of a COPY IN is never answered:
 * the count stays high, never low.
 */
#ifndef PGNEAR_PROTOCOL_TX_TRACK_H
#define PGNEAR_PROTOCOL_TX_TRACK_H

#include <stdbool.h>
#include <stdint.h>

/* The relay's scan runs these for every message: inlined there whatever their size. */
#define TX_TRACK_INLINE static inline __attribute__((always_inline))

enum tx_track_flag {
    TX_BATCH = 1,         /* extended-protocol messages sent since the last Sync counted */
    TX_BATCH_IF_COPY = 2, /* TX_BATCH if the window's Syncs go to a COPY IN */
    TX_WINDOW = 4,        /* a Query or Execute sent; no CopyDone/CopyFail nor COPY seen since */
    TX_COPYING = 8,       /* in COPY IN: the client's Syncs go unanswered */
    TX_EXTENDED = 16,     /* an extended-protocol message or FunctionCall since the COPY began */
    TX_UNSURE = 32,       /* the count cannot be trusted: never a safe point again */
    TX_QUERY_LAST = 64, /* a Query sent in a batch, no extended message since: its answer ends it */
};

struct tx_track {
    uint32_t outstanding;  /* requests sent to the server, not yet answered by ReadyForQuery */
    uint16_t window_syncs; /* Syncs counted since the window's Query or Execute */
    uint8_t copy_ends;     /* CopyDone/CopyFail sent in the window before any COPY was seen */
    uint8_t flags;         /* enum tx_track_flag */
    char status;           /* from the last ReadyForQuery: 'I', 'T' or 'E'; 0: unknown */
    /*
     * ReadyForQuery messages since the login: requests answered (SHOW
     * STATS's queries), and of those the ones that left the server idle (a
     * transaction, or a statement outside one, ended: its transactions).
     */
    uint64_t answered, answered_idle;
};

/* A connection just logged in: its ReadyForQuery said status, nothing is outstanding. */
static inline void tx_track_init(struct tx_track *t, char status)
{
    *t = (struct tx_track){.status = status};
}

/*
 * A Query or Execute: a COPY IN may start here; batch: the batch state as
 * it stands after it.  A COPY the client ended without its CopyInResponse
 * having come is no longer told apart from one this window may start.
 */
TX_TRACK_INLINE void tx_track_open_window(struct tx_track *t, uint8_t batch)
{
    uint8_t unsure = (t->flags & TX_UNSURE) | (t->copy_ends ? TX_UNSURE : 0);
    t->window_syncs = 0;
    t->copy_ends = 0;
    t->flags = (uint8_t)(unsure | batch | (batch << 1) | TX_WINDOW);
}

TX_TRACK_INLINE void tx_track_sync(struct tx_track *t)
{
    if (t->flags & TX_COPYING) {
        if (!(t->flags & TX_EXTENDED))
            return; /* ignored by the server */
        /* The server failed the COPY on the message before, and reads this Sync. */
        t->flags &= (uint8_t)~TX_COPYING;
    }
    t->outstanding++;
    if (t->flags & TX_WINDOW) {
        t->flags &= (uint8_t)~TX_BATCH;
        if (t->window_syncs < UINT16_MAX)
            t->window_syncs++;
    } else {
        t->flags &= (uint8_t) ~(TX_BATCH | TX_BATCH_IF_COPY);
    }
}

/*
 * CopyDone or CopyFail.  In a COPY IN it ends it: the Syncs after it are
 * answered again.  Before any CopyInResponse of the window it closes the
 * window: its Syncs are those a COPY would swallow, the later ones are
 * not.  After one, outside the COPY, the server ignores it (the tail of a
 * COPY that failed).
 */
TX_TRACK_INLINE void tx_track_copy_ended(struct tx_track *t)
{
    if (t->flags & TX_COPYING) {
        t->flags &= (uint8_t)~TX_COPYING;
        return;
    }
    if (!(t->flags & TX_WINDOW) && t->copy_ends == 0)
        return;
    t->flags &= (uint8_t)~TX_WINDOW;
    if (t->copy_ends < UINT8_MAX)
        t->copy_ends++;
}

/*
 * The server began a COPY IN (CopyInResponse, CopyBothResponse) for the
 * window's Query or Execute, or for a later statement of the same Query.
 * The window's Syncs went, or go, to the COPY and are never answered:
 * they are taken back, and the batch is as they found it.  When the
 * client already ended this COPY (it sent its data without waiting), its
 * later Syncs were counted as they should be; otherwise the COPY lasts
 * until its CopyDone or CopyFail.
 */
TX_TRACK_INLINE void tx_track_copy_in(struct tx_track *t)
{
    t->outstanding -= t->window_syncs < t->outstanding ? t->window_syncs : t->outstanding;
    t->window_syncs = 0;
    t->flags = (uint8_t)((t->flags & ~(TX_BATCH | TX_WINDOW | TX_EXTENDED)) |
                         ((t->flags & TX_BATCH_IF_COPY) ? TX_BATCH : 0));
    if (t->copy_ends > 0) {
        t->copy_ends--;
        t->flags &= (uint8_t)~TX_COPYING;
    } else {
        t->flags |= TX_COPYING;
    }
}

/* One message from the client, by its type byte. */
TX_TRACK_INLINE void tx_track_client(struct tx_track *t, uint8_t type)
{
    switch (type) {
    case 'Q': {
        uint8_t batch = t->flags & TX_BATCH;
        t->outstanding++;
        tx_track_open_window(t, batch);
        t->flags |= batch ? TX_QUERY_LAST : 0;
        break;
    }
    case 'E':
        tx_track_open_window(t, TX_BATCH);
        break;
    case 'P':
    case 'B':
    case 'D':
    case 'C':
        t->flags =
            (uint8_t)((t->flags & ~TX_QUERY_LAST) | TX_BATCH | TX_BATCH_IF_COPY | TX_EXTENDED);
        break;
    case 'S':
        tx_track_sync(t);
        break;
    case 'F':
        t->outstanding++;
        t->flags |= TX_EXTENDED;
        break;
    case 'c':
    case 'f':
        tx_track_copy_ended(t);
        break;
    default:
        break; /* CopyData, Flush, Terminate, password messages: nothing to answer */
    }
}

/* Server messages that can begin or end a COPY IN; the relay looks each type up here. */
static const uint8_t tx_track_copy_types[256] = {['G'] = 1, ['W'] = 1, ['C'] = 1, ['E'] = 1};

TX_TRACK_INLINE void tx_track_server_copy(struct tx_track *t, uint8_t type)
{
    if (type == 'G' || type == 'W')
        tx_track_copy_in(t);
    else if (t->flags & TX_COPYING)
        t->flags &= (uint8_t)~TX_COPYING; /* the server ended the COPY (an error, most likely) */
}

/* One message from the server; status: a ReadyForQuery's status byte (0: it had none). */
TX_TRACK_INLINE void tx_track_server(struct tx_track *t, uint8_t type, uint8_t status)
{
    if (type == 'Z') {
        if (t->outstanding > 0)
            t->outstanding--;
        else
            t->flags |= TX_UNSURE; /* an answer the count did not expect */
        if (t->outstanding == 0 && (t->flags & TX_QUERY_LAST))
            t->flags &= (uint8_t) ~(TX_BATCH | TX_BATCH_IF_COPY | TX_QUERY_LAST);
        t->status = (char)status;
        t->answered++;
        t->answered_idle += status == 'I';
    } else if (tx_track_copy_types[type]) {
        tx_track_server_copy(t, type); /* CommandComplete, ErrorResponse, COPY responses */
    }
}

/* Idle, nothing outstanding, no batch open, no doubt: nothing of the client's is in flight. */
static inline bool tx_track_at_safe_point(const struct tx_track *t)
{
    return t->status == 'I' && t->outstanding == 0 &&
           !(t->flags & (TX_BATCH | TX_COPYING | TX_UNSURE));
}

#endif
