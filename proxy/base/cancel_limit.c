/*
 * cancel_limit.c — misses of cancel requests per client network
 * (cancel_limit.h).
 */
#include "proxy/base/cancel_limit.h"

#include <netinet/in.h>
#include <string.h>

#include "routing/cidr.h"

/* sa's network: its family (0 when not IP) and leading bytes; IPv4-mapped IPv6 as IPv4. */
static uint8_t cancel_limit_net(const struct sockaddr *sa, uint8_t net[8])
{
    uint8_t addr[16];
    int family = cidr_addr_of(sa, addr);
    memset(net, 0, 8);
    memcpy(net, addr, family == AF_INET ? 3 : family == AF_INET6 ? 8 : 0);
    return (uint8_t)family;
}

/* FNV-1a over the network and its family, for the bucket of a client network. */
static uint32_t cancel_limit_hash(const uint8_t net[8], uint8_t family)
{
    uint32_t h = 2166136261u ^ family;
    for (int i = 0; i < 8; i++)
        h = (h ^ net[i]) * 16777619u;
    return h;
}

/* Brings a slot's tokens up to now: rate a second, up to twice rate. */
static void cancel_limit_refill(struct cancel_limit_slot *s, int rate, int64_t now_ms)
{
    double burst = 2.0 * rate;
    if (now_ms > s->at_ms)
        s->tokens += (double)(now_ms - s->at_ms) * rate / 1000.0;
    if (s->tokens > burst)
        s->tokens = burst;
    s->at_ms = now_ms;
}

/*
 * The network's slot, of the two it may take; claim: take one for it
 * (the fuller of the two, once refilled) when it has none.  NULL otherwise.
 */
static struct cancel_limit_slot *cancel_limit_slot(struct cancel_limit *l,
                                                   const struct sockaddr *sa, int rate,
                                                   int64_t now_ms, bool claim)
{
    uint8_t net[8], family = cancel_limit_net(sa, net);
    if (family == 0)
        return NULL;
    uint32_t h = cancel_limit_hash(net, family) % CANCEL_LIMIT_SLOTS;
    struct cancel_limit_slot *pair[2] = {&l->slots[h], &l->slots[h ^ 1]};
    for (int i = 0; i < 2; i++)
        if (pair[i]->family == family && memcmp(pair[i]->net, net, 8) == 0) {
            cancel_limit_refill(pair[i], rate, now_ms);
            return pair[i];
        }
    if (!claim)
        return NULL;
    for (int i = 0; i < 2; i++)
        if (pair[i]->family != 0)
            cancel_limit_refill(pair[i], rate, now_ms);
    struct cancel_limit_slot *s = pair[0];
    if (pair[1]->family == 0 || (pair[0]->family != 0 && pair[1]->tokens > pair[0]->tokens))
        s = pair[1];
    memcpy(s->net, net, 8);
    s->family = family;
    s->tokens = 2.0 * rate;
    s->at_ms = now_ms;
    return s;
}

bool cancel_limit_blocked(struct cancel_limit *l, const struct sockaddr *sa, int rate,
                          int64_t now_ms)
{
    if (rate <= 0)
        return false;
    struct cancel_limit_slot *s = cancel_limit_slot(l, sa, rate, now_ms, false);
    return s != NULL && s->tokens < 1.0;
}

void cancel_limit_miss(struct cancel_limit *l, const struct sockaddr *sa, int rate, int64_t now_ms)
{
    if (rate <= 0)
        return;
    struct cancel_limit_slot *s = cancel_limit_slot(l, sa, rate, now_ms, true);
    if (s != NULL && s->tokens >= 1.0)
        s->tokens -= 1.0;
}
