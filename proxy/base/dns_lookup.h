/*
 * dns_lookup.h — host names asked of DNS through libevent's evdns: the
 * resolver a loop uses without blocking (the runtime's DNS follower), set
 * up one way, and the blocking lookup a configuration's load uses where
 * dns_server names the server to ask (on the loader's thread or at start,
 * never on a worker's loop).
 *
 * evdns rather than c-ares: libevent is linked already and its loops are
 * pgnear's loops, so a query is one more event on worker 0's loop; its
 * answers carry the record's TTL, which dns_max_ttl caps.
 */
#ifndef PGNEAR_BASE_DNS_LOOKUP_H
#define PGNEAR_BASE_DNS_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "routing/region.h"

struct event_base;
struct evdns_base;

/*
 * Whether server is one dns_server takes: an IPv4 address with a port
 * ("127.0.0.1:5353"), or an IPv6 one in brackets ("[::1]:5353"); false
 * with why set.
 */
bool dns_server_valid(const char *server, char *why, size_t cap);

/*
 * An evdns resolver on base: asking server (dns_server), or with server
 * "" the name servers and search list of /etc/resolv.conf and the names of
 * /etc/hosts (for evdns_getaddrinfo); a query times out after 2 s and is
 * tried twice.  NULL with err set.
 */
struct evdns_base *dns_base_new(struct event_base *base, const char *server, char *err,
                                size_t errcap);

/*
 * host_lookup_fn (routing/region.h) through the server at arg (a
 * dns_server string): an address literal as it is, a name by an A query,
 * then AAAA, on a loop of its own.  Blocks: never on a worker's loop.
 */
bool dns_lookup_blocking(void *arg, const char *host, int port, struct host_addr *out, char *err,
                         size_t errcap);

#endif
