/*
 * dns_lookup.c — evdns set up for pgnear, and the blocking lookup of a
 * load (dns_lookup.h).
 */
#include "proxy/base/dns_lookup.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

bool dns_server_valid(const char *server, char *why, size_t cap)
{
    char buf[64];
    const char *colon = strrchr(server, ':');
    size_t len = colon != NULL ? (size_t)(colon - server) : 0;
    char *end;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    struct in6_addr a6;
    struct in_addr a4;
    bool ok = colon != NULL && len > 0 && len < sizeof(buf) && colon[1] != '\0' && *end == '\0' &&
              port > 0 && port <= 65535;
    if (ok) {
        memcpy(buf, server, len);
        buf[len] = '\0';
        if (buf[0] == '[' && buf[len - 1] == ']') {
            buf[len - 1] = '\0';
            ok = inet_pton(AF_INET6, buf + 1, &a6) == 1;
        } else {
            ok = inet_pton(AF_INET, buf, &a4) == 1;
        }
    }
    if (!ok)
        snprintf(why, cap,
                 "dns_server \"%s\" is not an address and port (127.0.0.1:5353, [::1]:5353)",
                 server);
    return ok;
}

struct evdns_base *dns_base_new(struct event_base *base, const char *server, char *err,
                                size_t errcap)
{
    bool own = server[0] != '\0';
    struct evdns_base *dns = evdns_base_new(
        base, EVDNS_BASE_DISABLE_WHEN_INACTIVE | (own ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS));
    if (dns == NULL) {
        snprintf(err, errcap, "could not start a DNS resolver%s",
                 own ? "" : " from /etc/resolv.conf");
        return NULL;
    }
    if (own && evdns_base_nameserver_ip_add(dns, server) != 0) {
        snprintf(err, errcap, "could not use DNS server %s", server);
        evdns_base_free(dns, 0);
        return NULL;
    }
    evdns_base_set_option(dns, "timeout:", "2");
    evdns_base_set_option(dns, "attempts:", "2");
    return dns;
}

/* One blocking query's answer: the first address, or the DNS error. */
struct dns_blocking {
    struct event_base *base;
    int result;
    int family;
    unsigned char addr[16];
};

static void dns_blocking_answer(int result, char type, int count, int ttl, void *addresses,
                                void *arg)
{
    struct dns_blocking *b = arg;
    (void)ttl;
    b->result = result;
    if (result == DNS_ERR_NONE && count > 0 && type == DNS_IPv4_A) {
        b->family = AF_INET;
        memcpy(b->addr, addresses, 4);
    } else if (result == DNS_ERR_NONE && count > 0 && type == DNS_IPv6_AAAA) {
        b->family = AF_INET6;
        memcpy(b->addr, addresses, 16);
    } else if (result == DNS_ERR_NONE) {
        b->result = DNS_ERR_NOTEXIST;
    }
    event_base_loopbreak(b->base);
}

/* An address literal or b's answer, at port, into out. */
static bool dns_blocking_fill(const char *host, int port, const struct dns_blocking *b,
                              struct host_addr *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->host, sizeof(out->host), "%s", host);
    out->port = port;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1 ||
        (b != NULL && b->family == AF_INET && memcpy(&v4->sin_addr, b->addr, 4) != NULL)) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->addrlen = sizeof(*v4);
        return true;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1 ||
        (b != NULL && b->family == AF_INET6 && memcpy(&v6->sin6_addr, b->addr, 16) != NULL)) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->addrlen = sizeof(*v6);
        return true;
    }
    return false;
}

bool dns_lookup_blocking(void *arg, const char *host, int port, struct host_addr *out, char *err,
                         size_t errcap)
{
    const char *server = arg;
    if (strlen(host) >= sizeof(out->host)) {
        snprintf(err, errcap, "host name \"%.40s...\" is too long", host);
        return false;
    }
    if (dns_blocking_fill(host, port, NULL, out))
        return true;
    struct dns_blocking b = {.base = event_base_new(), .result = DNS_ERR_NOTEXIST};
    struct evdns_base *dns = b.base != NULL ? dns_base_new(b.base, server, err, errcap) : NULL;
    for (int v6 = 0; dns != NULL && v6 < 2 && b.family == 0; v6++) {
        b.result = DNS_ERR_UNKNOWN;
        struct evdns_request *q =
            v6 ? evdns_base_resolve_ipv6(dns, host, 0, dns_blocking_answer, &b)
               : evdns_base_resolve_ipv4(dns, host, 0, dns_blocking_answer, &b);
        if (q != NULL)
            event_base_dispatch(b.base);
    }
    bool ok = dns != NULL && dns_blocking_fill(host, port, &b, out);
    if (!ok && dns != NULL)
        snprintf(err, errcap, "could not resolve host \"%s\" through DNS server %s: %s", host,
                 server, evdns_err_to_string(b.result));
    else if (!ok && b.base == NULL)
        snprintf(err, errcap, "out of memory");
    if (dns != NULL)
        evdns_base_free(dns, 1);
    if (b.base != NULL)
        event_base_free(b.base);
    return ok;
}
