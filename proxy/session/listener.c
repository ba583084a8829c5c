/*
 * listener.c — listening sockets, accepted into sessions.
 */
#include "proxy/session/listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

#define LISTENER_MAX   16
#define LISTEN_BACKLOG 1024

/* After a listener's TCP options changed, how long the sockets it accepts get them one by one. */
#define LISTENER_RETUNE_MS 2000

/* How long accepting rests after running out of descriptors or memory. */
#define ACCEPT_REST_MS 100
/* While accepts keep failing, one log line per this many seconds, with a count. */
#define ACCEPT_LOG_INTERVAL_S 10

/* The TCP options a listening socket was given, which the sockets it accepts inherit. */
struct listener_tune {
    bool set;
    bool keepalive;
    int idle_ms, intvl_ms, cnt;
};

struct listener_set {
    struct worker *w;
    size_t count;
    struct evconnlistener *items[LISTENER_MAX];
    enum session_transport kinds[LISTENER_MAX];
    struct listener_tune tuned[LISTENER_MAX];
    int64_t tune_each_until_ms; /* monotonic_ms: an accepted socket is tuned itself until then */
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t unix_dev; /* the socket file as bound: another pgnear may bind the path anew */
    ino_t unix_ino;
    struct event *rest_timer; /* re-enables accepting after a resource error */
    bool resting;
    bool failing; /* accepts failed since the last one that worked */
};

/*
 * An accept worked.  Under churn accepts fail and work by turns, so the
 * recovery is only a debug line; the next failure report (at most one per
 * interval) carries the count.
 */
static void listener_accepted(struct listener_set *ls)
{
    if (!ls->failing)
        return;
    log_debug(0, "accepting connections again");
    ls->failing = false;
}

/* The TCP options cfg asks a client's socket for. */
static struct listener_tune listener_tune_wanted(const struct config *cfg)
{
    return (struct listener_tune){true, cfg->tcp_keepalive, cfg->tcp_keepidle_ms,
                                  cfg->tcp_keepintvl_ms, cfg->tcp_keepcnt};
}

static bool listener_tune_same(const struct listener_tune *a, const struct listener_tune *b)
{
    return a->set == b->set && a->keepalive == b->keepalive && a->idle_ms == b->idle_ms &&
           a->intvl_ms == b->intvl_ms && a->cnt == b->cnt;
}

/* fd gets cfg's TCP options, keepalive off said too (it may have been on). */
static void listener_tune_socket(const struct config *cfg, int fd)
{
    int off = 0;
    if (!cfg->tcp_keepalive)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof(off));
    session_tune_tcp(cfg, fd);
}

/*
 * fd, accepted on listener i, has the TCP options the configuration asks
 * for (TCP_NODELAY, keepalive).  Linux copies a listening socket's options
 * to the sockets it accepts, so the listener has them from its start, and
 * again once a reload changed them; a login then makes no system call for
 * them (five before).  For a while after such a change, what was queued
 * before it is given them one by one.
 */
static void listener_tune(struct listener_set *ls, size_t i, int fd)
{
    if (ls->kinds[i] == TRANSPORT_UNIX || ls->kinds[i] == TRANSPORT_CANCEL)
        return;
    const struct config *cfg = ls->w->cfg;
    struct listener_tune want = listener_tune_wanted(cfg);
    bool changed = !listener_tune_same(&ls->tuned[i], &want);
    if (changed) {
        listener_tune_socket(cfg, evconnlistener_get_fd(ls->items[i]));
        ls->tuned[i] = want;
        ls->tune_each_until_ms = monotonic_ms() + LISTENER_RETUNE_MS;
    }
    if (!changed && ls->tune_each_until_ms != 0 && monotonic_ms() >= ls->tune_each_until_ms)
        ls->tune_each_until_ms = 0; /* the queue before the change is taken: inherited from now */
    if (changed || ls->tune_each_until_ms != 0)
        listener_tune_socket(cfg, fd);
}

/* A connection accepted on one of the set's listeners, as the listener's kind says. */
static void listener_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                            int addrlen, void *arg)
{
    struct listener_set *ls = arg;
    size_t i = 0;
    while (i + 1 < ls->count && ls->items[i] != l)
        i++;
    listener_accepted(ls);
    listener_tune(ls, i, fd);
    session_accept(ls->w, fd, addr, addrlen, ls->kinds[i]);
}

static void listener_enable_all(struct listener_set *ls, bool on)
{
    for (size_t i = 0; i < ls->count; i++) {
        if (on)
            evconnlistener_enable(ls->items[i]);
        else
            evconnlistener_disable(ls->items[i]);
    }
}

/* The rest is over: try accepting again. */
static void listener_rest_done(evutil_socket_t fd, short what, void *arg)
{
    struct listener_set *ls = arg;
    (void)fd;
    (void)what;
    ls->resting = false;
    listener_enable_all(ls, true);
}

/*
 * Every worker has listeners of its own, and they run out of descriptors
 * together: the workers share one report per interval (sh->accept_log), so
 * the log says it once, whatever the number of workers.
 */
static void listener_report_failure(struct shared *sh, int err)
{
    uint64_t left_out;
    if (!log_limit_allow(&sh->accept_log, 1, ACCEPT_LOG_INTERVAL_S * 1000, &left_out))
        return;
    log_error(0,
              "accept failed: %s; retrying every %d ms (%llu failed accepts since the last report)",
              strerror(err), ACCEPT_REST_MS, (unsigned long long)left_out + 1);
}

/*
 * An accept failed (libevent retries EINTR, EAGAIN and ECONNABORTED
 * itself, so what arrives here is EMFILE, ENFILE, ENOBUFS, ENOMEM and
 * the like).  The pending connection stays in the backlog and the
 * listener is readable again at once: retrying spins the CPU and floods
 * the log.  Rest instead — stop accepting for a moment, as PgBouncer does
 * — and log once per interval with a count; clients already connected
 * are served meanwhile, and waiting ones are taken when descriptors free
 * up.
 */
static void listener_error_cb(struct evconnlistener *l, void *arg)
{
    struct listener_set *ls = arg;
    int err = errno;
    (void)l;
    if (ls->resting)
        return;
    struct timeval tv = {ACCEPT_REST_MS / 1000, (ACCEPT_REST_MS % 1000) * 1000};
    if (ls->rest_timer == NULL || event_add(ls->rest_timer, &tv) != 0) {
        log_error(0, "accept failed: %s", strerror(err));
        return;
    }
    ls->resting = true;
    ls->failing = true;
    listener_enable_all(ls, false);
    listener_report_failure(ls->w->shared, err);
}

static int listener_add(struct listener_set *ls, struct worker *w, int fd, enum session_transport t)
{
    if (ls->count >= LISTENER_MAX)
        return -1;
    struct evconnlistener *l =
        evconnlistener_new(w->base, listener_accept, ls,
                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, LISTEN_BACKLOG, fd);
    if (l == NULL)
        return -1;
    evconnlistener_set_error_cb(l, listener_error_cb);
    ls->kinds[ls->count] = t;
    ls->items[ls->count++] = l;
    return 0;
}

/*
 * Every TCP listener has SO_REUSEPORT: each worker's own socket on the
 * address (the kernel spreads connections over them), and a second pgnear
 * started beside this one (an upgrade) takes connections at once.
 */
static int listener_bind_tcp(struct listener_set *ls, struct worker *w, const char *host, int port,
                             enum session_transport t, char *err, size_t errcap)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "could not resolve listen_addr \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    int opened = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        listener_tune_socket(w->cfg, fd); /* before listen: all it accepts inherit them */
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
            listener_add(ls, w, fd, t) != 0) {
            snprintf(err, errcap, "could not listen on %s port %d: %s", host, port,
                     strerror(errno));
            close(fd);
            freeaddrinfo(res);
            return -1;
        }
        ls->tuned[ls->count - 1] = listener_tune_wanted(w->cfg);
        opened++;
    }
    freeaddrinfo(res);
    if (opened == 0) {
        snprintf(err, errcap, "no usable address for listen_addr \"%s\"", host);
        return -1;
    }
    if (w->index == 0)
        log_info(0, "listening on %s port %d%s", host, port,
                 t == TRANSPORT_WEBSOCKET ? " (WebSocket)" : "");
    return 0;
}

/*
 * Binds the Unix socket path (the name of a stale socket is taken over)
 * with the given mode, accepting as t; 0, or -1 with err.  The socket is
 * bound under a name of this process's own and renamed into place once
 * its mode is set: under its real name it never has the umask's mode,
 * not even for a moment (a 0600 socket must admit nobody else).
 */
static int listener_bind_path(struct listener_set *ls, struct worker *w,
                              const struct sockaddr_un *sun, mode_t mode, enum session_transport t,
                              char *err, size_t errcap)
{
    struct sockaddr_un tmp = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%ld", sun->sun_path,
                         (long)getpid()) >= sizeof(tmp.sun_path)) {
        snprintf(err, errcap, "Unix socket path \"%s\" is too long", sun->sun_path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errcap, "could not create Unix socket: %s", strerror(errno));
        return -1;
    }
    unlink(tmp.sun_path); /* left by a process of this pid that died here */
    if (bind(fd, (const struct sockaddr *)&tmp, sizeof(tmp)) != 0 ||
        chmod(tmp.sun_path, mode) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
        rename(tmp.sun_path, sun->sun_path) != 0 || listener_add(ls, w, fd, t) != 0) {
        snprintf(err, errcap, "could not listen on Unix socket \"%s\": %s", sun->sun_path,
                 strerror(errno));
        unlink(tmp.sun_path);
        close(fd);
        return -1;
    }
    struct stat st;
    if (stat(sun->sun_path, &st) == 0) {
        snprintf(ls->unix_path, sizeof(ls->unix_path), "%s", sun->sun_path);
        ls->unix_dev = st.st_dev;
        ls->unix_ino = st.st_ino;
    }
    log_info(0, "listening on Unix socket \"%s\"%s", sun->sun_path,
             t == TRANSPORT_CANCEL ? " (cancel requests for this process's remaining sessions)"
                                   : "");
    return 0;
}

static int listener_bind_unix(struct listener_set *ls, struct worker *w, const char *dir, int port,
                              char *err, size_t errcap)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, port) >=
        sizeof(sun.sun_path)) {
        snprintf(err, errcap, "unix_socket_dir \"%s\" is too long", dir);
        return -1;
    }
    return listener_bind_path(ls, w, &sun, 0777, TRANSPORT_UNIX, err, errcap);
}

struct listener_set *listener_open_cancel(struct worker *w, const struct config *cfg, char *err,
                                          size_t errcap)
{
    struct sockaddr_un sun;
    struct listener_set *ls = calloc(1, sizeof(*ls));
    if (ls == NULL || !config_cancel_socket_path(cfg, &sun)) {
        snprintf(err, errcap, ls == NULL ? "out of memory" : "no unix_socket_dir");
        free(ls);
        return NULL;
    }
    ls->w = w;
    /* Only this user's processes (the pgnear that replaced this one) may connect. */
    if (listener_bind_path(ls, w, &sun, 0600, TRANSPORT_CANCEL, err, errcap) != 0) {
        free(ls);
        return NULL;
    }
    return ls;
}

struct listener_set *listener_open(struct worker *w, const struct config *cfg, bool with_unix,
                                   char *err, size_t errcap)
{
    struct listener_set *ls = calloc(1, sizeof(*ls));
    char *addrs = strdup(cfg->listen_addr), *save = NULL;
    if (ls == NULL || addrs == NULL) {
        snprintf(err, errcap, "out of memory");
        free(ls);
        free(addrs);
        return NULL;
    }
    ls->w = w;
    ls->rest_timer = evtimer_new(w->base, listener_rest_done, ls);
    int rc = ls->rest_timer != NULL ? 0 : -1;
    if (rc != 0)
        snprintf(err, errcap, "out of memory");
    for (char *a = strtok_r(addrs, ", \t", &save); a && rc == 0;
         a = strtok_r(NULL, ", \t", &save)) {
        rc = listener_bind_tcp(ls, w, a, cfg->listen_port, TRANSPORT_TCP, err, errcap);
        if (rc == 0 && cfg->websocket_port != 0)
            rc = listener_bind_tcp(ls, w, a, cfg->websocket_port, TRANSPORT_WEBSOCKET, err, errcap);
    }
    free(addrs);
    if (rc == 0 && with_unix && cfg->unix_socket_dir[0] != '\0')
        rc = listener_bind_unix(ls, w, cfg->unix_socket_dir, cfg->listen_port, err, errcap);
    if (rc != 0) {
        listener_close(ls);
        return NULL;
    }
    return ls;
}

void listener_pause(struct listener_set *ls)
{
    if (ls->rest_timer != NULL)
        event_del(ls->rest_timer);
    ls->resting = false;
    listener_enable_all(ls, false);
}

/*
 * The connections already queued on the listeners are taken (as sessions,
 * however the worker drains) before they close: closing a listening socket
 * resets what waits on it, and during an upgrade those clients meant the
 * new pgnear beside this one as much as this one.  Bounded by the backlog.
 */
void listener_take_backlog(struct listener_set *ls)
{
    for (size_t i = 0; ls != NULL && i < ls->count; i++) {
        int lfd = evconnlistener_get_fd(ls->items[i]);
        for (int n = 0; n < LISTEN_BACKLOG; n++) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            listener_tune(ls, i, fd);
            session_accept_backlog(ls->w, fd, (struct sockaddr *)&ss, (int)len, ls->kinds[i]);
        }
    }
}

void listener_close(struct listener_set *ls)
{
    if (ls == NULL)
        return;
    if (ls->rest_timer != NULL)
        event_free(ls->rest_timer);
    for (size_t i = 0; i < ls->count; i++)
        evconnlistener_free(ls->items[i]);
    /* Only our own socket file: a pgnear started since may have bound the path anew. */
    struct stat st;
    if (ls->unix_path[0] != '\0' && stat(ls->unix_path, &st) == 0 && st.st_dev == ls->unix_dev &&
        st.st_ino == ls->unix_ino)
        unlink(ls->unix_path);
    free(ls);
}
