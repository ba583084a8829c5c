/*
 * test_health.c
 *    Unit tests for routing/health.c (cmocka, TAP output): the checker
 *    runs on a real event loop against loopback sockets that play the
 *    failures — a listener that never answers (a check times out), a
 *    bound port that does not listen (refused), a listener that closes
 *    every connection at once (reset) — so that timeouts take a host down
 *    only at health_check_fall in a row while hard errors do at once.
 *    Also the counting that sessions share with the checker: their
 *    timeouts, and a login that proves a host up.  Each loop runs for a
 *    bounded time (at most a few seconds).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "routing/health.h"
#include "routing/region.h"
#include "routing/registry.h"

#define INTERVAL_MS 150
#define TIMEOUT_MS  60
#define LOOP_MAX_MS 4000 /* a loop that has not seen what it waits for by then fails the test */

struct seen {
    enum health_event ev;
    bool up_after; /* host_is_up() when the event was reported */
    char why[200];
};

/* One test's world: a region of one host, its checker, and what the checker said. */
struct world {
    struct event_base *base;
    struct registry *registry;
    struct region_set set;
    struct region_host *host;
    struct health_checker *hc;
    struct seen events[32];
    int nevents;
    int stop_after;       /* break the loop once this many events were seen */
    int login_at_timeout; /* on this many-th HEALTH_TIMEOUT, a session "logs in" (0: never) */
    int timeouts;
    int fd; /* the socket playing the server */
    struct event *accept_ev;
};

static bool test_conninfo(void *arg, const struct region_host *h, char *buf, size_t cap)
{
    (void)arg;
    int n = snprintf(buf, cap,
                     "host=127.0.0.1 port=%d dbname=postgres user=pgnear_unit sslmode=disable "
                     "gssencmode=disable connect_timeout=10",
                     h->port);
    return n > 0 && (size_t)n < cap;
}

static void test_log(void *arg, const struct region *r, const struct region_host *h,
                     enum health_event ev, const char *why)
{
    struct world *w = arg;
    (void)r;
    if (w->nevents < (int)(sizeof(w->events) / sizeof(w->events[0]))) {
        struct seen *s = &w->events[w->nevents++];
        s->ev = ev;
        s->up_after = host_is_up(h);
        snprintf(s->why, sizeof(s->why), "%s", why);
    }
    if (ev == HEALTH_TIMEOUT && ++w->timeouts == w->login_at_timeout)
        health_note_login(w->host, health_downs(w->host));
    if (w->nevents >= w->stop_after)
        event_base_loopbreak(w->base);
}

/* A loopback TCP socket on a free port: listening (backlog only, never accepted) or just bound. */
static int server_socket(bool listening, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listening)
        assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void world_init(struct world *w, int port)
{
    char hosts[64], err[256];
    memset(w, 0, sizeof(*w));
    w->stop_after = 1;
    w->base = event_base_new();
    assert_non_null(w->base);
    struct region *r = region_set_add(&w->set, "r");
    assert_non_null(r);
    snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", port);
    assert_null(region_parse_hosts(r, hosts, err, sizeof(err)));
    r->hosts[0].region = r;
    w->registry = registry_new();
    assert_non_null(w->registry);
    assert_true(registry_bind(w->registry, &w->set));
    w->host = &r->hosts[0];
}

/* Runs the checker until stop_after events, or LOOP_MAX_MS. */
static void world_run(struct world *w, int fall)
{
    struct health_params params = {
        INTERVAL_MS, TIMEOUT_MS, fall, 0, 0, 0, {.by = ROUTE_BY_DISTANCE}};
    w->hc = health_start(w->base, &w->set, &params, test_conninfo, test_log, w);
    assert_non_null(w->hc);
    struct timeval limit = {LOOP_MAX_MS / 1000, (LOOP_MAX_MS % 1000) * 1000};
    event_base_loopexit(w->base, &limit);
    event_base_dispatch(w->base);
    health_stop(w->hc);
}

static void world_free(struct world *w)
{
    if (w->accept_ev)
        event_free(w->accept_ev);
    if (w->fd >= 0)
        close(w->fd);
    region_set_free(&w->set);
    registry_free(w->registry);
    event_base_free(w->base);
}

static void assert_event(const struct world *w, int i, enum health_event ev, const char *text)
{
    assert_true(i < w->nevents);
    if (w->events[i].ev != ev || strstr(w->events[i].why, text) == NULL)
        fail_msg("event %d: %d \"%s\", expected %d with \"%s\"", i, (int)w->events[i].ev,
                 w->events[i].why, (int)ev, text);
}

/* ---- the checker against a server that never answers ---- */

static void test_timeouts_take_down_at_fall(void **state)
{
    (void)state;
    struct world w;
    int port;
    int fd = server_socket(true, &port);
    world_init(&w, port);
    w.fd = fd;
    w.stop_after = 3;
    world_run(&w, 3);
    assert_int_equal(w.nevents, 3);
    assert_event(&w, 0, HEALTH_TIMEOUT, "timed out (1 of 3)");
    assert_true(w.events[0].up_after);
    assert_event(&w, 1, HEALTH_TIMEOUT, "timed out (2 of 3)");
    assert_true(w.events[1].up_after);
    assert_event(&w, 2, HEALTH_DOWN, "health check timed out (3 in a row");
    assert_false(w.events[2].up_after);
    assert_false(host_is_up(w.host));
    assert_int_equal(health_downs(w.host), 1);
    world_free(&w);
}

static void test_fall_one_is_at_once(void **state)
{
    (void)state;
    struct world w;
    int port;
    int fd = server_socket(true, &port);
    world_init(&w, port);
    w.fd = fd;
    world_run(&w, 1);
    assert_int_equal(w.nevents, 1);
    assert_event(&w, 0, HEALTH_DOWN, "timed out (1 in a row, health_check_fall = 1)");
    assert_false(host_is_up(w.host));
    world_free(&w);
}

/* A session that logged in between two timeouts starts the count again. */
static void test_login_resets_timeouts(void **state)
{
    (void)state;
    struct world w;
    int port;
    int fd = server_socket(true, &port);
    world_init(&w, port);
    w.fd = fd;
    w.stop_after = 5;
    w.login_at_timeout = 2;
    world_run(&w, 3);
    assert_int_equal(w.nevents, 5);
    assert_event(&w, 0, HEALTH_TIMEOUT, "(1 of 3)");
    assert_event(&w, 1, HEALTH_TIMEOUT, "(2 of 3)");
    assert_event(&w, 2, HEALTH_TIMEOUT, "(1 of 3)"); /* not down at the third in a row */
    assert_true(w.events[2].up_after);
    assert_event(&w, 3, HEALTH_TIMEOUT, "(2 of 3)");
    assert_event(&w, 4, HEALTH_DOWN, "3 in a row");
    world_free(&w);
}

/* ---- hard errors: down at the first check ---- */

static void test_refused_is_at_once(void **state)
{
    (void)state;
    struct world w;
    int port;
    int fd = server_socket(false, &port); /* bound, so nobody else takes the port; not listening */
    world_init(&w, port);
    w.fd = fd;
    world_run(&w, 3);
    assert_int_equal(w.nevents, 1);
    assert_event(&w, 0, HEALTH_DOWN, "refused");
    assert_false(host_is_up(w.host));
    world_free(&w);
}

static void accept_and_reset(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    int c = accept(fd, NULL, NULL);
    if (c >= 0) {
        struct linger l = {1, 0}; /* RST, as a server that crashed mid-connection */
        setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        close(c);
    }
}

static void test_reset_is_at_once(void **state)
{
    (void)state;
    struct world w;
    int port;
    int fd = server_socket(true, &port);
    world_init(&w, port);
    w.fd = fd;
    w.accept_ev = event_new(w.base, fd, EV_READ | EV_PERSIST, accept_and_reset, NULL);
    assert_non_null(w.accept_ev);
    assert_int_equal(event_add(w.accept_ev, NULL), 0);
    world_run(&w, 3);
    assert_int_equal(w.nevents, 1);
    assert_int_equal(w.events[0].ev, HEALTH_DOWN);
    assert_null(strstr(w.events[0].why, "timed out"));
    assert_false(host_is_up(w.host));
    world_free(&w);
}

/* ---- what sessions report ---- */

static void test_session_timeouts_count(void **state)
{
    (void)state;
    struct world w;
    bool down = true;
    world_init(&w, 5432);
    w.fd = -1;
    assert_int_equal(health_count_timeout(w.host, 3, &down), 1);
    assert_false(down);
    assert_int_equal(health_count_timeout(w.host, 3, &down), 2);
    assert_false(down);
    assert_true(host_is_up(w.host));
    /* A login through the host forgets both. */
    assert_false(health_note_login(w.host, health_downs(w.host)));
    assert_int_equal(health_count_timeout(w.host, 3, &down), 1);
    assert_int_equal(health_count_timeout(w.host, 3, &down), 2);
    assert_int_equal(health_count_timeout(w.host, 3, &down), 3);
    assert_true(down);
    assert_false(host_is_up(w.host));
    assert_int_equal(health_count_timeout(w.host, 3, &down), 4);
    assert_false(down); /* already down: taken down once */
    assert_int_equal(health_downs(w.host), 1);
    world_free(&w);
}

static void test_login_brings_up(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 5432);
    w.fd = -1;
    unsigned before = health_downs(w.host);
    assert_true(health_mark_down(w.host));
    assert_false(health_mark_down(w.host));
    unsigned seen = health_downs(w.host);
    assert_int_equal(seen, before + 1);
    /* A login that started connecting before the host went down proves nothing newer. */
    assert_false(health_note_login(w.host, before));
    assert_false(host_is_up(w.host));
    /* One that connected to the host while it was down does. */
    assert_true(health_note_login(w.host, seen));
    assert_true(host_is_up(w.host));
    assert_false(health_note_login(w.host, seen)); /* already up: nothing to say */
    world_free(&w);
}

/* ---- how many logins to a host overlap: its round trips' share of a login ---- */

static void test_login_overlap(void **state)
{
    (void)state;
    /* This machine: 10 ms a login, 30 µs a round trip: one at a time. */
    assert_int_equal(health_login_overlap(10000, 30, 4), 1);
    /* A local network: 6 ms, 0.3 ms round trips (1.2 of the 6 on the network). */
    assert_int_equal(health_login_overlap(6000, 300, 4), 1);
    /* Half of it on the network: two. */
    assert_int_equal(health_login_overlap(8000, 1000, 4), 2);
    /* 80 ms away: 4 round trips and 10 ms of the server's, 33 at once. */
    assert_int_equal(health_login_overlap(330000, 80000, 4), 33);
    /* All of it, or more, on the network (a round trip measured long): the most. */
    assert_int_equal(health_login_overlap(320000, 80000, 4), HEALTH_LOGINS_AT_ONCE_MAX);
    assert_int_equal(health_login_overlap(100000, 80000, 6), HEALTH_LOGINS_AT_ONCE_MAX);
    assert_int_equal(health_login_overlap(64 * 1000 + 999, 16000, 4), HEALTH_LOGINS_AT_ONCE_MAX);
    /* Nothing measured: one at a time. */
    assert_int_equal(health_login_overlap(0, 80000, 4), 1);
    assert_int_equal(health_login_overlap(-5, 80000, 4), 1);
    assert_int_equal(health_login_overlap(330000, 0, 4), 1);
    assert_int_equal(health_login_overlap(330000, -1, 4), 1);
    assert_int_equal(health_login_overlap(330000, 80000, 0), 1);
}

/* The host keeps the last login's figure, over the longer of TCP's round trip and the checks'. */
static void test_logins_at_once(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 5432);
    w.fd = -1;
    assert_int_equal(health_logins_at_once(w.host), 1); /* none timed */
    health_note_login_time(w.host, 330000, 80000, 4);
    assert_int_equal(health_logins_at_once(w.host), 33);
    health_note_login_time(w.host, 10000, 30, 4);
    assert_int_equal(health_logins_at_once(w.host), 1);
    /* No TCP figure (or a first leg to a relay): the checks' network time, less the slack of
     * the processes at its ends, stands in ... */
    struct rtt_estimate *e = &w.host->runtime->health.rtt;
    rtt_floor_sample(e, 40.0 + HEALTH_CHECK_SLACK_US / 1000.0);
    health_note_login_time(w.host, 170000, -1, 4);
    assert_int_equal(health_logins_at_once(w.host), 17);
    health_note_login_time(w.host, 170000, 30, 4);
    assert_int_equal(health_logins_at_once(w.host), 17);
    /* ... the least of them lately: slow answers of a loaded server do not raise it. */
    for (int i = 0; i < 5; i++)
        rtt_floor_sample(e, 90.0 + HEALTH_CHECK_SLACK_US / 1000.0);
    health_note_login_time(w.host, 170000, 30, 4);
    assert_int_equal(health_logins_at_once(w.host), 17);
    rtt_floor_sample(e, 30.0 + HEALTH_CHECK_SLACK_US / 1000.0);
    health_note_login_time(w.host, 170000, 30, 4);
    assert_int_equal(health_logins_at_once(w.host), 170000 / (170000 - 4 * 30000));
    /* A longer TCP round trip than the checks' wins. */
    health_note_login_time(w.host, 330000, 80000, 4);
    assert_int_equal(health_logins_at_once(w.host), 33);
    /* A near host's checks, slowed by a busy pgnear to within the slack: TCP's figure, one. */
    *e = (struct rtt_estimate){0};
    rtt_floor_sample(e, 0.9);
    health_note_login_time(w.host, 4000, 40, 4);
    assert_int_equal(health_logins_at_once(w.host), 1);
    world_free(&w);
}

/* ---- region_primary: what the dbmove jobs and the record of moves read from ---- */

static void set_host(struct region_host *h, bool up, bool standby)
{
    h->runtime->health.up = up;
    h->runtime->health.in_recovery = standby;
}

static void test_region_primary(void **state)
{
    (void)state;
    struct region_set set = {0};
    char err[256];
    struct region *r = region_set_add(&set, "r");
    assert_non_null(r);
    assert_null(region_parse_hosts(r, "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", err, sizeof(err)));
    struct registry *reg = registry_new();
    assert_non_null(reg);
    assert_true(registry_bind(reg, &set));
    const struct region_host *standby = &r->hosts[0];
    set_host(&r->hosts[0], false, false);
    set_host(&r->hosts[1], true, true);
    set_host(&r->hosts[2], true, false);
    assert_ptr_equal(region_primary(r, &standby), &r->hosts[2]);
    assert_ptr_equal(standby, &r->hosts[1]);
    set_host(&r->hosts[2], true, true); /* every host up a standby */
    assert_null(region_primary(r, &standby));
    assert_ptr_equal(standby, &r->hosts[1]);
    set_host(&r->hosts[1], false, true);
    set_host(&r->hosts[2], false, true); /* none up */
    assert_null(region_primary(r, &standby));
    assert_null(standby);
    assert_null(region_primary(NULL, NULL));
    region_set_free(&set);
    registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_primary),
        cmocka_unit_test(test_timeouts_take_down_at_fall),
        cmocka_unit_test(test_fall_one_is_at_once),
        cmocka_unit_test(test_login_resets_timeouts),
        cmocka_unit_test(test_refused_is_at_once),
        cmocka_unit_test(test_reset_is_at_once),
        cmocka_unit_test(test_session_timeouts_count),
        cmocka_unit_test(test_login_brings_up),
        cmocka_unit_test(test_login_overlap),
        cmocka_unit_test(test_logins_at_once),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
