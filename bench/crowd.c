/*
 * crowd.c — a crowd of idle clients against one PostgreSQL port (pgnear,
 * PgBouncer, or a server), and what it costs there:
 *
 *   crowd --port PORT [--host 127.0.0.1] [--user app] [--database D]
 *         [--password P | $PGPASSWORD] [--clients 1000] [--hold 5]
 *         [--pid PID] [--window 100] [--procs K] [--per-source 10000]
 *         [--source 127.0.0.2] [--login-timeout 60] [--probe-ms 100]
 *         [--label NAME] [--query 'SELECT 1']
 *
 * N clients, each from a loopback source address of its own range
 * (127.0.0.2 for the first --per-source, 127.0.0.3 for the next, ...:
 * bound before connect(), so that the crowd is not held to one address's
 * ports), log in and run `SELECT 1`, --window logins in flight at a time,
 * then sit idle for --hold seconds.  SCRAM-SHA-256 through pgnear's own
 * client side (protocol/scram_client.c): a first connection reads the
 * server's salt and iteration count and the keys are derived from the
 * password once (scram_derive_keys), so that every login of the crowd
 * costs the client a few HMACs and what is measured is the server's work.
 *
 * Measured: the login rate (clients logged in and answered over the time
 * from the first connect() to the last answer); with --pid, the growth of
 * that process's Rss and Pss (/proc/PID/smaps_rollup) over the crowd,
 * read before it and after --hold, a client, and its CPU (utime + stime,
 * /proc/PID/stat) a login while the crowd builds and while it holds; the
 * kernel's socket memory apart (the TCP and sock_inode_cache slabs from
 * /proc/slabinfo, both ends of every connection, and the pages
 * /proc/net/sockstat counts in socket buffers), kernel-wide; and a probe
 * client's login and `SELECT 1` every --probe-ms, started on schedule
 * whether the last has answered or not, p50/p99/max while the crowd
 * builds and while it holds.  --query: what each client (the probe
 * too) runs instead of `SELECT 1`, one row back (`SELECT pg_sleep(1)`
 * fills a pool: crowd.pl).
 *
 * One libevent loop a process, a bufferevent a client.  The crowd is
 * split over child processes (crowd_members.c) when it passes one
 * process's open-file limit (RLIMIT_NOFILE's soft limit, raised to the
 * hard one) or --procs asks for more; this process coordinates and
 * probes.  What stopped the crowd, when something did (a process's
 * file limit, the source ports, the server's refusal), is "limit".
 *
 * Output: one JSON object on stdout; progress and a summary for people
 * on stderr.  Exit status 0 when every client logged in, 1 when some did
 * not (the report is printed), 2 when there is no report.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench/crowd.h"
#include "bench/crowd_report.h"

/* File descriptors a crowd process keeps for itself (stdio, its loop, its report pipe). */
#define FD_RESERVE   32
#define MAX_PROCS    64
#define MAX_PROBES   64
#define MAX_KID_LINE 1024

struct opts {
    const char *host, *user, *database, *password, *label, *query;
    int port;
    size_t clients, window, per_source;
    int procs;
    double hold_s, timeout_s, probe_ms;
    long pid;
    struct in_addr source;
};

struct kid {
    pid_t pid;
    int fd;
    struct event *ev;
    char buf[MAX_KID_LINE];
    size_t len;
    size_t count, ok, failed, gone;
    int done;
};

struct probe {
    struct crowd_conn c;
    struct run *run;
    int phase;
};

struct run {
    struct opts o;
    struct event_base *base;
    struct crowd_login login;
    struct kid kids[MAX_PROCS];
    size_t nkids, kids_done;
    struct crowd_result res;
    int phase; /* PHASE_BUILD, PHASE_HOLD, PHASE_OVER */
    size_t probes_inflight;
    size_t ticks;
    double t_over;
};

static void usage(void)
{
    fprintf(stderr, "usage: crowd --port PORT [--host 127.0.0.1] [--user app] [--database D]\n"
                    "             [--password P] [--clients 1000] [--hold 5] [--pid PID]\n"
                    "             [--window 100] [--procs K] [--per-source 10000]\n"
                    "             [--source 127.0.0.2] [--login-timeout 60] [--probe-ms 100]\n"
                    "             [--label NAME] [--query 'SELECT 1']\n");
    exit(2);
}

static double number(const char *s, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "crowd: bad number '%s' (%g to %g)\n", s, lo, hi);
        usage();
    }
    return v;
}

static void parse_one(struct opts *o, int ch, const char *arg)
{
    switch (ch) {
    case 'h':
        o->host = arg;
        break;
    case 'p':
        o->port = (int)number(arg, 1, 65535);
        break;
    case 'U':
        o->user = arg;
        break;
    case 'd':
        o->database = arg;
        break;
    case 'W':
        o->password = arg;
        break;
    case 'c':
        o->clients = (size_t)number(arg, 1, 10000000);
        break;
    case 'H':
        o->hold_s = number(arg, 0, 86400);
        break;
    case 'P':
        o->pid = (long)number(arg, 1, 1e9);
        break;
    case 'w':
        o->window = (size_t)number(arg, 1, 1000000);
        break;
    case 'k':
        o->procs = (int)number(arg, 1, MAX_PROCS);
        break;
    case 's':
        o->per_source = (size_t)number(arg, 1, 1000000);
        break;
    case 'S':
        if (inet_pton(AF_INET, arg, &o->source) != 1)
            usage();
        break;
    case 't':
        o->timeout_s = number(arg, 0.1, 3600);
        break;
    case 'r':
        o->probe_ms = number(arg, 1, 60000);
        break;
    case 'l':
        o->label = arg;
        break;
    case 'q':
        o->query = arg;
        break;
    default:
        usage();
    }
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        {"host", 1, NULL, 'h'},          {"port", 1, NULL, 'p'},       {"user", 1, NULL, 'U'},
        {"database", 1, NULL, 'd'},      {"password", 1, NULL, 'W'},   {"clients", 1, NULL, 'c'},
        {"hold", 1, NULL, 'H'},          {"pid", 1, NULL, 'P'},        {"window", 1, NULL, 'w'},
        {"procs", 1, NULL, 'k'},         {"per-source", 1, NULL, 's'}, {"source", 1, NULL, 'S'},
        {"login-timeout", 1, NULL, 't'}, {"probe-ms", 1, NULL, 'r'},   {"label", 1, NULL, 'l'},
        {"query", 1, NULL, 'q'},         {NULL, 0, NULL, 0},
    };
    int ch;

    *o = (struct opts){.host = "127.0.0.1",
                       .user = "app",
                       .password = getenv("PGPASSWORD"),
                       .label = "",
                       .query = "SELECT 1",
                       .clients = 1000,
                       .window = 100,
                       .per_source = 10000,
                       .hold_s = 5,
                       .timeout_s = 60,
                       .probe_ms = 100};
    inet_pton(AF_INET, "127.0.0.2", &o->source);
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1)
        parse_one(o, ch, optarg);
    if (optind != argc || o->port == 0)
        usage();
    if (o->database == NULL)
        o->database = o->user;
    if (o->password == NULL)
        o->password = "";
}

/* ---- the probe: a login and `SELECT 1` every --probe-ms ---- */

static void probe_done(struct crowd_conn *c, const char *code, const char *text)
{
    struct probe *p = c->owner;
    struct run *r = p->run;
    struct crowd_probes *ph = &r->res.probes[p->phase];

    (void)text;
    if (code == NULL) {
        double ms = (crowd_now() - c->started) * 1000.0;
        crowd_probes_add(ph, ms);
        crowd_probes_slowest(ph, (c->answered - c->started) * 1000.0,
                             (c->logged_in - c->started) * 1000.0, ms);
    } else
        ph->failed++;
    r->probes_inflight--;
    free(p);
    if (r->phase == PHASE_OVER && r->probes_inflight == 0)
        event_base_loopbreak(r->base);
}

static void probe_start(struct run *r)
{
    struct crowd_probes *ph = &r->res.probes[r->phase];
    struct probe *p;

    ph->sent++;
    if (r->probes_inflight >= MAX_PROBES || (p = calloc(1, sizeof(*p))) == NULL) {
        ph->failed++;
        return;
    }
    *p = (struct probe){.run = r, .phase = r->phase};
    p->c = (struct crowd_conn){
        .login = &r->login, .kind = CROWD_PROBE, .done = probe_done, .owner = p};
    if (crowd_conn_start(&p->c, r->base, NULL) != 0) {
        ph->failed++;
        free(p);
        return;
    }
    r->probes_inflight++;
}

/* ---- the crowd's processes ---- */

static void kids_counts(const struct run *r, size_t *ok, size_t *failed, size_t *gone)
{
    *ok = *failed = *gone = 0;
    for (size_t i = 0; i < r->nkids; i++) {
        *ok += r->kids[i].ok;
        *failed += r->kids[i].failed;
        *gone += r->kids[i].gone;
    }
}

static void built(struct run *r)
{
    size_t ok, failed, gone;

    r->res.t_built = crowd_now();
    crowd_mem_read(&r->res.built, r->o.pid);
    r->phase = PHASE_HOLD;
    kids_counts(r, &ok, &failed, &gone);
    fprintf(stderr, "crowd: %zu logged in, %zu failed in %.2f s; holding %g s\n", ok, failed,
            r->res.t_built - r->res.t_start, r->o.hold_s);
}

static void kid_line(struct run *r, struct kid *k, char *line)
{
    char code[CROWD_CODE_LEN];
    size_t n;
    int used = 0;

    if (line[0] == 'p' || line[0] == 'd') {
        if (sscanf(line + 1, "%zu %zu %zu", &k->ok, &k->failed, &k->gone) == 3 && line[0] == 'd' &&
            !k->done) {
            k->done = 1;
            if (++r->kids_done == r->nkids)
                built(r);
        }
    } else if (line[0] == 'e' && sscanf(line + 1, " %23s %zu %n", code, &n, &used) == 2) {
        crowd_codes_add(&r->res, code, n, line + 1 + used);
    }
}

/* A process ended before it said it was done: its clients not reported are failures. */
static void kid_lost(struct run *r, struct kid *k)
{
    event_del(k->ev);
    if (k->done)
        return;
    crowd_codes_add(&r->res, "CHILD", k->count - k->ok - k->failed,
                    "a crowd process ended before its clients were done");
    k->failed = k->count - k->ok;
    k->done = 1;
    if (++r->kids_done == r->nkids)
        built(r);
}

static void on_kid(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    struct kid *k = NULL;
    ssize_t n;
    char *nl;

    (void)what;
    for (size_t i = 0; i < r->nkids; i++) {
        if (r->kids[i].fd == fd)
            k = &r->kids[i];
    }
    if (k == NULL)
        return;
    n = read(fd, k->buf + k->len, sizeof(k->buf) - 1 - k->len);
    if (n <= 0) {
        if (n == 0 || (errno != EINTR && errno != EAGAIN))
            kid_lost(r, k);
        return;
    }
    k->len += (size_t)n;
    k->buf[k->len] = '\0';
    while ((nl = strchr(k->buf, '\n')) != NULL) {
        *nl = '\0';
        kid_line(r, k, k->buf);
        k->len -= (size_t)(nl + 1 - k->buf);
        memmove(k->buf, nl + 1, k->len + 1);
    }
    if (k->len == sizeof(k->buf) - 1)
        k->len = 0; /* a line too long for any we write: dropped */
}

/* Splits the crowd over processes of at most per_proc clients each. */
static int spawn_kids(struct run *r, size_t per_proc)
{
    size_t procs = (r->o.clients + per_proc - 1) / per_proc;

    if (procs < (size_t)r->o.procs)
        procs = (size_t)r->o.procs;
    if (procs > MAX_PROCS) {
        fprintf(stderr, "crowd: %zu clients need %zu processes of %zu (at most %d)\n", r->o.clients,
                procs, per_proc, MAX_PROCS);
        return -1;
    }
    r->res.t_start = crowd_now();
    for (size_t i = 0; i < procs; i++) {
        struct crowd_share sh = {.first = r->o.clients * i / procs,
                                 .window = (r->o.window + procs - 1) / procs,
                                 .per_source = r->o.per_source,
                                 .source_base = r->o.source};
        struct kid *k = &r->kids[i];
        int fds[2];

        sh.count = r->o.clients * (i + 1) / procs - sh.first;
        if (pipe2(fds, O_CLOEXEC) != 0 || (k->pid = fork()) < 0) {
            perror("crowd: pipe or fork");
            return -1;
        }
        if (k->pid == 0) {
            close(fds[0]);
            sh.report_fd = fds[1];
            crowd_members_run(&r->login, &sh);
        }
        close(fds[1]);
        k->fd = fds[0];
        k->count = sh.count;
        r->nkids++;
    }
    return 0;
}

static int watch_kids(struct run *r)
{
    for (size_t i = 0; i < r->nkids; i++) {
        r->kids[i].ev = event_new(r->base, r->kids[i].fd, EV_READ | EV_PERSIST, on_kid, r);
        if (r->kids[i].ev == NULL || event_add(r->kids[i].ev, NULL) != 0)
            return -1;
    }
    return 0;
}

static void stop_kids(struct run *r)
{
    for (size_t i = 0; i < r->nkids; i++)
        kill(r->kids[i].pid, SIGTERM);
    for (size_t i = 0; i < r->nkids; i++) {
        waitpid(r->kids[i].pid, NULL, 0);
        if (r->kids[i].ev != NULL)
            event_free(r->kids[i].ev);
        close(r->kids[i].fd);
    }
}

/* ---- the coordinator's clock ---- */

static void progress(struct run *r)
{
    size_t ok, failed, gone;
    struct crowd_probes *ph = &r->res.probes[r->phase];

    kids_counts(r, &ok, &failed, &gone);
    fprintf(stderr, "crowd: %5.1f s %s: %zu logged in, %zu failed, %zu gone; probe %zu of %zu\n",
            crowd_now() - r->res.t_start, r->phase == PHASE_BUILD ? "building" : "holding", ok,
            failed, gone, ph->n, ph->sent);
}

static void over(struct run *r)
{
    size_t ok, failed, gone;

    crowd_mem_read(&r->res.after, r->o.pid);
    kids_counts(r, &ok, &failed, &gone);
    r->res.ok = ok;
    r->res.failed = failed;
    r->res.gone = gone;
    r->phase = PHASE_OVER;
    r->t_over = crowd_now();
    if (r->probes_inflight == 0)
        event_base_loopbreak(r->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    double now = crowd_now();
    size_t ticks_a_second = r->o.probe_ms >= 1000 ? 1 : (size_t)(1000.0 / r->o.probe_ms + 0.5);

    (void)fd;
    (void)what;
    if (r->phase == PHASE_OVER) {
        if (now - r->t_over > r->o.timeout_s) /* probes that never answer */
            event_base_loopbreak(r->base);
        return;
    }
    if (r->phase == PHASE_HOLD && now - r->res.t_built >= r->o.hold_s) {
        over(r);
        return;
    }
    probe_start(r);
    if (++r->ticks % ticks_a_second == 0)
        progress(r);
}

/* ---- setup ---- */

static int resolve(struct run *r)
{
    struct sockaddr_in *a = &r->login.server;

    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)r->o.port)};
    if (inet_pton(AF_INET, r->o.host, &a->sin_addr) != 1) {
        fprintf(stderr, "crowd: --host must be an IPv4 address: %s\n", r->o.host);
        return -1;
    }
    r->login.user = r->o.user;
    r->login.database = r->o.database;
    r->login.password = r->o.password;
    r->login.query = r->o.query;
    r->login.timeout_s = r->o.timeout_s;
    return 0;
}

/* The open-file limit raised to the hard one; the clients one process may hold. */
static size_t files_per_proc(struct run *r)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    r->res.nofile = (long)rl.rlim_cur;
    return rl.rlim_cur > FD_RESERVE * 2 ? (size_t)rl.rlim_cur - FD_RESERVE : FD_RESERVE;
}

/* The key exchange, one warm-up login (so that what a first session allocates for good is
 * not counted), and the memory before. */
static int prepare(struct run *r)
{
    char text[CROWD_TEXT_LEN];

    if (crowd_key_run(r->base, &r->login, text, sizeof(text)) != 0) {
        fprintf(stderr, "crowd: the key exchange with %s:%d failed: %s\n", r->o.host, r->o.port,
                text);
        return -1;
    }
    r->phase = PHASE_BUILD;
    probe_start(r);
    while (r->probes_inflight > 0 && event_base_loop(r->base, EVLOOP_ONCE) == 0)
        ;
    if (r->res.probes[PHASE_BUILD].n != 1) {
        fprintf(stderr, "crowd: the first login to %s:%d failed\n", r->o.host, r->o.port);
        return -1;
    }
    free(r->res.probes[PHASE_BUILD].ms); /* the warm-up is not a probe of the crowd */
    r->res.probes[PHASE_BUILD] = (struct crowd_probes){0};
    r->res.derive_ms = r->login.derive_ms;
    r->res.auth = r->login.auth;
    usleep(500 * 1000);
    crowd_mem_read(&r->res.before, r->o.pid);
    return 0;
}

static int run_crowd(struct run *r)
{
    struct timeval tick = {(time_t)(r->o.probe_ms / 1000),
                           (suseconds_t)((long)r->o.probe_ms % 1000 * 1000)};
    struct event *ev;
    size_t per_proc = files_per_proc(r);

    if (spawn_kids(r, per_proc) != 0 || watch_kids(r) != 0)
        return -1;
    r->res.procs = r->nkids;
    r->res.per_proc = per_proc;
    fprintf(stderr,
            "crowd: %zu clients to %s:%d, %zu process(es) (open files %ld), %zu logins at a "
            "time, from %zu source address(es)\n",
            r->o.clients, r->o.host, r->o.port, r->nkids, r->res.nofile, r->o.window,
            r->res.sources);
    ev = event_new(r->base, -1, EV_PERSIST, on_tick, r);
    if (ev == NULL || event_add(ev, &tick) != 0)
        return -1;
    event_base_dispatch(r->base);
    event_free(ev);
    stop_kids(r);
    return 0;
}

int main(int argc, char **argv)
{
    struct run *r = calloc(1, sizeof(*r)); /* large: the processes' line buffers */
    int rc = 2;

    signal(SIGPIPE, SIG_IGN);
    if (r == NULL)
        return 2;
    parse_opts(&r->o, argc, argv);
    r->base = event_base_new();
    if (r->base != NULL && resolve(r) == 0) {
        r->res.clients = r->o.clients;
        r->res.hold_s = r->o.hold_s;
        r->res.window = r->o.window;
        r->res.per_source = r->o.per_source;
        r->res.sources = (r->o.clients + r->o.per_source - 1) / r->o.per_source;
        r->res.pid = r->o.pid;
        r->res.label = r->o.label;
        snprintf(r->res.target, sizeof(r->res.target), "%s:%d", r->o.host, r->o.port);
        if (prepare(r) == 0 && run_crowd(r) == 0) {
            crowd_result_print(&r->res);
            rc = r->res.ok == r->res.clients ? 0 : 1;
        }
    }
    crowd_result_free(&r->res);
    if (r->base != NULL)
        event_base_free(r->base);
    free(r);
    return rc;
}
