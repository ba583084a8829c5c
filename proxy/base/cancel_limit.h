/*
 * cancel_limit.h — how many cancel requests that cancel nothing a client
 * network may send: a token bucket per /24 (IPv4) or /64 (IPv6), each
 * worker keeping its own for the requests it receives (no lock).  Only
 * misses cost a token (an unknown or stale key, a forged one): an
 * application's own cancels are never held back, however many it sends
 * in a brownout; guessing at keys is.
 */
#ifndef PGNEAR_PROXY_CANCEL_LIMIT_H
#define PGNEAR_PROXY_CANCEL_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define CANCEL_LIMIT_SLOTS 1024 /* networks tracked at once, per worker */

struct cancel_limit_slot {
    uint8_t net[8]; /* the first 3 (IPv4) or 8 (IPv6) bytes of the address */
    uint8_t family; /* 0: free */
    double tokens;
    int64_t at_ms; /* when tokens was last brought up to date */
};

struct cancel_limit {
    struct cancel_limit_slot slots[CANCEL_LIMIT_SLOTS];
};

/*
 * Whether sa's network has no miss left (rate per second, a burst of twice
 * that), at now_ms.  rate 0: never.  Addresses that are not IP: never.
 */
bool cancel_limit_blocked(struct cancel_limit *l, const struct sockaddr *sa, int rate,
                          int64_t now_ms);

/* sa's network missed once. */
void cancel_limit_miss(struct cancel_limit *l, const struct sockaddr *sa, int rate, int64_t now_ms);

#endif
