/*
 * test_pool_limits.c
 *    Unit tests for proxy/base/pool_limits.c, the counts behind pool_size,
 *    max_db_connections and max_user_connections, proxy/base/client_limits.c
 *    (max_user_client_connections, max_db_client_connections) (cmocka, TAP),
 *    the keyed table under both (proxy/base/count_table.c: keys cut as
 *    stored, a drop that moves the last entry, growth), and for the merged
 * ParameterStatus a kept connection's next client is told (protocol/param_set.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "protocol/param_set.h"
#include "protocol/pkt.h"
#include "proxy/base/client_limits.h"
#include "proxy/base/pool_limits.h"

static void test_pool_size(void **state)
{
    (void)state;
    struct pool_limits pl;
    char pool[POOL_KEY_MAX], other[POOL_KEY_MAX], host[POOL_KEY_MAX];
    assert_int_equal(pool_limits_init(&pl), 0);
    pool_key(pool, "eu", "movr", "app");
    pool_key(other, "eu", "movr", "admin");
    pool_host_key(host, "10.0.0.1", 5432);
    assert_int_equal(pool_limits_reserve(&pl, pool, host, 2, 0), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve(&pl, pool, host, 2, 0), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve(&pl, pool, host, 2, 0), POOL_FULL);
    /* another user's pool on the same host is counted apart */
    assert_int_equal(pool_limits_reserve(&pl, other, host, 2, 0), POOL_RESERVED);
    assert_false(pool_limits_release(&pl, pool, host)); /* nobody waits */
    assert_int_equal(pool_limits_reserve(&pl, pool, host, 2, 0), POOL_RESERVED);
    pool_limits_free(&pl);
}

/* pool_size 0: no limit per pool; the connections are still counted for the host. */
static void test_pool_size_unlimited(void **state)
{
    (void)state;
    struct pool_limits pl;
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    assert_int_equal(pool_limits_init(&pl), 0);
    pool_key(pool, "eu", "movr", "app");
    pool_host_key(host, "10.0.0.1", 5432);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(pool_limits_reserve(&pl, pool, host, 0, 0), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve(&pl, pool, host, 0, 3000), POOL_HOST_FULL);
    for (int i = 0; i < 3000; i++)
        pool_limits_release(&pl, pool, host);
    assert_int_equal(pl.counts.n, 0);
    pool_limits_free(&pl);
}

/* Clients that begin waiting: one report per pool (or host) per interval, saying how many. */
static void test_wait_reports(void **state)
{
    (void)state;
    struct pool_limits pl;
    char pool[POOL_KEY_MAX], other[POOL_KEY_MAX], host[POOL_KEY_MAX];
    struct pool_wait_report r = {0, 0};
    assert_int_equal(pool_limits_init(&pl), 0);
    pool_key(pool, "eu", "movr", "app");
    pool_key(other, "eu", "movr", "admin");
    pool_host_key(host, "10.0.0.1", 5432);
    assert_int_equal(pool_limits_reserve(&pl, pool, host, 1, 0), POOL_RESERVED);
    assert_true(pool_limits_wait_report(&pl, pool, 1000, 10000, &r));
    assert_int_equal(r.waiting, 1);
    assert_int_equal(r.began, 1);
    for (int i = 0; i < 500; i++)
        assert_false(pool_limits_wait_report(&pl, pool, 1000 + i * 10, 10000, &r));
    /* another pool has its own interval */
    assert_true(pool_limits_wait_report(&pl, other, 5000, 10000, &r));
    assert_int_equal(r.waiting, 1);
    pool_limits_wait(&pl, pool, -1);
    /* the interval passed: the next one is reported, with those left unsaid */
    assert_true(pool_limits_wait_report(&pl, pool, 11000, 10000, &r));
    assert_int_equal(r.waiting, 501);
    assert_int_equal(r.began, 501);
    assert_false(pool_limits_wait_report(&pl, pool, 20999, 10000, &r));
    assert_true(pool_limits_wait_report(&pl, pool, 21000, 10000, &r));
    assert_int_equal(r.waiting, 503);
    assert_int_equal(r.began, 2);
    assert_int_equal(pl.waiting, 504);
    pool_limits_free(&pl);
}

static void test_max_db_connections(void **state)
{
    (void)state;
    struct pool_limits pl;
    char a[POOL_KEY_MAX], b[POOL_KEY_MAX], host[POOL_KEY_MAX], host2[POOL_KEY_MAX];
    assert_int_equal(pool_limits_init(&pl), 0);
    pool_key(a, "eu", "movr", "app");
    pool_key(b, "eu", "other", "app");
    pool_host_key(host, "10.0.0.1", 5432);
    pool_host_key(host2, "10.0.0.2", 5432);
    assert_int_equal(pool_limits_reserve(&pl, a, host, 20, 2), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve(&pl, b, host, 20, 2), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve(&pl, a, host, 20, 2), POOL_HOST_FULL);
    assert_int_equal(pool_limits_reserve(&pl, a, host2, 20, 2), POOL_RESERVED);
    pool_limits_release(&pl, b, host);
    assert_int_equal(pool_limits_reserve(&pl, a, host, 20, 2), POOL_RESERVED);
    pool_limits_free(&pl);
}

static void test_waiters_and_cleanup(void **state)
{
    (void)state;
    struct pool_limits pl;
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    assert_int_equal(pool_limits_init(&pl), 0);
    pool_key(pool, "eu", "movr", "app");
    pool_host_key(host, "10.0.0.1", 5432);
    assert_false(pool_limits_has_waiters(&pl, pool));
    assert_int_equal(pool_limits_reserve(&pl, pool, host, 1, 0), POOL_RESERVED);
    pool_limits_wait(&pl, pool, 1);
    assert_true(pool_limits_has_waiters(&pl, pool));
    assert_true(pool_limits_release(&pl, pool, host)); /* someone waits: wake them */
    pool_limits_wait(&pl, pool, -1);
    assert_false(pool_limits_has_waiters(&pl, pool));
    /* nothing open, nobody waiting: the table holds nothing */
    assert_int_equal(pl.counts.n, 0);
    assert_int_equal(pl.waiting, 0);
    /* a release with nothing counted, or a wait ended twice, changes nothing */
    assert_false(pool_limits_release(&pl, pool, host));
    pool_limits_wait(&pl, pool, -1);
    assert_int_equal(pl.waiting, 0);
    pool_limits_free(&pl);
}

/* Many pools: the table grows, and each count stays its own. */
static void test_many_pools(void **state)
{
    (void)state;
    struct pool_limits pl;
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    assert_int_equal(pool_limits_init(&pl), 0);
    pool_host_key(host, "h", 1);
    for (int i = 0; i < 500; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%d", i);
        pool_key(pool, "r", "d", user);
        assert_int_equal(pool_limits_reserve(&pl, pool, host, 1, 0), POOL_RESERVED);
        assert_int_equal(pool_limits_reserve(&pl, pool, host, 1, 0), POOL_FULL);
    }
    assert_int_equal(pl.counts.n, 1001); /* the pools, each one's user on the host, the host */
    for (int i = 0; i < 500; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%d", i);
        pool_key(pool, "r", "d", user);
        pool_limits_release(&pl, pool, host);
    }
    assert_int_equal(pl.counts.n, 0);
    pool_limits_free(&pl);
}

struct racer {
    struct pool_limits *pl;
    int reserved;
};

/* Two threads reserve and release against one limit: never more than it at once. */
static void *race(void *arg)
{
    struct racer *r = arg;
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    pool_key(pool, "r", "d", "u");
    pool_host_key(host, "h", 1);
    for (int i = 0; i < 20000; i++) {
        if (pool_limits_reserve(r->pl, pool, host, 3, 0) == POOL_RESERVED) {
            r->reserved++;
            pool_limits_release(r->pl, pool, host);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct pool_limits pl;
    assert_int_equal(pool_limits_init(&pl), 0);
    struct racer a = {&pl, 0}, b = {&pl, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    /* each held at most one at a time, so the limit of 3 never refused anyone */
    assert_int_equal(a.reserved + b.reserved, 40000);
    assert_int_equal(pl.counts.n, 0);
    pool_limits_free(&pl);
}

/* What a kept connection's next client hears: the login's values, with the SETs' on top. */
static void test_merged_parameters(void **state)
{
    (void)state;
    struct param_set base = {0}, over = {0};
    param_set_put(&base, "application_name", "first");
    param_set_put(&base, "TimeZone", "UTC");
    param_set_put(&over, "TimeZone", "Europe/Paris");
    param_set_put(&over, "search_path", "app"); /* not reported at login: comes last */
    uint8_t buf[512];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    param_set_write_merged(&base, &over, &pb);
    assert_true(pkt_ok(&pb));
    static const char expect[] = "S\0\0\0\x1b"
                                 "application_name\0first\0"
                                 "S\0\0\0\x1a"
                                 "TimeZone\0Europe/Paris\0"
                                 "S\0\0\0\x14"
                                 "search_path\0app\0";
    assert_int_equal(pb.len, sizeof(expect) - 1);
    assert_memory_equal(buf, expect, sizeof(expect) - 1);
    size_t off = 0;
    const char *n, *v;
    assert_true(param_set_next(&base, &off, &n, &v));
    assert_string_equal(n, "application_name");
    assert_true(param_set_next(&base, &off, &n, &v));
    assert_string_equal(v, "UTC");
    assert_false(param_set_next(&base, &off, &n, &v));
    param_set_free(&base);
    param_set_free(&over);
}

/* The keys are what "%s\x1f%s\x1f%s" and "\x1e%s:%d" make, cut where snprintf cuts them. */
static void test_keys(void **state)
{
    (void)state;
    char key[POOL_KEY_MAX], want[POOL_KEY_MAX], name[POOL_KEY_MAX + 50];
    pool_key(key, "eu-west", "movr", "app");
    assert_string_equal(key, "eu-west\x1fmovr\x1f"
                             "app");
    pool_host_key(key, "10.0.0.1", 5432);
    assert_string_equal(key, "\x1e"
                             "10.0.0.1:5432");
    pool_host_key(key, "db", 0);
    assert_string_equal(key, "\x1e"
                             "db:0");
    pool_host_key(key, "db", -7);
    assert_string_equal(key, "\x1e"
                             "db:-7");
    memset(name, 'n', sizeof(name) - 1);
    name[150] = '\0';
    pool_key(key, name, name, "app");
    assert_true(snprintf(want, sizeof(want), "%s\x1f%s\x1f%s", name, name, "app") > 0);
    assert_string_equal(key, want);
    assert_int_equal(strlen(key), POOL_KEY_MAX - 1);
    pool_host_key(key, name, 65535);
    assert_true(snprintf(want, sizeof(want), "\x1e%s:%d", name, 65535) > 0);
    assert_string_equal(key, want);
    name[150] = 'n';
    name[POOL_KEY_MAX - 4] = '\0'; /* the port cut in the middle */
    pool_host_key(key, name, 65535);
    assert_true(snprintf(want, sizeof(want), "\x1e%s:%d", name, 65535) > 0);
    assert_string_equal(key, want);
    assert_int_equal(key[POOL_KEY_MAX - 2], '6');
}

/*
 * max_user_connections: a user's connections to one host, over its pools
 * (databases, regions, slices), counted and released with the pools' keys.
 */
static void test_max_user_connections(void **state)
{
    (void)state;
    struct pool_limits pl;
    char a[POOL_KEY_MAX], b[POOL_KEY_MAX], other[POOL_KEY_MAX], host[POOL_KEY_MAX],
        host2[POOL_KEY_MAX], user[POOL_KEY_MAX];
    assert_int_equal(pool_limits_init(&pl), 0);
    pool_key(a, "eu", "movr", "app");
    pool_key(b, "eu", "other", "app");
    snprintf(b + strlen(b), sizeof(b) - strlen(b), "\x1f#1"); /* a worker's slice */
    pool_key(other, "eu", "movr", "admin");
    pool_host_key(host, "10.0.0.1", 5432);
    pool_host_key(host2, "10.0.0.2", 5432);
    assert_int_equal(pool_limits_reserve_user(&pl, a, host, 20, 0, 2), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve_user(&pl, b, host, 20, 0, 2), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve_user(&pl, a, host, 20, 0, 2), POOL_USER_FULL);
    assert_int_equal(pool_limits_reserve_user(&pl, b, host, 20, 0, 2), POOL_USER_FULL);
    assert_int_equal(pool_limits_reserve_user(&pl, other, host, 20, 0, 2), POOL_RESERVED);
    assert_int_equal(pool_limits_reserve_user(&pl, a, host2, 20, 0, 2), POOL_RESERVED);
    assert_int_equal(pool_limits_user_servers(&pl, "app"), 3);
    assert_int_equal(pool_limits_user_servers(&pl, "admin"), 1);
    assert_int_equal(pool_limits_user_servers(&pl, "ap"), 0);
    /* A waiter's key (pool_user_key) is the one the pools count under. */
    pool_user_key(user, "app", "10.0.0.1", 5432);
    pool_limits_wait(&pl, user, 1);
    assert_true(pool_limits_release(&pl, b, host));
    assert_int_equal(pool_limits_reserve_user(&pl, a, host, 20, 0, 2), POOL_RESERVED);
    pool_limits_wait(&pl, user, -1);
    /* Released with the old call too (pool and host keys alone). */
    pool_limits_release(&pl, a, host);
    pool_limits_release(&pl, a, host);
    pool_limits_release(&pl, a, host2);
    pool_limits_release(&pl, other, host);
    assert_int_equal(pool_limits_user_servers(&pl, "app"), 0);
    assert_int_equal(pl.counts.n, 0); /* nothing left counted */
    pool_limits_free(&pl);
}

/* Client sessions per user and database: refused past a limit, counted down as they leave. */
struct counted {
    char key[8];
    int n;
};

/* The table under both limit modules: found, made zeroed, keys cut as kept, dropped, grown. */
static void test_count_table(void **state)
{
    (void)state;
    struct count_table t;
    count_table_init(&t, sizeof(struct counted), 8);
    assert_null(count_table_find(&t, "a", false));
    struct counted *a = count_table_find(&t, "a", true);
    assert_non_null(a);
    assert_string_equal(a->key, "a");
    assert_int_equal(a->n, 0);
    a->n = 5;
    assert_ptr_equal(count_table_find(&t, "a", true), a);
    /* a key longer than 7 bytes is kept cut, and found by any spelling that cuts alike */
    struct counted *l = count_table_find(&t, "abcdefghij", true);
    assert_string_equal(l->key, "abcdefg");
    assert_ptr_equal(count_table_find(&t, "abcdefgXYZ", false), l);
    assert_ptr_equal(count_table_find(&t, "abcdefg", false), l);
    assert_null(count_table_find(&t, "abcdef", false));
    struct counted *b = count_table_find(&t, "b", true);
    b->n = 7;
    assert_int_equal(t.n, 3);
    /* a drop moves the last entry into the hole */
    count_table_drop(&t, count_table_find(&t, "a", false));
    assert_int_equal(t.n, 2);
    struct counted *moved = count_table_find(&t, "b", false);
    assert_ptr_equal(moved, count_table_at(&t, 0));
    assert_int_equal(moved->n, 7);
    count_table_drop(&t, count_table_find(&t, "b", false));
    count_table_drop(&t, count_table_find(&t, "abcdefg", false));
    assert_int_equal(t.n, 0);
    /* many: the table grows and keeps every count */
    char key[8];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        struct counted *c = count_table_find(&t, key, true);
        assert_non_null(c);
        c->n = i;
    }
    assert_int_equal(t.n, 100);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(((struct counted *)count_table_find(&t, key, false))->n, i);
    }
    count_table_free(&t);
    assert_int_equal(t.n, 0);
    assert_null(t.items);
}

/*
 * A session whose user and database are both new, when counting the
 * database grows the table: the user's count it just made is counted
 * still (main's one table moved it away under the pointer it kept: a
 * use after free that ASan reports, a lost count without it).
 */
static void test_client_limits_growth(void **state)
{
    (void)state;
    struct client_limits cl;
    char user[16];
    int now = -1;
    assert_int_equal(client_limits_init(&cl), 0);
    for (int i = 0; i < 14; i++) { /* 15 counts: the next user fills 16, its database grows */
        snprintf(user, sizeof(user), "u%d", i);
        assert_int_equal(client_limits_enter(&cl, user, "d", 0, 0, &now), CLIENT_ADMITTED);
    }
    for (int i = 14; i < 40; i++) {
        char database[16];
        snprintf(user, sizeof(user), "u%d", i);
        snprintf(database, sizeof(database), "d%d", i);
        assert_int_equal(client_limits_enter(&cl, user, database, 1, 1, &now), CLIENT_ADMITTED);
        assert_int_equal(client_limits_of(&cl, true, user), 1);
        assert_int_equal(client_limits_of(&cl, false, database), 1);
        assert_int_equal(client_limits_enter(&cl, user, "d", 1, 0, &now), CLIENT_USER_FULL);
    }
    client_limits_free(&cl);
}

static void test_client_limits(void **state)
{
    (void)state;
    struct client_limits cl;
    int now = -1;
    assert_int_equal(client_limits_init(&cl), 0);
    assert_int_equal(client_limits_enter(&cl, "app", "movr", 2, 0, &now), CLIENT_ADMITTED);
    assert_int_equal(client_limits_enter(&cl, "app", "other", 2, 0, &now), CLIENT_ADMITTED);
    assert_int_equal(client_limits_enter(&cl, "app", "movr", 2, 0, &now), CLIENT_USER_FULL);
    assert_int_equal(now, 2);
    assert_int_equal(client_limits_enter(&cl, "bob", "movr", 0, 1, &now), CLIENT_DB_FULL);
    assert_int_equal(now, 1);
    assert_int_equal(client_limits_enter(&cl, "bob", "movr", 0, 0, &now), CLIENT_ADMITTED);
    assert_int_equal(client_limits_of(&cl, true, "app"), 2);
    assert_int_equal(client_limits_of(&cl, false, "movr"), 2);
    assert_int_equal(client_limits_of(&cl, true, "movr"),
                     0); /* a user's count is not a database's */
    /* the copy: the users', then the databases', as far as room allows */
    struct client_count copy[4];
    assert_int_equal(client_limits_copy(&cl, copy, 4), 4);
    assert_true(copy[0].is_user && copy[1].is_user && !copy[2].is_user && !copy[3].is_user);
    assert_int_equal(copy[0].clients + copy[1].clients, 3);
    assert_int_equal(client_limits_copy(&cl, copy, 3), 3);
    assert_false(copy[2].is_user);
    client_limits_leave(&cl, "app", "movr");
    client_limits_leave(&cl, "app", "other");
    client_limits_leave(&cl, "bob", "movr");
    assert_int_equal(cl.users.n + cl.databases.n, 0);
    assert_int_equal(client_limits_copy(&cl, copy, 4), 0);
    /* Names longer than kept are counted by what is kept. */
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(client_limits_enter(&cl, longname, "movr", 1, 0, &now), CLIENT_ADMITTED);
    assert_int_equal(client_limits_enter(&cl, longname, "movr", 1, 0, &now), CLIENT_USER_FULL);
    client_limits_leave(&cl, longname, "movr");
    assert_int_equal(cl.users.n + cl.databases.n, 0);
    client_limits_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_pool_size),
        cmocka_unit_test(test_pool_size_unlimited),
        cmocka_unit_test(test_wait_reports),
        cmocka_unit_test(test_max_db_connections),
        cmocka_unit_test(test_max_user_connections),
        cmocka_unit_test(test_count_table),
        cmocka_unit_test(test_client_limits),
        cmocka_unit_test(test_client_limits_growth),
        cmocka_unit_test(test_waiters_and_cleanup),
        cmocka_unit_test(test_many_pools),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_merged_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
