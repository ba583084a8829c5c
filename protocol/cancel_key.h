/*
 * cancel_key.h — the cancel keys pgnear hands to clients, laid out so that
 * any instance of a fleet can tell which instance holds the session.
 *
 * A CancelRequest is a new connection, which a load balancer may send to
 * any pgnear of the fleet; the key says where to forward it (peer_id) and
 * whether it was forwarded already (never twice).
 *
 * Protocol 3.0 (a 4-byte secret beside a 4-byte process ID):
 *   - without peering (peer_id 0) the process ID is the server's real one
 *     and the secret 32 random bits, as PostgreSQL's own;
 *   - with peering the process ID is synthetic: bit 31 clear (it reads as
 *     a positive int), bit 30 set (above any Linux pid_max, so that
 *     pg_terminate_backend() of it touches no backend), bits 29..16 the
 *     peer_id, bits 15..0 random; the secret's lowest bit is the
 *     forwarded flag, the other 31 random: 47 random bits in all.
 * Protocol 3.2 (a 32-byte secret; the process ID stays the real one):
 *   byte 0 the format (CANCEL_KEY_FORMAT), bytes 1-2 the peer_id (big
 *   endian), byte 3 flags (bit 0 forwarded), bytes 4-19 random, bytes
 *   20-31 the first 96 bits of HMAC-SHA256 over bytes 0-2 and 4-19 with
 *   the fleet's secret (random when there is none), so that a forged key
 *   is dropped before anything is forwarded.
 */
#ifndef PGNEAR_PROTOCOL_CANCEL_KEY_H
#define PGNEAR_PROTOCOL_CANCEL_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CANCEL_KEY_V30_LEN 4
#define CANCEL_KEY_V32_LEN 32
#define CANCEL_KEY_FORMAT  0x01
#define CANCEL_PEER_ID_MAX 16383
#define CANCEL_SECRET_MIN  32
#define CANCEL_SECRET_MAX  256
#define CANCEL_KEY_RANDOM  28 /* random bytes cancel_key_make takes (3.0 uses six) */
#define CANCEL_V32_RANDOM  16 /* of them, those a 3.2 key carries (the rest: no secret's MAC) */
#define CANCEL_SYNTHETIC   0x40000000u
#define CANCEL_V32_MAC_OFF 20
#define CANCEL_V32_MAC_LEN 12

/* What a key says of where it belongs. */
struct cancel_key_info {
    int peer_id;    /* the instance holding the session; 0: not said (handled here) */
    bool forwarded; /* already forwarded once: never again */
};

/*
 * A fresh key: *pid (what BackendKeyData carries) and key[len] (len 4 or
 * 32), naming peer_id (0: no peering), from rnd (CANCEL_KEY_RANDOM random
 * bytes).  real_pid is the server's process ID.  secret (NULL: none)
 * authenticates 3.2 keys.  The forwarded flag is clear.  0, or -1 for a
 * length that is neither or a peer_id out of range.
 */
int cancel_key_make(uint32_t real_pid, int peer_id, const uint8_t *rnd, const uint8_t *secret,
                    size_t secret_len, uint32_t *pid, uint8_t *key, size_t len);

/*
 * Reads where a key received in a CancelRequest belongs.  peering says
 * whether this instance takes part in a fleet (a 3.0 key's process ID is
 * then read as synthetic when it has the synthetic bits).  0, or -1 for a
 * 3.2 key of an unknown format.
 */
int cancel_key_read(uint32_t pid, const uint8_t *key, size_t len, bool peering,
                    struct cancel_key_info *out);

/* Sets or clears the forwarded flag in place (whichever the key's length says). */
void cancel_key_set_forwarded(uint8_t *key, size_t len, bool on);

/*
 * What authenticates a CancelRequest forwarded to a peer and the PROXY
 * header ahead of it (the MAC in its PP2_TYPE_PGNEAR_PEER TLV): the first
 * PP_PEER_MAC_LEN bytes of HMAC-SHA256 with the fleet's secret over the
 * forwarder's peer_id, the header's addresses (family, address and port of
 * src then dst, when both are IPv4 or both IPv6; nothing for a LOCAL
 * header) and the request's process ID and key as sent.  false when the
 * hash could not be made.
 */
bool cancel_forward_mac(const uint8_t *secret, size_t secret_len, int peer_id,
                        const struct sockaddr *src, const struct sockaddr *dst, uint32_t pid,
                        const uint8_t *key, size_t key_len, uint8_t *mac);

/* Whether a 3.2 key's HMAC matches secret (constant time). */
bool cancel_key_mac_ok(const uint8_t *key, size_t len, const uint8_t *secret, size_t secret_len);

#endif
