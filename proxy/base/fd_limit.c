/*
 * fd_limit.c — the open-files limit against max_client_conn (fd_limit.h).
 */
#include "proxy/base/fd_limit.h"

#include <limits.h>
#include <stdio.h>
#include <sys/resource.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"

/* Descriptors a worker holds whatever its sessions: epoll, its mailbox's pipe, listeners. */
#define FD_PER_WORKER 8
/* The rest: log, health checks, auth_query, metrics, reload's files. */
#define FD_SPARE 64

/* Hosts of every region: each may have a pool, and a health check each. */
static long long fd_limit_hosts(const struct config *cfg)
{
    long long hosts = 0;
    for (size_t i = 0; i < cfg->regions.count; i++)
        hosts += (long long)cfg->regions.items[i].nhosts;
    return hosts;
}

/* Descriptors pgnear holds whatever its clients. */
static long long fd_limit_own(const struct config *cfg)
{
    return (long long)FD_PER_WORKER * cfg->workers + fd_limit_hosts(cfg) + FD_SPARE;
}

int fd_limit_per_client(const struct config *cfg)
{
    return cfg->pool_mode == POOL_TRANSACTION ? 1 : 2;
}

long long fd_limit_servers(const struct config *cfg)
{
    if (fd_limit_per_client(cfg) == 2)
        return 0; /* counted with each client */
    long long pools = (long long)cfg->pool_size * fd_limit_hosts(cfg);
    return cfg->pool_size > 0 && pools < cfg->max_client_conn ? pools : cfg->max_client_conn;
}

long long fd_limit_needed(const struct config *cfg)
{
    return (long long)fd_limit_per_client(cfg) * cfg->max_client_conn + fd_limit_servers(cfg) +
           fd_limit_own(cfg);
}

/* An rlimit as a number the messages can print; unlimited reads as LLONG_MAX. */
static long long rlim_value(rlim_t v)
{
    return v == RLIM_INFINITY || v > (rlim_t)LLONG_MAX ? LLONG_MAX : (long long)v;
}

bool fd_limit_get(long long *soft, long long *hard)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    *soft = rlim_value(rl.rlim_cur);
    *hard = rlim_value(rl.rlim_max);
    return true;
}

long long fd_limit_raise(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY)
        want = (rlim_t)fd_limit_needed(cfg);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit raised = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = want;
    }
    return rlim_value(rl.rlim_cur);
}

long long fd_limit_sessions(const struct config *cfg, long long soft)
{
    long long own = fd_limit_own(cfg) + fd_limit_servers(cfg);
    return soft > own ? (soft - own) / fd_limit_per_client(cfg) : 0;
}

bool fd_limit_short(const struct config *cfg, long long soft, char *buf, size_t cap)
{
    long long sessions = fd_limit_sessions(cfg, soft);
    if (sessions >= cfg->max_client_conn)
        return false;
    snprintf(buf, cap,
             "the open-files limit (%lld) leaves room for about %lld client sessions, fewer than "
             "max_client_conn (%d): past that, logins get 53300 or wait to be accepted; raise "
             "the hard limit (ulimit -Hn, systemd's LimitNOFILE) to %lld or lower max_client_conn",
             soft, sessions, cfg->max_client_conn, fd_limit_needed(cfg));
    return true;
}

void fd_limit_check(const struct config *cfg)
{
    char why[512];
    long long soft = fd_limit_raise(cfg);
    if (soft < 0)
        log_warn(0, "could not read the open-files limit");
    else if (fd_limit_short(cfg, soft, why, sizeof(why)))
        log_warn(0, "%s", why);
}
