/*
 * config_peers.c — the fleet: peer_id, peers ("id@host:port, ..."), the
 * fleet's secret and the cancel-forwarding limits, checked as a
 * configuration loads; and what the rest of pgnear asks of them.
 */
#include "proxy/base/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* One "id@host:port" entry into list; false with why set. */
static bool peer_parse_entry(struct peer_list *list, const char *entry, char *why, size_t cap)
{
    char *end;
    errno = 0;
    long id = strtol(entry, &end, 10);
    if (end == entry || *end != '@' || errno != 0 || id < 1 || id > CANCEL_PEER_ID_MAX) {
        snprintf(why, cap, "entry \"%s\" is not id@host:port with an id from 1 to %d", entry,
                 CANCEL_PEER_ID_MAX);
        return false;
    }
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].id == id) {
            snprintf(why, cap, "peer id %ld is listed twice", id);
            return false;
        }
    if (list->count == PEERS_MAX) {
        snprintf(why, cap, "more than %d entries", PEERS_MAX);
        return false;
    }
    struct peer *p = &list->items[list->count];
    p->id = (int)id;
    if (!host_addr_resolve(end + 1, &p->where, why, cap))
        return false;
    list->count++;
    return true;
}

/* The peers' addresses, whose PROXY headers (forwarded cancel requests) are believed. */
static void peer_collect_addrs(struct config *cfg)
{
    for (size_t i = 0; i < cfg->peer_list.count; i++)
        (void)cidr_list_add_host(&cfg->peer_addrs,
                                 (const struct sockaddr *)&cfg->peer_list.items[i].where.addr);
}

/* Parses text into list (items allocated for PEERS_MAX); false with why set. */
static bool peer_parse_list(struct peer_list *list, const char *text, char *why, size_t cap)
{
    list->items = calloc(PEERS_MAX, sizeof(*list->items));
    if (list->items == NULL) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    char entry[400];
    const char *p = text;
    while (*p != '\0') {
        size_t n = strcspn(p, ", \t");
        if (n >= sizeof(entry)) {
            snprintf(why, cap, "an entry is too long");
            return false;
        }
        if (n > 0) {
            memcpy(entry, p, n);
            entry[n] = '\0';
            if (!peer_parse_entry(list, entry, why, cap))
                return false;
        }
        p += n + (p[n] != '\0');
    }
    return true;
}

/* The fleet's secret: the file's bytes, without one trailing newline; false with why set. */
static bool peer_read_secret(struct config *cfg, char *why, size_t cap)
{
    int fd = open(cfg->peer_secret_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, cap, "could not open \"%s\": %s", cfg->peer_secret_file, strerror(errno));
        return false;
    }
    uint8_t buf[CANCEL_SECRET_MAX + 2];
    ssize_t n = read(fd, buf, sizeof(buf));
    int err = errno;
    close(fd);
    if (n < 0) {
        snprintf(why, cap, "could not read \"%s\": %s", cfg->peer_secret_file, strerror(err));
        return false;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n < CANCEL_SECRET_MIN || n > CANCEL_SECRET_MAX) {
        snprintf(why, cap, "\"%s\" must hold %d to %d bytes (it holds %zd)", cfg->peer_secret_file,
                 CANCEL_SECRET_MIN, CANCEL_SECRET_MAX, n);
        return false;
    }
    memcpy(cfg->peer_secret, buf, (size_t)n);
    cfg->peer_secret_len = (size_t)n;
    return true;
}

void config_check_peers(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char why[512];
    if (cfg->peer_id < 0 || cfg->peer_id > CANCEL_PEER_ID_MAX)
        config_problem(lc, "pgnear:peer_id", "peer_id must be between 0 (no peering) and %d",
                       CANCEL_PEER_ID_MAX);
    if (!peer_parse_list(&cfg->peer_list, cfg->peers, why, sizeof(why)))
        config_problem(lc, "pgnear:peers", "peers: %s", why);
    peer_collect_addrs(cfg);
    if (cfg->peer_list.count > 0 && cfg->peer_id == 0)
        config_problem(lc, "pgnear:peers",
                       "peers needs peer_id: this instance's own id, which its cancel keys carry");
    if (cfg->peer_secret_file[0] != '\0' && !peer_read_secret(cfg, why, sizeof(why)))
        config_problem(lc, "pgnear:peer_secret_file", "peer_secret_file: %s", why);
    if (cfg->cancel_forward_timeout_ms < 1 || cfg->cancel_forward_timeout_ms > 60000)
        config_problem(lc, "pgnear:cancel_forward_timeout",
                       "cancel_forward_timeout must be between 1ms and 60s");
    if (cfg->cancel_rate_limit < 0 || cfg->cancel_rate_limit > 1000000)
        config_problem(lc, "pgnear:cancel_rate_limit",
                       "cancel_rate_limit must be between 0 (no limit) and 1000000");
    if (cfg->cancel_max_inflight < 1 || cfg->cancel_max_inflight > 100000)
        config_problem(lc, "pgnear:cancel_max_inflight",
                       "cancel_max_inflight must be between 1 and 100000");
}

const struct peer *config_peer(const struct config *cfg, int id)
{
    for (size_t i = 0; i < cfg->peer_list.count; i++)
        if (cfg->peer_list.items[i].id == id)
            return &cfg->peer_list.items[i];
    return NULL;
}

bool config_is_peer_addr(const struct config *cfg, const struct sockaddr *sa)
{
    return cidr_list_contains(&cfg->peer_addrs, sa);
}

/*
 * The path of the socket through which a draining pgnear takes cancel requests
 * from its successor (config.h).
 */
bool config_cancel_socket_path(const struct config *cfg, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    return cfg->unix_socket_dir[0] != '\0' &&
           (size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGNEAR.%d.draining",
                            cfg->unix_socket_dir, cfg->listen_port) < sizeof(sun->sun_path);
}
