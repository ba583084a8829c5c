/*
 * cidr.c — address/prefix lists (cidr.h): parsed from the configuration
 * (trusted_proxies, the peers' addresses), and whether an address is in one.
 */
#include "routing/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cidr_addr_parse(const char *text, uint8_t addr[16])
{
    if (inet_pton(AF_INET, text, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, text, addr) == 1)
        return AF_INET6;
    return 0;
}

/* "addr" or "addr/bits", IPv4 or IPv6; without bits the address alone (/32, /128). */
static bool cidr_parse_one(struct cidr *c, const char *text)
{
    char buf[64];
    if (strlen(text) >= sizeof(buf))
        return false;
    strcpy(buf, text);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    c->family = cidr_addr_parse(buf, c->addr);
    if (c->family == 0)
        return false;
    c->prefix = c->family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || p < 0 || p > c->prefix)
            return false;
        c->prefix = (int)p;
    }
    return true;
}

bool cidr_list_parse(struct cidr_list *l, const char *text, char *err, size_t errcap)
{
    char *copy = strdup(text), *save = NULL;
    if (copy == NULL) {
        snprintf(err, errcap, "out of memory");
        return false;
    }
    l->count = 0;
    bool ok = true;
    for (char *tok = strtok_r(copy, ", \t", &save); tok && ok;
         tok = strtok_r(NULL, ", \t", &save)) {
        if (l->count >= CIDR_MAX) {
            snprintf(err, errcap, "more than %d addresses", CIDR_MAX);
            ok = false;
        } else if (!cidr_parse_one(&l->items[l->count], tok)) {
            snprintf(err, errcap, "invalid address or prefix \"%s\"", tok);
            ok = false;
        } else {
            l->count++;
        }
    }
    free(copy);
    return ok;
}

/* Do a and b agree in their first bits bits? */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

int cidr_addr_of(const struct sockaddr *sa, uint8_t addr[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(addr, a6->s6_addr + 12, 4);
        return AF_INET;
    }
    memcpy(addr, a6->s6_addr, 16);
    return AF_INET6;
}

bool cidr_list_add_host(struct cidr_list *l, const struct sockaddr *sa)
{
    struct cidr c = {0};
    if (l->count == CIDR_MAX || (c.family = cidr_addr_of(sa, c.addr)) == 0)
        return false;
    c.prefix = c.family == AF_INET ? 32 : 128;
    l->items[l->count++] = c;
    return true;
}

bool cidr_contains(const struct cidr *c, const struct sockaddr *sa)
{
    uint8_t addr[16];
    return cidr_addr_of(sa, addr) == c->family && prefix_equal(addr, c->addr, c->prefix);
}

bool cidr_list_contains(const struct cidr_list *l, const struct sockaddr *sa)
{
    for (size_t i = 0; i < l->count; i++)
        if (cidr_contains(&l->items[i], sa))
            return true;
    return false;
}
