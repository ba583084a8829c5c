/*
 * cancel.h — pgnear's own cancel keys and the forwarding of CancelRequests.
 *
 * Clients get the server's real process ID with a secret chosen by
 * pgnear; the server's secret never leaves pgnear.  A key is forgotten
 * when its session ends, so a late cancel can never reach a server
 * process that has since been given to someone else.  The registry is
 * shared by the workers (a CancelRequest may arrive on any of them), so an
 * entry carries copies of all that forwarding needs, never a session
 * pointer another thread could follow.
 */
#ifndef PGNEAR_PROXY_CANCEL_H
#define PGNEAR_PROXY_CANCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protocol/startup.h"

#define CANCEL_KEY_V32_LEN 32
#define CANCEL_HOST_MAX    256

struct cancel_entry {
    uint8_t client_key[CANCEL_KEY_V32_LEN]; /* pgnear's key, as given to the client */
    uint8_t client_key_len;
    uint32_t server_pid;
    uint8_t server_key[CANCEL_KEY_MAX_LEN];
    uint16_t server_key_len;
    struct sockaddr_storage server_addr;
    socklen_t server_addrlen;
    bool server_tls;                   /* the session's server connection is TLS */
    char server_host[CANCEL_HOST_MAX]; /* as configured, for verify-full */
    uint64_t client_id;
    bool registered;
};

struct session;
struct worker;

/*
 * Records the server's key and picks the client's (4 bytes under protocol
 * 3.0, 32 under 3.2).  Returns 0, or -1 when out of memory.
 */
int cancel_register(struct session *s, uint32_t server_pid, const uint8_t *server_key,
                    size_t server_key_len);
void cancel_unregister(struct session *s);

/* Handles one CancelRequest from any listener; never answers the sender. */
void cancel_handle_request(struct worker *w, const struct startup_packet *sp, uint64_t from_id);

/* Frees cancel connections still in flight (shutdown). */
void cancel_close_all(struct worker *w);

#endif
