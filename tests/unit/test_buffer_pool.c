/*
 * test_buffer_pool.c
 *    Unit tests for proxy/runtime/buffer_pool.c (cmocka, TAP output): the
 *    quiet buffer takes nothing and gives nothing, the spares are reused
 *    and bounded, and a buffer that holds bytes is never lent again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "proxy/runtime/buffer_pool.h"

static void test_quiet_buffer_takes_nothing(void **state)
{
    (void)state;
    struct buffer_pool bp;
    assert_int_equal(buffer_pool_init(&bp), 0);
    assert_int_equal(evbuffer_get_length(bp.quiet), 0);
    /* A write that forgot to wake its socket is refused, as out of memory is. */
    assert_int_equal(evbuffer_add(bp.quiet, "x", 1), -1);
    assert_int_equal(evbuffer_get_length(bp.quiet), 0);
    struct evbuffer *src = evbuffer_new();
    assert_non_null(src);
    assert_int_equal(evbuffer_add(src, "abc", 3), 0);
    assert_int_equal(evbuffer_add_buffer(bp.quiet, src), -1);
    assert_int_equal(evbuffer_get_length(src), 3); /* the bytes stay with their owner */
    assert_int_equal(evbuffer_prepend(bp.quiet, "y", 1), -1);
    char c;
    assert_int_equal(evbuffer_copyout(bp.quiet, &c, 1), 0);
    assert_null(evbuffer_pullup(bp.quiet, 1));
    evbuffer_free(src);
    buffer_pool_free(&bp);
}

static void test_spares_are_reused_and_bounded(void **state)
{
    (void)state;
    struct buffer_pool bp;
    assert_int_equal(buffer_pool_init(&bp), 0);
    struct evbuffer *a = buffer_pool_get(&bp);
    assert_non_null(a);
    assert_ptr_not_equal(a, bp.quiet);
    buffer_pool_put(&bp, a);
    assert_int_equal(bp.nspare, 1);
    assert_ptr_equal(buffer_pool_get(&bp), a); /* no malloc while a spare waits */
    assert_int_equal(bp.nspare, 0);
    buffer_pool_put(&bp, a);

    static struct evbuffer *many[BUFFER_POOL_SPARES + 10];
    for (size_t i = 0; i < BUFFER_POOL_SPARES + 10; i++)
        assert_non_null(many[i] = buffer_pool_get(&bp));
    assert_int_equal(bp.nspare, 0);
    for (size_t i = 0; i < BUFFER_POOL_SPARES + 10; i++)
        buffer_pool_put(&bp, many[i]); /* past the bound, freed (ASan sees no leak) */
    assert_int_equal(bp.nspare, BUFFER_POOL_SPARES);
    buffer_pool_free(&bp);
    assert_int_equal(bp.nspare, 0);
    assert_null(bp.quiet);
}

static void test_a_buffer_with_bytes_is_not_lent(void **state)
{
    (void)state;
    struct buffer_pool bp;
    assert_int_equal(buffer_pool_init(&bp), 0);
    struct evbuffer *b = buffer_pool_get(&bp);
    assert_int_equal(evbuffer_add(b, "hello", 5), 0);
    buffer_pool_put(&bp, b); /* freed (ASan sees no leak), never another's */
    assert_int_equal(bp.nspare, 0);
    b = buffer_pool_get(&bp);
    assert_int_equal(evbuffer_get_length(b), 0);
    buffer_pool_put(&bp, b);
    assert_int_equal(bp.nspare, 1);
    buffer_pool_free(&bp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_buffer_takes_nothing),
        cmocka_unit_test(test_spares_are_reused_and_bounded),
        cmocka_unit_test(test_a_buffer_with_bytes_is_not_lent),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("buffer_pool", tests, NULL, NULL);
}
