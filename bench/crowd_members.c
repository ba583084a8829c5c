/*
 * crowd_members.c — one process of bench/crowd holding its share of the
 * crowd (crowd.h): it logs its clients in, at most `window` at a time,
 * each from its source address (127.0.0.2 for the first per_source
 * clients of the crowd, 127.0.0.3 for the next, ...), keeps them idle,
 * and tells the coordinator on report_fd, one line each:
 *
 *   p OK FAILED GONE      progress: logged in, failed, ended while idle
 *   e CODE COUNT TEXT     a kind of failure: how many, the first one's text
 *   d OK FAILED GONE      every client has been tried (after its e lines)
 *
 * A local failure that every later client would meet too (no file
 * descriptor, no local port, no memory) stops the process's logins: the
 * clients not tried are counted as failed under that code.  It runs
 * until SIGTERM and leaves by _exit(): the kernel closes its sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench/crowd.h"

#define MAX_CODES 16

struct code_tally {
    char code[CROWD_CODE_LEN];
    size_t count;
    char text[CROWD_TEXT_LEN];
};

struct members {
    struct event_base *base;
    struct crowd_login *login;
    const struct crowd_share *share;
    struct crowd_conn *conns;
    size_t next;     /* the next client to start */
    size_t inflight; /* started, not yet done */
    size_t ok, failed, gone;
    size_t reported_ok, reported_failed, reported_gone;
    int stopped; /* a local limit: no more starts */
    int finished;
    struct code_tally codes[MAX_CODES];
    size_t ncodes;
};

static void report(const struct members *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report(const struct members *m, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    /* a line is under PIPE_BUF: written whole or not at all */
    if (write(m->share->report_fd, line, (size_t)n) != n)
        _exit(3);
}

static void tally(struct members *m, const char *code, const char *text, size_t count)
{
    size_t i;

    for (i = 0; i < m->ncodes; i++) {
        if (strcmp(m->codes[i].code, code) == 0)
            break;
    }
    if (i == m->ncodes) {
        if (m->ncodes == MAX_CODES)
            i = MAX_CODES - 1; /* the rest under the last kind */
        else {
            m->ncodes++;
            snprintf(m->codes[i].code, sizeof(m->codes[i].code), "%s", code);
            /* no newline in a line of the report */
            snprintf(m->codes[i].text, sizeof(m->codes[i].text), "%s", text != NULL ? text : "");
            m->codes[i].text[strcspn(m->codes[i].text, "\r\n")] = '\0';
        }
    }
    m->codes[i].count += count;
    m->failed += count;
}

static void report_done(struct members *m)
{
    m->finished = 1;
    for (size_t i = 0; i < m->ncodes; i++)
        report(m, "e %s %zu %s\n", m->codes[i].code, m->codes[i].count, m->codes[i].text);
    report(m, "d %zu %zu %zu\n", m->ok, m->failed, m->gone);
    m->reported_ok = m->ok;
    m->reported_failed = m->failed;
    m->reported_gone = m->gone;
}

static void start_more(struct members *m);

static void member_done(struct crowd_conn *c, const char *code, const char *text)
{
    struct members *m = c->owner;

    m->inflight--;
    if (code == NULL)
        m->ok++;
    else
        tally(m, code, text, 1);
    start_more(m);
}

static void member_gone(struct crowd_conn *c, const char *code, const char *text)
{
    struct members *m = c->owner;

    (void)code;
    (void)text;
    m->gone++;
}

/* Failures that every later client of this process would meet too. */
static int local_limit(int err)
{
    return err == EMFILE || err == ENFILE || err == EADDRNOTAVAIL || err == ENOBUFS ||
           err == ENOMEM;
}

static void start_one(struct members *m)
{
    const struct crowd_share *sh = m->share;
    size_t i = m->next++;
    size_t global = sh->first + i;
    struct crowd_conn *c = &m->conns[i];
    struct sockaddr_in src = {.sin_family = AF_INET};
    char name[16];
    int err;

    src.sin_addr.s_addr =
        htonl(ntohl(sh->source_base.s_addr) + (uint32_t)(global / sh->per_source));
    *c = (struct crowd_conn){.login = m->login,
                             .kind = CROWD_MEMBER,
                             .done = member_done,
                             .gone = member_gone,
                             .owner = m};
    err = crowd_conn_start(c, m->base, &src);
    if (err == 0) {
        m->inflight++;
        return;
    }
    /* a local limit: this client and every one not yet tried */
    tally(m, crowd_errno_name(err, name, sizeof(name)), strerror(err),
          1 + (local_limit(err) ? sh->count - m->next : 0));
    if (local_limit(err)) {
        m->stopped = 1;
        m->next = sh->count;
    }
}

static void start_more(struct members *m)
{
    while (!m->stopped && m->next < m->share->count && m->inflight < m->share->window)
        start_one(m);
    if (!m->finished && m->inflight == 0 && m->next >= m->share->count)
        report_done(m);
}

/* Every 100 ms: the counts, when they moved. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct members *m = arg;

    (void)fd;
    (void)what;
    if (m->ok == m->reported_ok && m->failed == m->reported_failed && m->gone == m->reported_gone)
        return;
    report(m, "p %zu %zu %zu\n", m->ok, m->failed, m->gone);
    m->reported_ok = m->ok;
    m->reported_failed = m->failed;
    m->reported_gone = m->gone;
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    _exit(0);
}

void crowd_members_run(struct crowd_login *login, const struct crowd_share *share)
{
    struct members *m = calloc(1, sizeof(*m)); /* lives as long as the process */
    struct timeval tick = {0, 100 * 1000};
    struct event *ev_tick, *ev_term;

    signal(SIGPIPE, SIG_IGN);
    if (m == NULL)
        _exit(2);
    m->base = event_base_new();
    m->login = login;
    m->share = share;
    m->conns = calloc(share->count > 0 ? share->count : 1, sizeof(*m->conns));
    if (m->base == NULL || m->conns == NULL)
        _exit(2);
    ev_tick = event_new(m->base, -1, EV_PERSIST, on_tick, m);
    ev_term = evsignal_new(m->base, SIGTERM, on_term, NULL);
    if (ev_tick == NULL || ev_term == NULL || event_add(ev_tick, &tick) != 0 ||
        event_add(ev_term, NULL) != 0)
        _exit(2);
    start_more(m);
    event_base_dispatch(m->base);
    _exit(0);
}
