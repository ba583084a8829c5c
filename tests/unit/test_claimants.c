/*
 * test_claimants.c
 *    Unit tests for routing/claimants.c (cmocka, TAP output): which primary
 *    of a database system serves it while two say primary.  The newer
 *    timeline wins and is remembered; at an equal timeline the one in use
 *    keeps it, unless the HA manager names the other; two addresses of one
 *    server and two copies of one initdb on timeline 1 are no claimants;
 *    a primary the HA manager knows and does not lead is fenced; a
 *    fenced host that turns standby serves again; need.c passes a fenced
 *    host over for every need.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "routing/claimants.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/registry.h"

/* Three regions of one host each: a, b, c. */
struct env {
    struct registry *reg;
    struct region_set set;
    struct claimants *c;
    int fenced, unfenced;
    char last[320];
};

static struct host_health *hh_of(struct env *e, size_t i)
{
    return &e->set.items[i].hosts[0].runtime->health;
}

/* i says primary (standby false) or standby, of system, on timeline, started at start. */
static void say(struct env *e, size_t i, bool standby, uint64_t system, uint32_t timeline,
                uint64_t start)
{
    struct host_health *hh = hh_of(e, i);
    hh->up = true;
    hh->role_known = true;
    hh->in_recovery = standby;
    hh->system_id = system;
    hh->timeline = timeline;
    hh->started_us = start;
}

static void report(void *arg, const struct region_host *h, bool fenced, const char *why)
{
    struct env *e = arg;
    (void)h;
    if (fenced)
        e->fenced++;
    else
        e->unfenced++;
    snprintf(e->last, sizeof(e->last), "%s", why);
}

static void judge(struct env *e)
{
    claimants_judge(e->c, &e->set, report, e);
}

static int env_setup(void **state)
{
    static struct env e;
    static const char *const names[] = {"us-east", "eu-west", "us-west"};
    static const char *const hosts[] = {"127.0.0.1:5432", "127.0.0.2:5433", "127.0.0.3:5434"};
    char err[256];
    memset(&e, 0, sizeof(e));
    e.reg = registry_new();
    assert_non_null(e.reg);
    for (int i = 0; i < 3; i++) {
        struct region *r = region_set_add(&e.set, names[i]);
        assert_non_null(r);
        assert_null(region_parse_hosts(r, hosts[i], err, sizeof(err)));
    }
    for (size_t i = 0; i < e.set.count; i++)
        e.set.items[i].hosts[0].region = &e.set.items[i];
    assert_true(registry_bind(e.reg, &e.set));
    e.c = claimants_new(&e.set);
    assert_non_null(e.c);
    *state = &e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    claimants_free(e->c);
    region_set_free(&e->set);
    registry_free(e->reg);
    return 0;
}

static void test_newer_timeline(void **state)
{
    struct env *e = *state;
    say(e, 0, false, 7, 1, 100);
    say(e, 1, true, 7, 1, 200);
    say(e, 2, false, 9, 1, 300); /* another system: never compared */
    judge(e);
    assert_int_equal(e->fenced, 0);
    say(e, 1, false, 7, 2, 200); /* promoted while a runs on */
    judge(e);
    assert_int_equal(e->fenced, 1);
    assert_true(host_is_fenced(&e->set.items[0].hosts[0]));
    assert_false(host_is_up(&e->set.items[0].hosts[0]));
    assert_true(host_is_reachable(&e->set.items[0].hosts[0]));
    assert_string_equal(e->last, "former primary: timeline 1, 127.0.0.2:5433 of eu-west is primary "
                                 "on timeline 2");
    assert_false(host_is_fenced(&e->set.items[1].hosts[0]));
    assert_false(host_is_fenced(&e->set.items[2].hosts[0]));
    /* Every need passes it over, not even as a last resort. */
    for (int n = 0; n < NEED_COUNT; n++)
        assert_int_equal(need_host_fit(&e->set.items[0].hosts[0],
                                       &(struct need_spec){.role = (enum session_need)n}),
                         NEED_FIT_NONE);
    /* The new primary gone, the old one stays fenced: timeline 2 took writes it lacks. */
    hh_of(e, 1)->up = false;
    judge(e);
    assert_true(host_is_fenced(&e->set.items[0].hosts[0]));
    /* Back as a standby of the new timeline: it serves again, said once. */
    say(e, 0, true, 7, 2, 100);
    judge(e);
    assert_int_equal(e->unfenced, 1);
    assert_string_equal(e->last, "it is a standby now");
    assert_false(host_is_fenced(&e->set.items[0].hosts[0]));
    judge(e);
    assert_int_equal(e->unfenced, 1);
}

static void test_equal_timeline(void **state)
{
    struct env *e = *state;
    /* Two copies of one initdb, never each other's standby: both serve. */
    say(e, 0, false, 7, 1, 100);
    say(e, 1, false, 7, 1, 200);
    judge(e);
    assert_int_equal(e->fenced, 0);
    /* Two promoted from one primary, on one timeline: the one seen first keeps it. */
    say(e, 0, false, 8, 3, 100);
    judge(e);
    say(e, 1, false, 8, 3, 200);
    judge(e);
    assert_int_equal(e->fenced, 1);
    assert_true(host_is_fenced(&e->set.items[1].hosts[0]));
    assert_non_null(strstr(e->last, "and holds its system's writes"));
    /* Unless the HA manager names the other leader. */
    hh_of(e, 1)->ha_member = hh_of(e, 1)->ha_leader = true;
    hh_of(e, 0)->ha_member = true;
    judge(e);
    assert_false(host_is_fenced(&e->set.items[1].hosts[0]));
    assert_true(host_is_fenced(&e->set.items[0].hosts[0]));
    assert_string_equal(e->last, "its HA manager names it leader now");
    char why[320];
    claimants_describe(e->set.items[0].hosts[0].runtime, why, sizeof(why));
    assert_string_equal(why, "former primary: timeline 3, its HA manager names 127.0.0.2:5433 of "
                             "eu-west leader");
}

static void test_one_server_two_addresses(void **state)
{
    struct env *e = *state;
    say(e, 0, false, 7, 2, 100);
    say(e, 1, false, 7, 2, 100); /* a relay in front of the same server */
    judge(e);
    assert_int_equal(e->fenced, 0);
}

static void test_ha_leader_decides(void **state)
{
    struct env *e = *state;
    say(e, 0, false, 7, 2, 100);
    say(e, 1, true, 7, 2, 200);
    hh_of(e, 0)->ha_member = hh_of(e, 1)->ha_member = true;
    hh_of(e, 0)->ha_leader = true;
    judge(e);
    assert_int_equal(e->fenced, 0);
    /* Its lock expired (its Patroni stopped), nobody promoted yet: no writer. */
    hh_of(e, 0)->ha_leader = false;
    judge(e);
    assert_true(host_is_fenced(&e->set.items[0].hosts[0]));
    assert_string_equal(e->last, "former primary: timeline 2, its HA manager names no leader");
    /* A standby tagged noloadbalance takes no reads. */
    hh_of(e, 1)->ha_noloadbalance = true;
    assert_int_equal(
        need_host_fit(&e->set.items[1].hosts[0], &(struct need_spec){.role = NEED_READ_ONLY}),
        NEED_FIT_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_newer_timeline, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_equal_timeline, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_one_server_two_addresses, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_ha_leader_decides, env_setup, env_teardown),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
