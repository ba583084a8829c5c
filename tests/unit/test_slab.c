/*
 * test_slab.c
 *    Unit tests for proxy/runtime/slab.c (cmocka, TAP output): objects
 *    come zeroed, apart and aligned; a page is lent from until full and
 *    again once one of its objects is back; pages go back to the system
 *    as they empty, one kept as the spare; one size per slab.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/asan.h"
#include "proxy/runtime/slab.h"

#if defined(PGNEAR_ASAN)
#include <sanitizer/asan_interface.h>
#endif

/* About a session's size: a page holds a hundred and some. */
#define OBJ  1000
#define MANY 1000

static void test_objects_zeroed_apart_aligned(void **state)
{
    (void)state;
    static char *objs[MANY];
    struct slab sl;
    slab_init(&sl);
    for (int i = 0; i < MANY; i++) {
        objs[i] = slab_alloc(&sl, OBJ);
        assert_non_null(objs[i]);
        assert_int_equal((uintptr_t)objs[i] % 16, 0);
        for (int b = 0; b < OBJ; b++)
            assert_int_equal(objs[i][b], 0);
        memset(objs[i], 0xa5, OBJ); /* a neighbour written whole overlaps nobody */
    }
    for (int i = 0; i < MANY; i++)
        for (int b = 0; b < OBJ; b++)
            assert_int_equal((unsigned char)objs[i][b], 0xa5);
    assert_int_equal(sl.lent, MANY);
    assert_int_equal(sl.pages, (MANY + sl.per_page - 1) / sl.per_page);
    /* Back and lent again (every page is full but its own): zeroed once more. */
    static char *fill[MANY];
    size_t nfill = 0;
    while (sl.lent % sl.per_page != 0)
        assert_non_null(fill[nfill++] = slab_alloc(&sl, OBJ)); /* the last page filled */
    size_t pages = sl.pages;
    slab_free(&sl, objs[7]);
    char *again = slab_alloc(&sl, OBJ);
    assert_ptr_equal(again, objs[7]);
    assert_int_equal(sl.pages, pages);
    for (int b = 0; b < OBJ; b++)
        assert_int_equal(again[b], 0);
    for (size_t i = 0; i < nfill; i++)
        slab_free(&sl, fill[i]);
    for (int i = 0; i < MANY; i++)
        slab_free(&sl, objs[i]);
    assert_int_equal(sl.lent, 0);
    slab_destroy(&sl);
    assert_int_equal(sl.pages, 0);
}

/* A crowd that leaves gives its pages back, all but the spare. */
static void test_pages_go_back_as_they_empty(void **state)
{
    (void)state;
    static void *objs[MANY];
    struct slab sl;
    slab_init(&sl);
    for (int i = 0; i < MANY; i++)
        assert_non_null(objs[i] = slab_alloc(&sl, OBJ));
    size_t full = sl.pages;
    assert_true(full >= 5);
    /* Every other one back: no page empties. */
    for (int i = 0; i < MANY; i += 2)
        slab_free(&sl, objs[i]);
    assert_int_equal(sl.pages, full);
#if defined(PGNEAR_ASAN)
    /* A use after free is caught: what is back is poisoned, past its free list word. */
    assert_true(__asan_address_is_poisoned((char *)objs[0] + sizeof(void *)));
    assert_true(__asan_address_is_poisoned((char *)objs[0] + OBJ - 1));
    assert_false(__asan_address_is_poisoned((char *)objs[1] + OBJ - 1));
#endif
    /* New ones fill the holes: no page is mapped. */
    for (int i = 0; i < MANY; i += 2)
        assert_non_null(objs[i] = slab_alloc(&sl, OBJ));
    assert_int_equal(sl.pages, full);
    for (int i = 0; i < MANY; i++)
        slab_free(&sl, objs[i]);
    assert_int_equal(sl.pages, 1); /* the spare */
    assert_non_null(objs[0] = slab_alloc(&sl, OBJ));
    assert_int_equal(sl.pages, 1); /* lent from the spare */
    slab_free(&sl, objs[0]);
    slab_destroy(&sl);
    assert_int_equal(sl.pages, 0);
}

/*
 * A slab told to keep spares (logins) keeps that many empty pages as its
 * objects come back, lends from them before it maps another, and lets
 * them go but one when trimmed.
 */
static void test_spares_kept_then_trimmed(void **state)
{
    (void)state;
    static void *objs[MANY];
    struct slab sl;
    slab_init(&sl);
    slab_keep_spares(&sl, 3);
    for (int i = 0; i < MANY; i++)
        assert_non_null(objs[i] = slab_alloc(&sl, OBJ));
    size_t full = sl.pages;
    assert_true(full >= 5);
    for (int i = 0; i < MANY; i++)
        slab_free(&sl, objs[i]);
    assert_int_equal(sl.lent, 0);
    assert_int_equal(sl.pages, 3); /* the spares; the rest unmapped */
    for (size_t i = 0; i < 3 * sl.per_page; i++)
        assert_non_null(objs[i] = slab_alloc(&sl, OBJ));
    assert_int_equal(sl.pages, 3); /* lent from the spares, none mapped */
    assert_non_null(objs[3 * sl.per_page] = slab_alloc(&sl, OBJ));
    assert_int_equal(sl.pages, 4);
    for (size_t i = 0; i <= 3 * sl.per_page; i++)
        slab_free(&sl, objs[i]);
    assert_int_equal(sl.pages, 3);
    slab_trim(&sl);
    assert_int_equal(sl.pages, 1);
    slab_trim(&sl); /* one stays */
    assert_int_equal(sl.pages, 1);
    slab_destroy(&sl);
    assert_int_equal(sl.pages, 0);
}

/* A slab serves the size of its first object: a larger one is refused. */
static void test_one_size(void **state)
{
    (void)state;
    struct slab sl;
    slab_init(&sl);
    void *a = slab_alloc(&sl, 24);
    assert_non_null(a);
    assert_int_equal(sl.size, 32);
    assert_non_null(slab_alloc(&sl, 32)); /* what the rounding leaves room for */
    assert_null(slab_alloc(&sl, 33));
    slab_free(&sl, NULL); /* nothing */
    slab_destroy(&sl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects_zeroed_apart_aligned),
        cmocka_unit_test(test_pages_go_back_as_they_empty),
        cmocka_unit_test(test_spares_kept_then_trimmed),
        cmocka_unit_test(test_one_size),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("slab", tests, NULL, NULL);
}
