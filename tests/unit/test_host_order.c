/*
 * test_host_order.c
 *    Unit tests for the one order of a region's hosts (need_host_order,
 *    routing/need.c) and for its two callers agreeing: the host whose kept
 *    connection the fast way takes (fetch_first_host, session/fetch.c) is
 *    the host the login dials first (server_connect_first_host,
 *    login/server_connect.c), over every need and every mix of three
 *    hosts' states; and wherever the login would land on a host that fits
 *    well and is up, the fast way takes that host too; and the fast way
 *    (fetch_take at a spot, a transaction that waited in the pool's queue) takes
 *    no connection in a region that the login's relay would hold its
 *    session in (gate_reasons_for: PAUSE, a migration's pause of its
 *    database, a database move's hold), and refuses none it would not
 *    (cmocka, TAP output).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"
#include "proxy/login/server_connect.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fetch.h"
#include "proxy/session/gate.h"
#include "proxy/session/phase.h"
#include "proxy/session/session.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/registry.h"

#define NHOSTS 3

/* One region of three hosts, bound to a registry. */
struct env {
    struct registry *reg;
    struct region_set set;
    struct region *r;
};

static void env_init(struct env *e)
{
    char err[256];
    memset(e, 0, sizeof(*e));
    e->reg = registry_new();
    assert_non_null(e->reg);
    e->r = region_set_add(&e->set, "here");
    assert_non_null(e->r);
    assert_null(
        region_parse_hosts(e->r, "127.0.0.1:5432,127.0.0.2:5432,127.0.0.3:5432", err, sizeof(err)));
    assert_int_equal(e->r->nhosts, NHOSTS);
    for (size_t i = 0; i < NHOSTS; i++)
        e->r->hosts[i].region = e->r;
    assert_true(registry_bind(e->reg, &e->set));
}

static void env_free(struct env *e)
{
    region_set_free(&e->set);
    registry_free(e->reg);
}

/* The states a host may be in, as its health checks left it. */
enum state {
    ST_PRIMARY,
    ST_STANDBY,
    ST_STANDBY_BEHIND, /* up, but short of the position a need names */
    ST_LAGGING,
    ST_UNKNOWN, /* up, no check has logged in */
    ST_DOWN_PRIMARY,
    ST_DOWN_STANDBY,
    ST_FENCED,
    ST_READ_ONLY_PRIMARY,
    ST_COUNT,
};

static void set_state(struct region_host *h, enum state st)
{
    struct host_health *hh = &h->runtime->health;
    bool standby =
        st == ST_STANDBY || st == ST_STANDBY_BEHIND || st == ST_LAGGING || st == ST_DOWN_STANDBY;
    hh->up = st != ST_DOWN_PRIMARY && st != ST_DOWN_STANDBY;
    hh->fenced = st == ST_FENCED;
    hh->role_known = st != ST_UNKNOWN;
    hh->in_recovery = standby;
    hh->read_only = st == ST_READ_ONLY_PRIMARY;
    hh->lagging = st == ST_LAGGING;
    hh->lsn = st == ST_STANDBY_BEHIND ? 10 : 1000;
    hh->login_saw_standby_ms = 0;
}

static void test_order(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    uint8_t order[REGION_MAX_HOSTS];
    struct need_spec any = {.role = NEED_ANY}, nearest = {.role = NEED_NEAREST};
    struct need_spec rw = {.role = NEED_READ_WRITE}, ps = {.role = NEED_PREFER_STANDBY};
    /* any: primaries before standbys, each in configured order; down last */
    set_state(&e.r->hosts[0], ST_STANDBY);
    set_state(&e.r->hosts[1], ST_DOWN_PRIMARY);
    set_state(&e.r->hosts[2], ST_PRIMARY);
    assert_int_equal(need_host_order(e.r, &any, order), 3);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 1);
    /* nearest: a standby before the primary */
    assert_int_equal(need_host_order(e.r, &nearest, order), 3);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1);
    /* read-write: the standby not at all */
    assert_int_equal(need_host_order(e.r, &rw, order), 2);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    /* prefer-standby: the standby, then the primary as a fallback; the down primary last */
    assert_int_equal(need_host_order(e.r, &ps, order), 3);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1);
    assert_ptr_equal(fetch_first_host(e.r, &ps), &e.r->hosts[0]);
    assert_ptr_equal(server_connect_first_host(e.r, &ps), &e.r->hosts[0]);
    /* nothing fits: no order, nothing to take or dial */
    set_state(&e.r->hosts[2], ST_STANDBY);
    assert_int_equal(need_host_order(e.r, &rw, order), 1);
    assert_null(fetch_first_host(e.r, &rw));
    assert_ptr_equal(server_connect_first_host(e.r, &rw), &e.r->hosts[1]); /* down: tried all */
    env_free(&e);
}

/* The fast way and the login agree for need over the region as it is. */
static void check_agree(struct env *e, const struct need_spec *need, const char *what)
{
    struct region_host *fast = fetch_first_host(e->r, need);
    struct region_host *login = server_connect_first_host(e->r, need);
    if (fast != NULL && fast != login)
        fail_msg("%s: the fast way takes host %d, the login dials %d", what,
                 (int)(fast - e->r->hosts), login != NULL ? (int)(login - e->r->hosts) : -1);
    if (fast == NULL && login != NULL && need_host_fit(login, need) == NEED_FIT_GOOD &&
        host_is_up(login))
        fail_msg("%s: the login lands well on host %d, the fast way takes none", what,
                 (int)(login - e->r->hosts));
}

static void test_fast_way_agrees_with_login(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    char what[128];
    int cases = 0;
    for (int a = 0; a < ST_COUNT; a++)
        for (int b = 0; b < ST_COUNT; b++)
            for (int c = 0; c < ST_COUNT; c++) {
                int st[NHOSTS] = {a, b, c};
                for (int i = 0; i < NHOSTS; i++)
                    set_state(&e.r->hosts[i], (enum state)st[i]);
                for (int role = 0; role < NEED_COUNT; role++)
                    for (int pos = 0; pos < 2; pos++) {
                        struct need_spec need = {.role = (enum session_need)role,
                                                 .min_lsn = pos ? 500 : 0};
                        snprintf(what, sizeof(what), "hosts %d,%d,%d need %s%s", a, b, c,
                                 need_name(need.role), pos ? " with a position" : "");
                        check_agree(&e, &need, what);
                        cases++;
                    }
            }
    assert_int_equal(cases, ST_COUNT * ST_COUNT * ST_COUNT * NEED_COUNT * 2);
    env_free(&e);
}

/* The pool's take, stubbed: what the fast way asks for, no connection to give. */
static int takes_asked;
static struct server_conn *stub_take(struct session *s, struct region *r, struct region_host *h,
                                     bool ready)
{
    (void)s, (void)r, (void)h, (void)ready;
    takes_asked++;
    return NULL;
}

static void test_fast_way_holds_as_login(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    set_state(&e.r->hosts[0], ST_PRIMARY);
    static struct config cfg;
    static struct shared sh;
    static struct worker w;
    static struct session s;
    static const struct session_flow flow = {.server_take = stub_take};
    placement_init(&sh.placement);
    sh.flow = &flow;
    cfg.migrations_db = (char *)"movr";
    cfg.pool_mode = POOL_TRANSACTION;
    cfg.auth = AUTH_SCRAM;
    w.shared = &sh;
    w.cfg = &cfg;
    s.w = &w;
    s.cfg = &cfg;
    struct fetch_want want = {.need = {.role = NEED_ANY}};
    const char *databases[] = {"movr", "other"};
    int cases = 0;
    for (int d = 0; d < 2; d++)
        for (int hold = 0; hold < 8; hold++) {
            s.database = databases[d];
            registry_set_paused(e.r->runtime, hold & 1);
            registry_set_migration_hold(e.r->runtime, hold & 2);
            assert_int_equal(placement_set_held(&sh.placement, "movr", hold & 4), 0);
            bool login_holds = gate_reasons_for(&s, e.r) != 0;
            bool expect = (hold & 1) || ((hold & 2) && d == 0) || ((hold & 4) && d == 0);
            assert_int_equal(login_holds, expect);
            struct fetch_spot spot = {e.r, &e.r->hosts[0]};
            takes_asked = 0;
            assert_null(fetch_take(&s, &want, &spot));
            bool moved = spot.host == NULL;
            if (moved != login_holds || takes_asked != !login_holds)
                fail_msg("database %s, holds %d: the login %s, the fast way %s", s.database, hold,
                         login_holds ? "holds" : "goes on",
                         takes_asked ? "takes" : "goes the login's way");
            cases++;
        }
    assert_int_equal(cases, 16);
    placement_destroy(&sh.placement);
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_fast_way_agrees_with_login),
        cmocka_unit_test(test_fast_way_holds_as_login),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
