/*
 * pgconn.c — pgnear's own libpq connections: their hosts and conninfo
 * strings (pgconn.h).
 */
#include "proxy/base/pgconn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "routing/region.h"

/* The group (0 first, then 1) of pick that h falls in now; -1: pick leaves it out. */
static int pgconn_group(const struct region_host *h, enum pgconn_pick pick)
{
    bool up = host_is_up(h);
    switch (pick) {
    case PGCONN_PRIMARIES:
        return up && !host_is_standby(h) ? 0 : -1;
    case PGCONN_PRIMARIES_FIRST:
        return !up ? -1 : host_is_standby(h) ? 1 : 0;
    case PGCONN_UP:
        return up ? 0 : -1;
    case PGCONN_UP_FIRST:
        return up ? 0 : 1;
    }
    return -1;
}

size_t pgconn_hosts(const struct region *const *regions, size_t nregions, enum pgconn_pick pick,
                    const struct region_host **out, size_t cap)
{
    size_t n = 0;
    for (int group = 0; group <= 1; group++)
        for (size_t i = 0; i < nregions; i++)
            for (size_t j = 0; j < regions[i]->nhosts && n < cap; j++)
                if (pgconn_group(&regions[i]->hosts[j], pick) == group)
                    out[n++] = &regions[i]->hosts[j];
    return n;
}

bool pgconn_conninfo(const struct config *cfg, const struct region_host *h, const char *dbname,
                     const char *purpose, char *buf, size_t cap)
{
    static const char *const sslmodes[] = {"disable", "prefer", "require", "verify-ca",
                                           "verify-full"};
    char port[16];
    snprintf(port, sizeof(port), "%d", h->port);
    buf[0] = '\0';
    if (!pgasync_conninfo_add(buf, cap, "dbname", dbname) ||
        !pgasync_conninfo_add(buf, cap, "sslmode", sslmodes[cfg->server_tls]) ||
        !pgasync_conninfo_add(buf, cap, "application_name", purpose))
        return false;
    if (cfg->server_tls_ca_file[0] != '\0' &&
        !pgasync_conninfo_add(buf, cap, "sslrootcert", cfg->server_tls_ca_file))
        return false;
    size_t n = strlen(buf);
    if ((size_t)snprintf(buf + n, cap - n, " %s", cfg->server_conninfo) >= cap - n)
        return false;
    /*
     * host and port come last: they are the region's, whatever
     * server_conninfo says.  hostaddr is the address resolved when the
     * configuration was loaded: with it libpq does no name lookup, which
     * would block the event loop; host still names the server for TLS.
     */
    char addr[INET6_ADDRSTRLEN] = "";
    if (h->addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&h->addr)->sin_addr, addr, sizeof(addr));
    else if (h->addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&h->addr)->sin6_addr, addr,
                  sizeof(addr));
    return pgasync_conninfo_add(buf, cap, "host", h->name) &&
           (addr[0] == '\0' || pgasync_conninfo_add(buf, cap, "hostaddr", addr)) &&
           pgasync_conninfo_add(buf, cap, "port", port);
}
