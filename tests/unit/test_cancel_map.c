/*
 * test_cancel_map.c
 *    Unit tests for proxy/base/cancel_map.c (cmocka, TAP output).  Large runs
 *    are cross-checked against a plain array of what should be there.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proxy/base/cancel_map.h"

/* An owner in these tests: the tag it is kept under is what it holds. */
struct owner {
    uint32_t tag;
};

static uint32_t owner_tag(const void *o)
{
    return ((const struct owner *)o)->tag;
}

/* Distinct owners for the small tests. */
static struct owner owners[8];

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

/* xorshift64* */
static uint32_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static void shuffle(size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_next() % i;
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* owner, given tag first: whether the map took it. */
static bool insert_as(struct cancel_map *m, uint32_t tag, struct owner *owner, bool *oom)
{
    owner->tag = tag;
    return cancel_map_insert(m, owner, owner_tag, oom);
}

static void insert_ok(struct cancel_map *m, uint32_t tag, struct owner *owner)
{
    bool oom = true;
    assert_true(insert_as(m, tag, owner, &oom));
    assert_false(oom);
}

static void *find(const struct cancel_map *m, uint32_t tag)
{
    return cancel_map_find(m, tag, owner_tag);
}

static bool remove_owner(struct cancel_map *m, const struct owner *owner)
{
    return cancel_map_remove(m, owner, owner_tag);
}

/* ---- basics ---- */

static void test_empty(void **state)
{
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    assert_int_equal(m.count, 0);
    assert_null(find(&m, 0));
    assert_null(find(&m, 12345));
    owners[0].tag = 12345;
    assert_false(remove_owner(&m, &owners[0]));
    cancel_map_free(&m);
}

static void test_insert_find_remove(void **state)
{
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 16), 0);
    insert_ok(&m, 0xDEADBEEF, &owners[0]);
    insert_ok(&m, 0, &owners[1]);
    insert_ok(&m, 0xFFFFFFFF, &owners[2]);
    assert_int_equal(m.count, 3);
    assert_ptr_equal(find(&m, 0xDEADBEEF), &owners[0]);
    assert_ptr_equal(find(&m, 0), &owners[1]);
    assert_ptr_equal(find(&m, 0xFFFFFFFF), &owners[2]);
    assert_null(find(&m, 0xDEADBEEE));

    assert_true(remove_owner(&m, &owners[1]));
    assert_int_equal(m.count, 2);
    assert_null(find(&m, 0));
    assert_ptr_equal(find(&m, 0xDEADBEEF), &owners[0]);
    assert_ptr_equal(find(&m, 0xFFFFFFFF), &owners[2]);
    assert_false(remove_owner(&m, &owners[1]));
    cancel_map_free(&m);
}

static void test_duplicate_refused(void **state)
{
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    insert_ok(&m, 77, &owners[0]);
    bool oom = true;
    assert_false(insert_as(&m, 77, &owners[1], &oom));
    assert_false(oom);
    assert_false(insert_as(&m, 77, &owners[0], &oom));
    assert_false(oom);
    assert_int_equal(m.count, 1);
    assert_ptr_equal(find(&m, 77), &owners[0]);
    cancel_map_free(&m);
}

static void test_remove_needs_owner(void **state)
{
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    insert_ok(&m, 500, &owners[0]);
    owners[1].tag = 500; /* the same tag, another owner */
    assert_false(remove_owner(&m, &owners[1]));
    assert_false(remove_owner(&m, NULL));
    assert_int_equal(m.count, 1);
    assert_ptr_equal(find(&m, 500), &owners[0]);
    assert_true(remove_owner(&m, &owners[0]));
    assert_int_equal(m.count, 0);
    assert_null(find(&m, 500));
    /* The tag is free again, for someone else. */
    insert_ok(&m, 500, &owners[1]);
    assert_ptr_equal(find(&m, 500), &owners[1]);
    cancel_map_free(&m);
}

/*
 * A crowd that leaves takes its table's size with it: 20,000 entries
 * grow the table; as they go it halves, never below what it was made
 * with, and every entry left is found all the way down.
 */
static void test_shrinks_as_a_crowd_leaves(void **state)
{
    (void)state;
    struct owner *crowd = calloc(20000, sizeof(*crowd));
    assert_non_null(crowd);
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    for (uint32_t t = 0; t < 20000; t++)
        insert_ok(&m, t * 2654435761u, &crowd[t]);
    size_t grown = m.mask + 1;
    assert_true(grown * 3 >= 20000 * 4); /* three quarters full at most */
    for (uint32_t t = 0; t < 19990; t++) {
        assert_true(remove_owner(&m, &crowd[t]));
        assert_true(m.count * 4 <= (m.mask + 1) * 3);
        if (t % 997 == 0)
            for (uint32_t u = t + 1; u < 20000; u += 37)
                assert_ptr_equal(find(&m, u * 2654435761u), &crowd[u]);
    }
    assert_int_equal(m.count, 10);
    assert_int_equal(m.mask + 1, 64);
    for (uint32_t t = 19990; t < 20000; t++)
        assert_ptr_equal(find(&m, t * 2654435761u), &crowd[t]);
    cancel_map_free(&m);
    free(crowd);
}

/* Capacities that are not powers of two still give a working map. */
static void test_odd_capacity(void **state)
{
    static const size_t caps[] = {0, 1, 3, 7, 100, 1000};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        struct owner some[200];
        struct cancel_map m;
        assert_int_equal(cancel_map_init(&m, caps[c]), 0);
        assert_int_equal((m.mask + 1) & m.mask, 0);
        for (uint32_t t = 0; t < 200; t++)
            insert_ok(&m, t * 7919u, &some[t]);
        for (uint32_t t = 0; t < 200; t++)
            assert_ptr_equal(find(&m, t * 7919u), &some[t]);
        cancel_map_free(&m);
    }
}

/* ---- many random tags against a reference array ---- */

struct ref {
    uint32_t *tags;
    size_t n;
};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* n distinct random tags, sorted for bsearch, then the order to use them in. */
static void make_tags(struct ref *r, size_t n, uint64_t seed)
{
    rng_seed(seed);
    r->tags = malloc(n * sizeof(*r->tags));
    assert_non_null(r->tags);
    r->n = 0;
    while (r->n < n) {
        for (size_t i = r->n; i < n; i++)
            r->tags[i] = rng_next();
        qsort(r->tags, n, sizeof(*r->tags), cmp_u32);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (k == 0 || r->tags[i] != r->tags[k - 1])
                r->tags[k++] = r->tags[i];
        r->n = k;
    }
}

static bool ref_has(const struct ref *r, uint32_t tag)
{
    return bsearch(&tag, r->tags, r->n, sizeof(tag), cmp_u32) != NULL;
}

/* Owner of tags[i] in these tests. */
static struct owner *owner_of(size_t i, struct owner *base)
{
    return base + i;
}

static void test_growth_100000(void **state)
{
    const size_t n = 100000;
    struct ref r;
    make_tags(&r, n, 42);
    struct owner *base = calloc(n, sizeof(*base));
    assert_non_null(base);
    size_t *order = malloc(n * sizeof(*order));
    assert_non_null(order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    shuffle(order, n);

    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 8), 0);
    for (size_t k = 0; k < n; k++)
        insert_ok(&m, r.tags[order[k]], owner_of(order[k], base));
    assert_int_equal(m.count, n);
    assert_true(m.mask + 1 >= n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(find(&m, r.tags[i]), owner_of(i, base));
    for (int probe = 0; probe < 100000; probe++) {
        uint32_t t = rng_next();
        assert_true((find(&m, t) != NULL) == ref_has(&r, t));
    }
    cancel_map_free(&m);
    free(order);
    free(base);
    free(r.tags);
}

/* Every tag: found with its owner when present, absent otherwise. */
static void check_all(const struct cancel_map *m, const struct ref *r, const bool *present,
                      struct owner *base)
{
    size_t live = 0;
    for (size_t i = 0; i < r->n; i++) {
        void *got = find(m, r->tags[i]);
        if (present[i]) {
            assert_ptr_equal(got, owner_of(i, base));
            live++;
        } else {
            assert_null(got);
        }
    }
    assert_int_equal(m->count, live);
}

static void delete_in_random_order(size_t n, uint64_t seed)
{
    struct ref r;
    make_tags(&r, n, seed);
    struct owner *base = calloc(n, sizeof(*base));
    bool *present = malloc(n * sizeof(*present));
    size_t *order = malloc(n * sizeof(*order));
    assert_true(base && present && order);
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 8), 0);
    for (size_t i = 0; i < n; i++) {
        insert_ok(&m, r.tags[i], owner_of(i, base));
        present[i] = true;
        order[i] = i;
    }
    shuffle(order, n);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        assert_true(remove_owner(&m, owner_of(i, base)));
        present[i] = false;
        check_all(&m, &r, present, base);
    }
    assert_int_equal(m.count, 0);
    cancel_map_free(&m);
    free(order);
    free(present);
    free(base);
    free(r.tags);
}

static void test_delete_random_orders(void **state)
{
    for (uint64_t seed = 1; seed <= 10; seed++)
        delete_in_random_order(600, seed);
    delete_in_random_order(3000, 99);
}

/* Random inserts and removes, the map kept dense by a small tag space. */
static void test_mixed_operations(void **state)
{
    const size_t n = 2000;
    struct ref r;
    make_tags(&r, n, 7);
    struct owner *base = calloc(n, sizeof(*base));
    bool *present = calloc(n, sizeof(*present));
    assert_true(base && present);
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    for (int step = 0; step < 200000; step++) {
        size_t i = rng_next() % n;
        bool oom = true;
        if (present[i]) {
            assert_true(remove_owner(&m, owner_of(i, base)));
            present[i] = false;
        } else {
            assert_true(insert_as(&m, r.tags[i], owner_of(i, base), &oom));
            present[i] = true;
        }
        if (step % 5000 == 0)
            check_all(&m, &r, present, base);
    }
    check_all(&m, &r, present, base);
    cancel_map_free(&m);
    free(present);
    free(base);
    free(r.tags);
}

/* ---- tags sharing a home slot ---- */

/* Where tag lands in an empty map of this capacity: its home slot. */
static size_t home_of(uint32_t tag, size_t capacity)
{
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, capacity), 0);
    insert_ok(&m, tag, &owners[0]);
    size_t home = SIZE_MAX;
    for (size_t i = 0; i <= m.mask; i++)
        if (m.slots[i] != NULL)
            home = i;
    cancel_map_free(&m);
    assert_true(home != SIZE_MAX);
    return home;
}

/* Collects want tags whose home is slot home (capacity 64), starting the search at from. */
static size_t tags_with_home(size_t home, uint32_t *out, size_t want, uint32_t from)
{
    size_t k = 0;
    for (uint32_t t = from; k < want; t++)
        if (home_of(t, 64) == home)
            out[k++] = t;
    return k;
}

#define CLUSTER 8

/* Tags homed at 62, 63 (the last slot) and 0, so the probe run wraps around. */
static void make_cluster(uint32_t *tags)
{
    tags_with_home(62, tags, 3, 1);
    tags_with_home(63, tags + 3, 3, 1);
    tags_with_home(0, tags + 6, 2, 1);
}

static void test_same_home_slot(void **state)
{
    uint32_t tags[CLUSTER];
    make_cluster(tags);
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    for (size_t i = 0; i < CLUSTER; i++)
        insert_ok(&m, tags[i], &owners[i]);
    assert_int_equal(m.mask, 63); /* no growth, so the collisions are real */
    for (size_t i = 0; i < CLUSTER; i++)
        assert_ptr_equal(find(&m, tags[i]), &owners[i]);
    /* Eight tags share three home slots: the run fills 62, 63 and wraps to 0..5. */
    size_t used = 0;
    for (size_t i = 0; i <= m.mask; i++)
        used += m.slots[i] != NULL;
    assert_int_equal(used, CLUSTER);
    assert_non_null(m.slots[63]);
    assert_non_null(m.slots[5]);
    cancel_map_free(&m);
}

static void remove_in_order(const uint32_t *tags, const size_t *order)
{
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    for (size_t i = 0; i < CLUSTER; i++)
        insert_ok(&m, tags[i], &owners[i]);
    bool present[CLUSTER];
    memset(present, 1, sizeof(present));
    for (size_t k = 0; k < CLUSTER; k++) {
        size_t gone = order[k];
        assert_true(remove_owner(&m, &owners[gone]));
        present[gone] = false;
        for (size_t i = 0; i < CLUSTER; i++)
            assert_ptr_equal(find(&m, tags[i]), present[i] ? &owners[i] : NULL);
    }
    assert_int_equal(m.count, 0);
    cancel_map_free(&m);
}

/* Heap's algorithm over all 8! removal orders of the wrapping cluster. */
static void permute(const uint32_t *tags, size_t *order, size_t k, size_t *runs)
{
    if (k == 1) {
        remove_in_order(tags, order);
        (*runs)++;
        return;
    }
    for (size_t i = 0; i < k; i++) {
        permute(tags, order, k - 1, runs);
        size_t j = k % 2 == 0 ? i : 0;
        size_t t = order[j];
        order[j] = order[k - 1];
        order[k - 1] = t;
    }
}

static void test_same_home_every_removal_order(void **state)
{
    uint32_t tags[CLUSTER];
    make_cluster(tags);
    size_t order[CLUSTER], runs = 0;
    for (size_t i = 0; i < CLUSTER; i++)
        order[i] = i;
    permute(tags, order, CLUSTER, &runs);
    assert_int_equal(runs, 40320);
}

/* Reinserting after removals inside a cluster finds the entries still there. */
static void test_same_home_reinsert(void **state)
{
    uint32_t tags[CLUSTER];
    make_cluster(tags);
    struct cancel_map m;
    assert_int_equal(cancel_map_init(&m, 64), 0);
    for (size_t i = 0; i < CLUSTER; i++)
        insert_ok(&m, tags[i], &owners[i]);
    assert_true(remove_owner(&m, &owners[1]));
    assert_true(remove_owner(&m, &owners[4]));
    bool oom;
    /* Still present, so refused even though a hole opened before them. */
    struct owner other;
    assert_false(insert_as(&m, tags[5], &other, &oom));
    assert_false(insert_as(&m, tags[7], &other, &oom));
    insert_ok(&m, tags[4], &owners[4]);
    insert_ok(&m, tags[1], &owners[1]);
    for (size_t i = 0; i < CLUSTER; i++)
        assert_ptr_equal(find(&m, tags[i]), &owners[i]);
    assert_int_equal(m.count, CLUSTER);
    cancel_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_duplicate_refused),
        cmocka_unit_test(test_remove_needs_owner),
        cmocka_unit_test(test_odd_capacity),
        cmocka_unit_test(test_growth_100000),
        cmocka_unit_test(test_delete_random_orders),
        cmocka_unit_test(test_mixed_operations),
        cmocka_unit_test(test_same_home_slot),
        cmocka_unit_test(test_same_home_every_removal_order),
        cmocka_unit_test(test_same_home_reinsert),
        cmocka_unit_test(test_shrinks_as_a_crowd_leaves),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("cancel_map", tests, NULL, NULL);
}
