/*
 * listener.c — listening sockets, accepted into sessions.
 */
#include "proxy/listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>

#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define LISTENER_MAX   16
#define LISTEN_BACKLOG 1024

struct listener_set {
    size_t count;
    struct evconnlistener *items[LISTENER_MAX];
    bool is_unix[LISTENER_MAX];
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void listener_accept_tcp(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                                int addrlen, void *arg)
{
    session_accept(arg, fd, addr, addrlen, false);
}

static void listener_accept_unix(struct evconnlistener *l, evutil_socket_t fd,
                                 struct sockaddr *addr, int addrlen, void *arg)
{
    session_accept(arg, fd, addr, addrlen, true);
}

static void listener_error_cb(struct evconnlistener *l, void *arg)
{
    /* EMFILE and friends: log and keep listening; the next accept may work. */
    log_error(0, "accept failed: %s", strerror(errno));
}

static int listener_add(struct listener_set *ls, struct worker *w, int fd, bool is_unix)
{
    if (ls->count >= LISTENER_MAX)
        return -1;
    struct evconnlistener *l =
        evconnlistener_new(w->base, is_unix ? listener_accept_unix : listener_accept_tcp, w,
                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, LISTEN_BACKLOG, fd);
    if (l == NULL)
        return -1;
    evconnlistener_set_error_cb(l, listener_error_cb);
    ls->is_unix[ls->count] = is_unix;
    ls->items[ls->count++] = l;
    return 0;
}

static int listener_bind_tcp(struct listener_set *ls, struct worker *w, const char *host, int port,
                             bool reuseport, char *err, size_t errcap)
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
        if (reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
            listener_add(ls, w, fd, false) != 0) {
            snprintf(err, errcap, "could not listen on %s port %d: %s", host, port,
                     strerror(errno));
            close(fd);
            freeaddrinfo(res);
            return -1;
        }
        opened++;
    }
    freeaddrinfo(res);
    if (opened == 0) {
        snprintf(err, errcap, "no usable address for listen_addr \"%s\"", host);
        return -1;
    }
    if (w->index == 0)
        log_info(0, "listening on %s port %d", host, port);
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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errcap, "could not create Unix socket: %s", strerror(errno));
        return -1;
    }
    unlink(sun.sun_path); /* a stale socket from a previous run */
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || chmod(sun.sun_path, 0777) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0 || listener_add(ls, w, fd, true) != 0) {
        snprintf(err, errcap, "could not listen on Unix socket \"%s\": %s", sun.sun_path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    snprintf(ls->unix_path, sizeof(ls->unix_path), "%s", sun.sun_path);
    log_info(0, "listening on Unix socket \"%s\"", sun.sun_path);
    return 0;
}

struct listener_set *listener_open(struct worker *w, const struct config *cfg, bool reuseport,
                                   bool with_unix, char *err, size_t errcap)
{
    struct listener_set *ls = calloc(1, sizeof(*ls));
    char *addrs = strdup(cfg->listen_addr), *save = NULL;
    if (ls == NULL || addrs == NULL) {
        snprintf(err, errcap, "out of memory");
        free(ls);
        free(addrs);
        return NULL;
    }
    int rc = 0;
    for (char *a = strtok_r(addrs, ", \t", &save); a && rc == 0; a = strtok_r(NULL, ", \t", &save))
        rc = listener_bind_tcp(ls, w, a, cfg->listen_port, reuseport, err, errcap);
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
    for (size_t i = 0; i < ls->count; i++)
        evconnlistener_disable(ls->items[i]);
}

void listener_close(struct listener_set *ls)
{
    if (ls == NULL)
        return;
    for (size_t i = 0; i < ls->count; i++)
        evconnlistener_free(ls->items[i]);
    if (ls->unix_path[0] != '\0')
        unlink(ls->unix_path);
    free(ls);
}
