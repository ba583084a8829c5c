/*
 * cancel.h — a session's cancel key (in the registry of cancel_keys.h) and
 * the forwarding of CancelRequests.
 *
 * Clients get the server's real process ID (a synthetic one under
 * protocol 3.0 in a fleet: cancel_key.h) with a secret chosen by pgnear;
 * the server's secret never leaves pgnear.  A key is forgotten
 * when its session ends or its server connection closes, and names no
 * connection while its session has none (between transactions under
 * transaction pooling), so a late cancel can never reach a server process
 * that has since been given to someone else.  The registry is shared by
 * the workers (a CancelRequest may arrive on any of them): another worker
 * reads an entry's key and session under cancel_lock (the owner registers
 * and unregisters under the same lock), and asks the session's own worker
 * to cancel; that worker reads which server connection the key names now,
 * and sends the request on from there.  The connection is then held for
 * the request (cancel_send.h): it goes to no other client before the
 * server has acted on it.
 */
#ifndef PGNEAR_PROXY_CANCEL_H
#define PGNEAR_PROXY_CANCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/startup.h"
#include "proxy/session/cancel_keys.h"

struct pp_header;
struct server_conn;
struct sockaddr;

/* Where a CancelRequest came from. */
struct cancel_origin {
    uint64_t id;                      /* the connection's, for the log */
    const struct sockaddr *addr;      /* the client's (behind a PROXY header: the original one) */
    const char *peer_text;            /* the same, as text */
    const struct pp_header *pp;       /* the PROXY header ahead of it, if any */
    const struct sockaddr *conn_addr; /* the connection's own address */
};

struct session;
struct worker;

/*
 * Records the server's process ID and key in the session's server
 * connection and picks the client's key (4 bytes under protocol 3.0, 32
 * under 3.2) and process ID (s->cancel.client_pid: the server's, or a
 * synthetic one that names this instance of a fleet; cancel_key.h).
 * Returns 0, or -1 when out of memory.
 */
int cancel_register(struct session *s, uint32_t server_pid, const uint8_t *server_key,
                    size_t server_key_len);
/*
 * A key for an admin console session, which has no server: a cancel with
 * it reaches the console on its own worker (console_cancel).
 * s->cancel.client_pid is the process ID to give the client with the key.
 * 0, or -1 when out of memory.
 */
int cancel_register_console(struct session *s);

/*
 * A key for a session logged in without a server connection (transaction
 * pooling, login_greet.h), given with process ID pid: it stands for no
 * server until a transaction's connection is attached (cancel_retarget).
 * 0, or -1 when out of memory.
 */
int cancel_register_detached(struct session *s, uint32_t pid);

/*
 * The session moved to sc (move.h): its key, unchanged, now stands for
 * sc's process ID and key, so that a CancelRequest reaches the new backend.
 */
void cancel_retarget(struct session *s, const struct server_conn *sc);

/*
 * Handles one CancelRequest from any listener: sent on to the session's
 * server when the session is here, forwarded to the peer that holds it
 * when the key names another instance of the fleet, else dropped (counted,
 * and charged to the client's network: cancel_limit.h).  Never answers the
 * sender.  True when it was sent on: the sender's connection (the session
 * o->id on w) is then closed once the request was delivered, or could not
 * be; the caller reads nothing more from it meanwhile.  False: the caller
 * closes it now.
 */
bool cancel_handle_request(struct worker *w, const struct startup_packet *sp,
                           const struct cancel_origin *o);

/*
 * On s's own worker: cancels the request s's client has going, as a
 * CancelRequest of its client's would (answered 57014 here when it waits
 * for a server connection: txn_cancel.h), with no requester to close.
 * True when it was canceled or a delivery to its server started.
 */
bool cancel_session_request(struct session *s);

/*
 * Cancels what sc's server runs for the session session_id, whose client
 * vanished (pgnear's own request, no requester): sc is held until it is
 * delivered (pool_give.h).  False when it could not start.
 */
bool cancel_server_conn(struct worker *w, struct server_conn *sc, uint64_t session_id);

/* Frees cancel connections still in flight (shutdown). */
void cancel_close_all(struct worker *w);

/* Cancel forwarding's life on a worker: connections in flight closed with it. */
extern const struct worker_part cancel_part;

#endif
