/*
 * cidr.h — address lists such as trusted_proxies = 127.0.0.1/32, 10.0.0.0/8, ::1.
 */
#ifndef PGNEAR_ROUTING_CIDR_H
#define PGNEAR_ROUTING_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_MAX 64

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

struct cidr_list {
    size_t count;
    struct cidr items[CIDR_MAX];
};

/* text as one address, IPv4 or IPv6, without a prefix, into addr: its family; 0 when it is none. */
int cidr_addr_parse(const char *text, uint8_t addr[16]);

/* Parses a comma list; a bare address means a single host.  false with err on a bad entry. */
bool cidr_list_parse(struct cidr_list *l, const char *text, char *err, size_t errcap);

/* sa's address bytes (4 or 16) and family, an IPv4-mapped IPv6 one as IPv4; 0 when not IP. */
int cidr_addr_of(const struct sockaddr *sa, uint8_t addr[16]);

/* Adds sa's address as a single host (IPv4-mapped IPv6 as IPv4); false when full or not IP. */
bool cidr_list_add_host(struct cidr_list *l, const struct sockaddr *sa);

/*
 * Whether sa is inside c: an IPv4-mapped IPv6 address as IPv4 (it never
 * matches an IPv6 entry), a Unix socket never.  The one address match of
 * pgnear: the lists below and auth_hba_file's lines (proxy/base/hba.c).
 */
bool cidr_contains(const struct cidr *c, const struct sockaddr *sa);

/* Whether sa is inside one of l's entries (cidr_contains). */
bool cidr_list_contains(const struct cidr_list *l, const struct sockaddr *sa);

#endif
