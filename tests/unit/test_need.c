/*
 * test_need.c
 *    Unit tests for routing/need.c and routing/lag.c (cmocka, TAP output):
 *    target_session_attrs' names; each need's fit for each role, read-only
 *    primary, lagging standby, unknown role and down host, as libpq
 *    defines the needs; route_plan passing over regions that cannot serve
 *    a need and putting fallbacks after good fits; a standby's lag from a
 *    primary's kept positions (a quiet primary makes nobody late); and the
 *    lag limits' hysteresis.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "protocol/lsn.h"
#include "proxy/base/config.h"
#include "proxy/session/session_need.h"
#include "proxy/session/session_types.h"
#include "routing/health.h"
#include "routing/lag.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "routing/route.h"

/* A need of role alone. */
#define N(need_role) (&(struct need_spec){.role = (need_role)})

static void test_names(void **state)
{
    (void)state;
    enum session_need need;
    for (int i = 0; i < NEED_COUNT; i++) {
        assert_true(need_parse(need_name((enum session_need)i), &need));
        assert_int_equal(need, i);
    }
    assert_true(need_parse("Read-Write", &need));
    assert_int_equal(need, NEED_READ_WRITE);
    assert_false(need_parse("read_write", &need));
    assert_false(need_parse("", &need));
    assert_false(need_parse("writable", &need));
    assert_non_null(strstr(need_choices(), "prefer-standby"));
    assert_true(need_parse("Nearest", &need));
    assert_int_equal(need, NEED_NEAREST);
    assert_true(need_takes_any_role(NEED_NEAREST) && need_takes_any_role(NEED_ANY));
    assert_false(need_takes_any_role(NEED_PREFER_STANDBY));
}

/* Three regions of one host each, bound to a registry: a primary, a standby, another standby. */
struct env {
    struct registry *reg;
    struct region_set set;
    struct routing_data rd;
    struct locality loc;
};

static void env_init(struct env *e)
{
    static const char *const names[] = {"primary", "standby", "far-standby"};
    static const char *const hosts[] = {"127.0.0.1:5432", "127.0.0.2:5432", "127.0.0.3:5432"};
    static const double at[][2] = {{39.04, -77.49}, {53.35, -6.26}, {1.35, 103.82}};
    char err[256];
    memset(e, 0, sizeof(*e));
    e->reg = registry_new();
    assert_non_null(e->reg);
    for (int i = 0; i < 3; i++) {
        struct region *r = region_set_add(&e->set, names[i]);
        assert_non_null(r);
        assert_null(region_parse_hosts(r, hosts[i], err, sizeof(err)));
        region_set_location(r, at[i][0], at[i][1]);
    }
    for (size_t i = 0; i < e->set.count; i++)
        e->set.items[i].hosts[0].region = &e->set.items[i];
    assert_true(registry_bind(e->reg, &e->set));
    for (size_t i = 0; i < e->set.count; i++) {
        struct host_health *hh = &e->set.items[i].hosts[0].runtime->health;
        hh->role_known = true;
        hh->in_recovery = i > 0;
    }
    e->rd = (struct routing_data){&e->set, &e->set.items[0],         NULL, NULL, NULL, 0,
                                  true,    {.by = ROUTE_BY_DISTANCE}};
    struct locality_input in = {.location = "51.5, -0.13", .location_via = "test"}; /* London */
    locality_resolve(&e->rd, &in, &e->loc);
}

static void env_free(struct env *e)
{
    region_set_free(&e->set);
    registry_free(e->reg);
}

static struct region_host *host(struct env *e, int i)
{
    return &e->set.items[i].hosts[0];
}

static const char *plan(struct env *e, enum session_need need, char *buf, size_t cap)
{
    struct region *out[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    size_t n = route_plan(&e->rd, &e->loc, N(need), NULL, out, cosines, ROUTE_MAX_REGIONS), len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "", out[i]->name);
    return buf;
}

static void test_fit_by_role(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct region_host *p = host(&e, 0), *s = host(&e, 1);
    assert_int_equal(need_host_fit(p, N(NEED_ANY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(s, N(NEED_ANY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(p, N(NEED_READ_WRITE)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(s, N(NEED_READ_WRITE)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(p, N(NEED_READ_ONLY)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(s, N(NEED_READ_ONLY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(s, N(NEED_STANDBY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(p, N(NEED_PRIMARY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(p, N(NEED_PREFER_STANDBY)), NEED_FIT_FALLBACK);
    assert_int_equal(need_host_fit(s, N(NEED_PREFER_PRIMARY)), NEED_FIT_FALLBACK);
    assert_int_equal(need_host_fit(p, N(NEED_NEAREST)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(s, N(NEED_NEAREST)), NEED_FIT_GOOD);
    /* libpq: a primary whose sessions start read-only is read-only, not a standby */
    p->runtime->health.read_only = true;
    assert_int_equal(need_host_fit(p, N(NEED_READ_WRITE)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(p, N(NEED_READ_ONLY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(p, N(NEED_PRIMARY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(p, N(NEED_STANDBY)), NEED_FIT_NONE);
    p->runtime->health.read_only = false;
    /* a lagging standby: out for reads, the very last for prefer-standby, as good as any for any */
    s->runtime->health.lagging = true;
    assert_int_equal(need_host_fit(s, N(NEED_READ_ONLY)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(s, N(NEED_STANDBY)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(s, N(NEED_PREFER_STANDBY)), NEED_FIT_LAST);
    assert_int_equal(need_host_fit(s, N(NEED_ANY)), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(s, N(NEED_NEAREST)), NEED_FIT_LAST);
    s->runtime->health.lagging = false;
    /* a role not yet known: after the known ones, for the server to judge */
    p->runtime->health.role_known = false;
    assert_int_equal(need_host_fit(p, N(NEED_READ_WRITE)), NEED_FIT_FALLBACK);
    p->runtime->health.role_known = true;
    /* no check knows it, a login said standby: out for writes until a login says primary */
    s->runtime->health.role_known = false;
    s->runtime->health.in_recovery = false;
    assert_int_equal(need_host_fit(s, N(NEED_PRIMARY)), NEED_FIT_FALLBACK);
    health_note_login_role(s, true);
    assert_int_equal(need_host_fit(s, N(NEED_PRIMARY)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(s, N(NEED_READ_WRITE)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(s, N(NEED_PREFER_PRIMARY)), NEED_FIT_FALLBACK);
    assert_int_equal(need_host_fit(s, N(NEED_NEAREST)), NEED_FIT_FALLBACK);
    health_note_login_role(s, false);
    assert_int_equal(need_host_fit(s, N(NEED_PRIMARY)), NEED_FIT_FALLBACK);
    /* where a check knows the role, a login's word is not taken this way */
    s->runtime->health.role_known = true;
    s->runtime->health.in_recovery = true;
    health_note_login_role(s, false);
    assert_int_equal(need_host_fit(s, N(NEED_PRIMARY)), NEED_FIT_NONE);
    /* down: tried last when its last known role fits, not at all when it does not */
    assert_true(health_mark_down(p));
    assert_int_equal(need_host_fit(p, N(NEED_READ_WRITE)), NEED_FIT_LAST);
    assert_int_equal(need_host_fit(p, N(NEED_STANDBY)), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(p, N(NEED_NEAREST)), NEED_FIT_LAST);
    env_free(&e);
}

static void test_plan_by_need(void **state)
{
    (void)state;
    struct env e;
    char buf[256], why[160];
    env_init(&e);
    assert_string_equal(plan(&e, NEED_ANY, buf, sizeof(buf)), "standby primary far-standby");
    assert_string_equal(plan(&e, NEED_READ_WRITE, buf, sizeof(buf)), "primary");
    assert_string_equal(plan(&e, NEED_STANDBY, buf, sizeof(buf)), "standby far-standby");
    assert_string_equal(plan(&e, NEED_PREFER_PRIMARY, buf, sizeof(buf)),
                        "primary standby far-standby");
    /* nearest: by distance whatever the role, as any */
    assert_string_equal(plan(&e, NEED_NEAREST, buf, sizeof(buf)), "standby primary far-standby");
    assert_string_equal(
        need_region_shortfall(&e.set.items[1], N(NEED_READ_WRITE), why, sizeof(why)),
        "no writable primary");
    assert_string_equal(
        need_region_shortfall(&e.set.items[0], N(NEED_READ_WRITE), why, sizeof(why)), "");
    /* the near standby lags: readers go to the far one; prefer-standby tries it after the primary
     */
    host(&e, 1)->runtime->health.lagging = true;
    assert_string_equal(plan(&e, NEED_READ_ONLY, buf, sizeof(buf)), "far-standby");
    assert_string_equal(plan(&e, NEED_PREFER_STANDBY, buf, sizeof(buf)),
                        "far-standby primary standby");
    /* nearest: the primary before a standby that lags, even a nearer one */
    assert_string_equal(plan(&e, NEED_NEAREST, buf, sizeof(buf)), "primary far-standby standby");
    assert_string_equal(need_region_shortfall(&e.set.items[1], N(NEED_READ_ONLY), why, sizeof(why)),
                        "no read-only host (1 passed over for lag)");
    env_free(&e);
}

static void test_lag(void **state)
{
    (void)state;
    struct host_health primary = {0};
    struct standby_position pos = {.replay = 1000, .receive = 1000, .replay_age_s = 600};
    /* no primary: the standby's own received position; all applied is no lag */
    struct lag_reading r = lag_measure(NULL, &pos, 0);
    assert_int_equal(r.bytes, 0);
    assert_int_equal(r.ms, 0);
    pos.receive = 1500;
    r = lag_measure(NULL, &pos, 0);
    assert_int_equal(r.bytes, 500);
    assert_int_equal(r.ms, 600000);
    /* a server's age past any real one ("1e308", "Infinity": fuzz_server): the longest, no overflow
     */
    pos.replay_age_s = 1e308;
    r = lag_measure(NULL, &pos, 0);
    assert_int_equal(r.ms, 1000000000000LL);
    pos.replay_age_s = HUGE_VAL;
    r = lag_measure(NULL, &pos, 0);
    assert_int_equal(r.ms, 1000000000000LL);
    pos.replay_age_s = 600;
    /* a quiet primary at the standby's position: no lag, however old the last commit */
    lag_note_primary(&primary, 1000, 10000);
    lag_note_primary(&primary, 1000, 12000);
    r = lag_measure(&primary, &pos, 13000);
    assert_int_equal(r.bytes, 0);
    assert_int_equal(r.ms, 0);
    /* the primary moved on at 14 s; at 17 s the standby has still not replayed it: 3 s */
    lag_note_primary(&primary, 2000, 14000);
    lag_note_primary(&primary, 2500, 16000);
    r = lag_measure(&primary, &pos, 17000);
    assert_int_equal(r.bytes, 1500);
    assert_int_equal(r.ms, 3000);
    /* the standby's check began at 15 s (its answer came late): 1 s, as of the check's start */
    r = lag_measure(&primary, &pos, 15000);
    assert_int_equal(r.ms, 1000);
    /* begun before the primary's sample past it was taken: nothing yet, never less than 0 */
    r = lag_measure(&primary, &pos, 13500);
    assert_int_equal(r.ms, 0);
    /* replayed up to 2000: behind only what came after, first seen at 16 s */
    pos.replay = 2000;
    r = lag_measure(&primary, &pos, 17000);
    assert_int_equal(r.bytes, 500);
    assert_int_equal(r.ms, 1000);
    /* older than every kept sample: at least the oldest's age, or the last commit's if older */
    for (int i = 0; i < HEALTH_LSN_HISTORY; i++)
        lag_note_primary(&primary, 5000 + (uint64_t)i, 20000 + i * 100);
    pos.replay_age_s = 60;
    r = lag_measure(&primary, &pos, 30000);
    assert_int_equal(r.ms, 60000);
}

/* An insert position right after a page or segment header is the end of the record before it. */
static void test_lsn_record_end(void **state)
{
    (void)state;
    const uint64_t blk = 8192, seg = 16 * 1024 * 1024;
    assert_true(lsn_record_end(50511872 + 24, blk, seg) == 50511872); /* the case 212 met */
    assert_true(lsn_record_end(3 * seg + 40, blk, seg) == 3 * seg);   /* a segment's long header */
    assert_true(lsn_record_end(50511872 + 25, blk, seg) == 50511872 + 25);
    assert_true(lsn_record_end(50511872, blk, seg) == 50511872);
    assert_true(lsn_record_end(50511872 + 24, 0, 0) == 50511872 + 24);    /* sizes unknown */
    assert_true(lsn_record_end(4 * 32768 + 24, 32768, seg) == 4 * 32768); /* wal_block_size 32 kB */
}

static void test_lsn_text(void **state)
{
    (void)state;
    uint32_t tli;
    uint64_t lsn;
    char buf[LSN_TEXT_MAX];
    assert_int_equal(lsn_parse("16/B374D848", 11, &tli, &lsn), LSN_OK);
    assert_int_equal(tli, 0);
    assert_true(lsn == 0x16B374D848ULL);
    assert_int_equal(lsn_parse("00000002/16/b374d848", 20, &tli, &lsn), LSN_OK);
    assert_int_equal(tli, 2);
    assert_true(lsn == 0x16B374D848ULL);
    assert_string_equal(lsn_format(2, lsn, buf, sizeof(buf)), "00000002/16/B374D848");
    assert_string_equal(lsn_format(0, lsn, buf, sizeof(buf)), "16/B374D848");
    static const char *const bad[] = {"",     "16",   "16/",         "/1",           "0/1/2/3",
                                      "g/1",  "1//2", "123456789/1", "00000000/1/2", "1/2 ",
                                      " 1/2", "1/2/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lsn_parse(bad[i], strlen(bad[i]), &tli, &lsn), LSN_EINVAL);
    /* the length rules, not a NUL: "1/2" of "1/23" */
    assert_int_equal(lsn_parse("1/23", 3, &tli, &lsn), LSN_OK);
    assert_true(lsn == 0x100000002ULL);
}

/* A position to have replayed: standbys known to have it, and the primary, fit. */
static void test_fit_fenced(void **state)
{
    (void)state;
    struct env e;
    char buf[256], why[160];
    env_init(&e);
    for (int i = 0; i < 3; i++) {
        host(&e, i)->runtime->health.timeline = 1;
        host(&e, i)->runtime->health.lsn = 1000;
    }
    struct need_spec fenced = {.role = NEED_PREFER_STANDBY, .min_tli = 1, .min_lsn = 1500};
    struct region *out[ROUTE_MAX_REGIONS];
    double cos[ROUTE_MAX_REGIONS];
    assert_int_equal(need_host_fit(host(&e, 1), &fenced), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(host(&e, 0), &fenced), NEED_FIT_FALLBACK);
    assert_int_equal(route_plan(&e.rd, &e.loc, &fenced, NULL, out, cos, ROUTE_MAX_REGIONS), 1);
    assert_string_equal(out[0]->name, "primary");
    assert_string_equal(need_region_shortfall(&e.set.items[1], &fenced, why, sizeof(why)),
                        "no host known to have replayed pgnear.min_lsn (1 behind)");
    host(&e, 2)->runtime->health.lsn = 1500; /* the far standby caught up */
    assert_string_equal(plan(&e, NEED_ANY, buf, sizeof(buf)), "standby primary far-standby");
    assert_int_equal(route_plan(&e.rd, &e.loc, &fenced, NULL, out, cos, ROUTE_MAX_REGIONS), 2);
    assert_string_equal(out[0]->name, "far-standby");
    fenced.min_tli = 2; /* another timeline: only the primary */
    assert_int_equal(need_host_fit(host(&e, 2), &fenced), NEED_FIT_NONE);
    fenced.min_tli = 0; /* none named: the position alone */
    assert_int_equal(need_host_fit(host(&e, 2), &fenced), NEED_FIT_GOOD);
    env_free(&e);
}

/*
 * Monotonic reads: the host the last transaction read fits; another
 * standby only once a check of that host, started after the transaction
 * ended, read a position the other has replayed.
 */
static void test_fit_last_read(void **state)
{
    (void)state;
    struct env e;
    char why[160];
    env_init(&e);
    struct region_host *near = host(&e, 1), *far = host(&e, 2);
    near->runtime->health.lsn = 1000;
    near->runtime->health.lsn_since_ms = 100;
    far->runtime->health.lsn = 5000; /* far ahead, by its own check */
    struct need_spec last = {.role = NEED_PREFER_STANDBY};
    last.read_at = near->runtime;
    last.read_until_ms = 200; /* the transaction on near ended after near's last check */
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE); /* how far it read: not known */
    /* Not checked yet (just started): the host last read fits all the same; others do not. */
    near->runtime->health.role_known = far->runtime->health.role_known = false;
    assert_int_not_equal(need_host_fit(near, &last), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE);
    near->runtime->health.role_known = far->runtime->health.role_known = true;
    assert_int_equal(need_host_fit(host(&e, 0), &last), NEED_FIT_FALLBACK); /* a primary has it */
    assert_true(need_may_catch_up(far, &last));
    assert_false(need_may_catch_up(near, &last));
    assert_string_equal(need_region_shortfall(&e.set.items[2], &last, why, sizeof(why)),
                        "no host known to have replayed what the session last read (1 behind)");
    /* A check of near that started after the end: its position bounds what was read. */
    near->runtime->health.lsn = 6000;
    near->runtime->health.lsn_since_ms = 250;
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE); /* 5000 < 6000 */
    far->runtime->health.lsn = 6000;
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_GOOD);
    /* A position the session wrote still counts for near itself. */
    last.min_lsn = 7000;
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE);
    env_free(&e);
}

/*
 * The host last read restarted (it went down, or its server started
 * again): it may be behind what it showed, so it fits only by a position,
 * and its checks since bound nothing.  A primary's check that started
 * after the read bounds it instead.
 */
static void test_fit_last_read_restarted(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct region_host *primary = host(&e, 0), *near = host(&e, 1), *far = host(&e, 2);
    near->runtime->health.lsn = 1000;
    near->runtime->health.lsn_since_ms = 100;
    near->runtime->health.started_us = 7;
    far->runtime->health.lsn = 3000;
    far->runtime->health.lsn_since_ms = 100;
    primary->runtime->health.lsn = 4000;
    primary->runtime->health.lsn_since_ms = 100;
    struct need_spec last = {.role = NEED_NEAREST};
    last.read_at = near->runtime;
    last.read_until_ms = 200;
    last.read_started_us = 7;
    uint64_t bound = 0;
    assert_true(need_read_at_same_run(&last));
    assert_false(need_read_bound(&last, false, &bound)); /* nobody checked since */
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE);
    /* Its server started again, and came back behind what the session read there. */
    near->runtime->health.started_us = 8;
    near->runtime->health.lsn = 500;
    near->runtime->health.lsn_since_ms = 300;
    assert_false(need_read_at_same_run(&last));
    assert_false(need_read_bound(&last, false, &bound)); /* its new run's check bounds nothing */
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(primary, &last), NEED_FIT_GOOD); /* a primary has it */
    /* A check of the primary since: its position bounds what any standby had replayed. */
    last.read_primary = primary->runtime;
    primary->runtime->health.lsn_since_ms = 250;
    assert_true(need_read_bound(&last, false, &bound));
    assert_int_equal(bound, 4000);
    assert_false(need_read_bound(&last, true, &bound));         /* not its own check */
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE); /* 3000 < 4000 */
    far->runtime->health.lsn = 4000;
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_GOOD);
    near->runtime->health.lsn = 4100; /* caught up: fits by its position */
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    /* A bound of earlier reads counts for every standby but the one read, in its run. */
    last.read_lsn = 4050;
    assert_int_equal(need_host_fit(far, &last), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    last.read_started_us = 8; /* the session read near in its new run: it fits as it is */
    near->runtime->health.lsn = 100;
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    /* Down and up again, its start time unknown: a restart all the same. */
    near->runtime->health.downs++;
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_NONE);
    env_free(&e);
}

/*
 * A read before any check had said when the host's server started (a
 * session's login right after pgnear started): the run that started
 * before the read ended is the one read on; one that started after is a
 * restart.
 */
static void test_fit_last_read_before_first_check(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct region_host *near = host(&e, 1);
    struct need_spec last = {.role = NEED_NEAREST};
    last.read_at = near->runtime;
    last.read_until_ms = 200;
    last.read_started_us = 0;
    last.read_wall_us = 5000;
    assert_true(need_read_at_same_run(&last)); /* still unknown: trusted until its first check */
    near->runtime->health.started_us = 4000;
    near->runtime->health.lsn = 10;
    near->runtime->health.lsn_since_ms = 100; /* its check started before the read ended */
    assert_true(need_read_at_same_run(&last));
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    near->runtime->health.started_us = 6000; /* started after the read: a restart */
    assert_false(need_read_at_same_run(&last));
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_NONE);
    near->runtime->health.started_us = 4000;
    near->runtime->health.downs++;
    assert_false(need_read_at_same_run(&last));
    env_free(&e);
}

/*
 * The server of a standby ended a connection of pgnear's after the
 * session's read (host_health.doubted_ms): it may have restarted behind
 * what it showed, though no check has said so yet.  Neither the host read
 * nor one known by its position fits a session that needs one, until a
 * check that started after that; one that does not need one is not
 * concerned.  A doubt from before the read casts none on it.
 */
static void test_fit_doubted_position(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct region_host *near = host(&e, 1), *far = host(&e, 2);
    near->runtime->health.in_recovery = far->runtime->health.in_recovery = true;
    near->runtime->health.lsn = far->runtime->health.lsn = 1000;
    near->runtime->health.lsn_since_ms = far->runtime->health.lsn_since_ms = 100;
    near->runtime->health.started_us = 7;
    struct need_spec last = {.role = NEED_NEAREST};
    last.read_at = near->runtime;
    last.read_until_ms = 200;
    last.read_started_us = 7;
    struct need_spec wrote = {.role = NEED_PREFER_STANDBY, .min_lsn = 900};
    struct need_spec plain = {.role = NEED_PREFER_STANDBY};
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(far, &wrote), NEED_FIT_GOOD);
    /* Its connections ended by their servers at 300 and 250, after the read. */
    near->runtime->health.doubted_ms = 300;
    far->runtime->health.doubted_ms = 250;
    assert_false(need_read_at_same_run(&last));
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_NONE);
    assert_int_equal(need_host_fit(far, &wrote), NEED_FIT_NONE);
    assert_true(need_may_catch_up(far, &wrote)); /* a session waits for its check */
    assert_int_equal(need_host_fit(far, &plain), NEED_FIT_GOOD);
    /* A check that started after: its run and position are known again. */
    near->runtime->health.lsn_since_ms = 310;
    far->runtime->health.lsn_since_ms = 260;
    assert_true(need_read_at_same_run(&last));
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    assert_int_equal(need_host_fit(far, &wrote), NEED_FIT_GOOD);
    /* A doubt before the read ended: the read was on the run it followed. */
    near->runtime->health.doubted_ms = 400;
    last.read_until_ms = 500;
    assert_true(need_read_at_same_run(&last));
    assert_int_equal(need_host_fit(near, &last), NEED_FIT_GOOD);
    /* A primary's connection ended by its server casts no doubt: it has what it wrote. */
    struct region_host *primary = host(&e, 0);
    primary->runtime->health.in_recovery = false;
    primary->runtime->health.doubted_ms = 0;
    health_note_conn_lost(primary);
    assert_int_equal(primary->runtime->health.doubted_ms, 0);
    far->runtime->health.doubted_ms = 0;
    health_note_conn_lost(far);
    assert_true(far->runtime->health.doubted_ms > 0);
    env_free(&e);
}

static void test_judge_hysteresis(void **state)
{
    (void)state;
    struct host_health hh = {0};
    struct lag_limits limits = {3000, 0};
    assert_int_equal(lag_judge(&hh, (struct lag_reading){100, 1000}, &limits), 0);
    assert_int_equal(lag_judge(&hh, (struct lag_reading){100, 3500}, &limits), 1);
    assert_true(hh.lagging);
    assert_int_equal(lag_judge(&hh, (struct lag_reading){100, 4000}, &limits), 0);
    /* back under: only after HEALTH_LAG_RISE readings in a row */
    for (int i = 1; i < HEALTH_LAG_RISE; i++)
        assert_int_equal(lag_judge(&hh, (struct lag_reading){0, 0}, &limits), 0);
    assert_int_equal(lag_judge(&hh, (struct lag_reading){100, 3100}, &limits), 0); /* over again */
    for (int i = 1; i < HEALTH_LAG_RISE; i++)
        assert_int_equal(lag_judge(&hh, (struct lag_reading){0, 0}, &limits), 0);
    assert_int_equal(lag_judge(&hh, (struct lag_reading){0, 0}, &limits), -1);
    assert_false(hh.lagging);
    /* an unknown reading changes nothing; bytes count when their limit is set */
    assert_int_equal(lag_judge(&hh, (struct lag_reading){-1, -1}, &limits), 0);
    limits.max_bytes = 1000;
    assert_int_equal(lag_judge(&hh, (struct lag_reading){2000, 0}, &limits), 1);
    limits = (struct lag_limits){0, 0};
    assert_int_equal(lag_judge(&hh, (struct lag_reading){1 << 30, 1 << 30}, &limits), 0);
}

/*
 * A move's target has what the session has seen: the position it read
 * where it is raises pgnear.min_lsn, and never lowers one given on an
 * older timeline past it (a write a failover lost, which no server has).
 */
static void test_move_keeps_min_lsn(void **state)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    struct session *s = calloc(1, sizeof(*s));
    (void)state;
    assert_non_null(cfg);
    assert_non_null(s);
    s->cfg = cfg; /* health_check_interval 0: no read position followed */
    s->need = (struct need_spec){.role = NEED_STANDBY, .min_lsn = 0x5000, .min_tli = 0};
    struct need_spec n = session_need_for(s, NEED_AT_MOVE, 0x6000);
    assert_int_equal(n.min_lsn, 0x6000);
    n = session_need_for(s, NEED_AT_MOVE, 0x4000);
    assert_int_equal(n.min_lsn, 0x5000);
    s->need.min_tli = 1;
    n = session_need_for(s, NEED_AT_MOVE, 0x4000);
    assert_int_equal(n.min_lsn, 0x5000);
    assert_int_equal(n.min_tli, 1);
    n = session_need_for(s, NEED_AT_MOVE, 0x6000);
    assert_int_equal(n.min_lsn, 0x6000);
    assert_int_equal(n.min_tli, 0);
    free(s);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_fit_by_role),
        cmocka_unit_test(test_plan_by_need),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_judge_hysteresis),
        cmocka_unit_test(test_lsn_text),
        cmocka_unit_test(test_lsn_record_end),
        cmocka_unit_test(test_fit_fenced),
        cmocka_unit_test(test_fit_last_read),
        cmocka_unit_test(test_fit_last_read_restarted),
        cmocka_unit_test(test_fit_doubted_position),
        cmocka_unit_test(test_fit_last_read_before_first_check),
        cmocka_unit_test(test_move_keeps_min_lsn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
