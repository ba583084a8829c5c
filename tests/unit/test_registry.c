/*
 * test_registry.c
 *    Unit tests for routing/registry.c (cmocka, TAP output): binding a
 *    configuration's regions and hosts to entries, a second configuration
 *    (a reload) finding the same entries by name and port so that health
 *    carries on, new hosts starting fresh, dropped names kept, and
 *    route_plan leaving out a region the admin disabled; a name that DNS
 *    moved is a new host, its old address fenced for the sessions there.  Regions are
 *    parsed from address literals, so nothing is resolved over a network.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>

#include "routing/claimants.h"
#include "routing/health.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "routing/route.h"

/* Adds a region of hosts ("127.0.0.1:5432, ...") to set. */
static struct region *add_region(struct region_set *set, const char *name, const char *hosts)
{
    char err[256];
    struct region *r = region_set_add(set, name);
    assert_non_null(r);
    if (region_parse_hosts(r, hosts, err, sizeof(err)) != NULL)
        fail_msg("region_parse_hosts(\"%s\"): %s", hosts, err);
    return r;
}

/* The back-pointers, once the region array is final (as the configuration sets them). */
static void set_back_pointers(struct region_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        for (size_t h = 0; h < set->items[i].nhosts; h++)
            set->items[i].hosts[h].region = &set->items[i];
}

/* A resolver of the test's: every name resolves to the IPv4 address at arg. */
static bool lookup_at(void *arg, const char *host, int port, struct host_addr *out, char *err,
                      size_t errcap)
{
    (void)err;
    (void)errcap;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr;
    memset(out, 0, sizeof(*out));
    snprintf(out->host, sizeof(out->host), "%s", host);
    out->port = port;
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, arg, &v4->sin_addr), 1);
    out->addrlen = sizeof(*v4);
    return true;
}

/* A region of one host name, parsed unresolved and resolved to addr. */
static struct region *add_named(struct region_set *set, const char *addr)
{
    char err[256];
    struct region *r = region_set_add(set, "eu");
    assert_non_null(r);
    assert_null(region_parse_hosts_unresolved(r, "db.example.com:5432", err, sizeof(err)));
    assert_int_equal(r->hosts[0].addrlen, 0); /* nothing resolved yet */
    assert_null(region_resolve_hosts(r, lookup_at, (void *)addr, err, sizeof(err)));
    assert_int_equal(r->hosts[0].addrlen, sizeof(struct sockaddr_in));
    return r;
}

/*
 * A name that DNS moved is another host: a fresh entry at the new address,
 * the old one fenced (CLAIMANTS_DNS) for the sessions still there, freed
 * again when the name moves back.
 */
static void test_moved_name_is_new_host(void **state)
{
    (void)state;
    struct registry *reg = registry_new();
    struct region_set old = {0}, fresh = {0}, back = {0};
    char why[256];
    assert_non_null(reg);
    add_named(&old, "10.0.0.5");
    add_named(&fresh, "10.0.0.7");
    add_named(&back, "10.0.0.5");
    set_back_pointers(&old);
    set_back_pointers(&fresh);
    set_back_pointers(&back);
    assert_true(registry_bind(reg, &old));
    assert_true(registry_bind(reg, &fresh));
    struct region_host *was = &old.items[0].hosts[0], *now = &fresh.items[0].hosts[0];
    assert_ptr_not_equal(was->runtime, now->runtime);
    assert_true(registry_same_address(&was->runtime->addr, &was->addr));

    claimants_fence_moved(was->runtime, now->runtime, now->region->runtime);
    assert_true(host_is_fenced(was));
    assert_false(host_is_fenced(now));
    claimants_describe(was->runtime, why, sizeof(why));
    assert_string_equal(why, "former address 10.0.0.5 of its name, which resolves to 10.0.0.7 now");

    /* moved back: the old entry comes back to life, and serves again */
    assert_true(registry_bind(reg, &back));
    assert_ptr_equal(back.items[0].hosts[0].runtime, was->runtime);
    claimants_unfence_moved(back.items[0].hosts[0].runtime);
    assert_false(host_is_fenced(&back.items[0].hosts[0]));

    region_set_free(&old);
    region_set_free(&fresh);
    region_set_free(&back);
    registry_free(reg);
}

static void test_bind_fresh(void **state)
{
    (void)state;
    struct registry *reg = registry_new();
    struct region_set set = {0};
    assert_non_null(reg);
    add_region(&set, "us", "127.0.0.1:5432, 127.0.0.1:5433");
    add_region(&set, "eu", "127.0.0.2:5432");
    assert_true(registry_bind(reg, &set));

    struct region *us = &set.items[0];
    assert_non_null(us->runtime);
    assert_string_equal(us->runtime->name, "us");
    assert_int_equal(registry_admin_state(us->runtime), REGION_ENABLED);
    assert_ptr_equal(registry_find_region(reg, "US"), us->runtime); /* as region_set_find */
    assert_null(registry_find_region(reg, "ap"));
    /* every host an entry of its own, up until someone says otherwise */
    assert_ptr_not_equal(us->hosts[0].runtime, us->hosts[1].runtime);
    assert_int_equal(us->hosts[1].runtime->port, 5433);
    assert_true(host_is_up(&us->hosts[0]));
    assert_true(region_is_up(&set.items[1]));
    /* binding again changes nothing */
    struct registry_host *before = us->hosts[0].runtime;
    assert_true(registry_bind(reg, &set));
    assert_ptr_equal(us->hosts[0].runtime, before);

    region_set_free(&set);
    registry_free(reg);
}

/* A reload: the new set names some of the same hosts, in another order and region. */
static void test_rebind_keeps_health(void **state)
{
    (void)state;
    struct registry *reg = registry_new();
    struct region_set old = {0}, fresh = {0};
    assert_non_null(reg);
    add_region(&old, "us", "127.0.0.1:5432, 127.0.0.1:5433");
    add_region(&old, "eu", "127.0.0.2:5432");
    set_back_pointers(&old);
    assert_true(registry_bind(reg, &old));
    assert_true(health_mark_down(&old.items[0].hosts[1]));
    bool took_down;
    assert_int_equal(health_count_timeout(&old.items[1].hosts[0], 3, &took_down), 1);
    registry_set_admin_state(old.items[1].runtime, REGION_DISABLED);

    add_region(&fresh, "eu", "127.0.0.2:5432, 127.0.0.1:5433");
    add_region(&fresh, "us", "127.0.0.1:5432, 127.0.0.1:6000");
    set_back_pointers(&fresh);
    assert_true(registry_bind(reg, &fresh));
    struct region *eu = &fresh.items[0], *us = &fresh.items[1];
    /* the same entries: health and admin state carry on without a copy */
    assert_ptr_equal(eu->runtime, old.items[1].runtime);
    assert_int_equal(registry_admin_state(eu->runtime), REGION_DISABLED);
    assert_ptr_equal(eu->hosts[0].runtime, old.items[1].hosts[0].runtime);
    assert_int_equal(eu->hosts[0].runtime->health.consecutive_timeouts, 1);
    /* a host moved to another region is the same server: still down */
    assert_ptr_equal(eu->hosts[1].runtime, old.items[0].hosts[1].runtime);
    assert_false(host_is_up(&eu->hosts[1]));
    assert_int_equal(health_downs(&eu->hosts[1]), 1);
    assert_true(host_is_up(&us->hosts[0]));
    /* a port not seen before: a fresh entry, up */
    assert_ptr_not_equal(us->hosts[1].runtime, old.items[0].hosts[0].runtime);
    assert_true(host_is_up(&us->hosts[1]));
    assert_int_equal(us->hosts[1].runtime->health.downs, 0);
    /* what the new set writes, the old one (still in use by sessions) sees */
    assert_true(health_mark_down(&us->hosts[0]));
    assert_false(host_is_up(&old.items[0].hosts[0]));

    region_set_free(&old);
    region_set_free(&fresh);
    registry_free(reg);
}

/* A name a reload dropped keeps its entry, and a later reload that names it again finds it. */
static void test_dropped_name_kept(void **state)
{
    (void)state;
    struct registry *reg = registry_new();
    struct region_set first = {0}, second = {0}, third = {0};
    assert_non_null(reg);
    add_region(&first, "lab", "127.0.0.9:5432");
    assert_true(registry_bind(reg, &first));
    assert_true(health_mark_down(&first.items[0].hosts[0]));
    registry_set_admin_state(first.items[0].runtime, REGION_DISABLED);
    add_region(&second, "us", "127.0.0.1:5432");
    assert_true(registry_bind(reg, &second));
    add_region(&third, "lab", "127.0.0.9:5432");
    assert_true(registry_bind(reg, &third));
    assert_ptr_equal(third.items[0].runtime, first.items[0].runtime);
    assert_int_equal(registry_admin_state(third.items[0].runtime), REGION_DISABLED);
    assert_false(host_is_up(&third.items[0].hosts[0]));
    region_set_free(&first);
    region_set_free(&second);
    region_set_free(&third);
    registry_free(reg);
}

/* Three regions by distance from the caller: near, mid, far. */
struct plan_env {
    struct registry *reg;
    struct region_set set;
    struct routing_data rd;
    struct locality loc;
};

static void plan_env_init(struct plan_env *e)
{
    memset(e, 0, sizeof(*e));
    e->reg = registry_new();
    assert_non_null(e->reg);
    region_set_location(add_region(&e->set, "near", "127.0.0.1:5432"), 53.35, -6.26);
    region_set_location(add_region(&e->set, "mid", "127.0.0.2:5432"), 39.04, -77.49);
    region_set_location(add_region(&e->set, "far", "127.0.0.3:5432"), 35.68, 139.69);
    set_back_pointers(&e->set);
    assert_true(registry_bind(e->reg, &e->set));
    e->rd = (struct routing_data){&e->set, &e->set.items[2],         NULL, NULL, NULL, 0,
                                  false,   {.by = ROUTE_BY_DISTANCE}};
    struct locality_input in = {.location = "51.5, -0.13", .location_via = "test"};
    locality_resolve(&e->rd, &in, &e->loc);
}

static void plan_env_free(struct plan_env *e)
{
    region_set_free(&e->set);
    registry_free(e->reg);
}

/* The plan's names, "a b c", for one assertion. */
static const char *plan_names(struct plan_env *e, char *buf, size_t cap)
{
    struct region *plan[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    size_t n = route_plan(&e->rd, &e->loc, &(struct need_spec){.role = NEED_ANY}, NULL, plan,
                          cosines, ROUTE_MAX_REGIONS),
           len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "", plan[i]->name);
    return buf;
}

static void test_plan_skips_disabled(void **state)
{
    (void)state;
    struct plan_env e;
    char names[256];
    plan_env_init(&e);
    assert_string_equal(plan_names(&e, names, sizeof(names)), "near mid far");
    /* a region with no host up is tried last; a disabled one not at all */
    assert_true(health_mark_down(&e.set.items[0].hosts[0]));
    assert_string_equal(plan_names(&e, names, sizeof(names)), "mid far near");
    registry_set_admin_state(e.set.items[0].runtime, REGION_DISABLED);
    assert_string_equal(plan_names(&e, names, sizeof(names)), "mid far");
    /* a paused region is routed to (its gate holds sessions); a draining one is not */
    registry_set_paused(e.set.items[2].runtime, true);
    assert_true(registry_paused(e.set.items[2].runtime));
    assert_string_equal(plan_names(&e, names, sizeof(names)), "mid far");
    registry_set_admin_state(e.set.items[1].runtime, REGION_DRAINING);
    assert_string_equal(plan_names(&e, names, sizeof(names)), "far");
    registry_set_admin_state(e.set.items[1].runtime, REGION_ENABLED);
    /* enabled again: back in its place */
    registry_set_admin_state(e.set.items[0].runtime, REGION_ENABLED);
    assert_string_equal(plan_names(&e, names, sizeof(names)), "mid far near");
    plan_env_free(&e);
}

/* A named region (a hint) that is disabled is not chosen either; all disabled: nothing. */
static void test_plan_disabled_named_region(void **state)
{
    (void)state;
    struct plan_env e;
    char names[256];
    plan_env_init(&e);
    struct locality_input in = {.region = "far", .region_via = "test"};
    locality_resolve(&e.rd, &in, &e.loc);
    assert_string_equal(plan_names(&e, names, sizeof(names)), "far near mid");
    registry_set_admin_state(e.set.items[2].runtime, REGION_DISABLED);
    assert_string_equal(plan_names(&e, names, sizeof(names)), "near mid");
    for (size_t i = 0; i < e.set.count; i++)
        registry_set_admin_state(e.set.items[i].runtime, REGION_DISABLED);
    assert_string_equal(plan_names(&e, names, sizeof(names)), "");
    plan_env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_fresh),
        cmocka_unit_test(test_rebind_keeps_health),
        cmocka_unit_test(test_moved_name_is_new_host),
        cmocka_unit_test(test_dropped_name_kept),
        cmocka_unit_test(test_plan_skips_disabled),
        cmocka_unit_test(test_plan_disabled_named_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
