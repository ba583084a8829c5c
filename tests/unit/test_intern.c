/*
 * test_intern.c — one counted copy of equal byte strings: equal bytes
 * share a copy, unequal ones (any byte, or the length) do not; a copy
 * lives while held; the table grows with many copies, shrinks as they
 * go, and goes with the last.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/base/intern.h"

static void test_equal_bytes_share(void **state)
{
    (void)state;
    struct intern_table *t = NULL;
    char a[] = "bench\0bench\0client_encoding\0UTF8";
    char b[sizeof(a)];
    memcpy(b, a, sizeof(a));
    const char *ca = intern_take(&t, a, sizeof(a), false);
    const char *cb = intern_take(&t, b, sizeof(b), false);
    assert_non_null(ca);
    assert_ptr_equal(ca, cb);
    assert_ptr_not_equal(ca, a); /* a copy, not the caller's bytes */
    assert_memory_equal(ca, a, sizeof(a));
    assert_int_equal(intern_copies(t), 1);
    assert_int_equal(intern_holders(t), 2);
    /* One byte other, or one fewer: other copies. */
    b[3] ^= 1;
    const char *cc = intern_take(&t, b, sizeof(b), false);
    const char *cd = intern_take(&t, a, sizeof(a) - 1, false);
    assert_ptr_not_equal(cc, ca);
    assert_ptr_not_equal(cd, ca);
    assert_ptr_not_equal(cd, cc);
    assert_int_equal(intern_copies(t), 3);
    /* No bytes at all is a string too. */
    const char *ce = intern_take(&t, "", 0, false);
    assert_non_null(ce);
    assert_ptr_equal(intern_take(&t, "x", 0, false), ce);
    intern_drop(&t, ce);
    intern_drop(&t, ce);
    intern_drop(&t, ca);
    assert_memory_equal(cb, a, sizeof(a)); /* still held once */
    intern_drop(&t, cb);
    intern_drop(&t, cc);
    assert_non_null(t);
    assert_int_equal(intern_copies(t), 1);
    intern_drop(&t, cd);
    assert_null(t); /* the last copy gone: the table too */
    intern_drop(&t, NULL);
    intern_drop(&t, ca); /* no table: nothing */
}

/* Many copies: found again after the table grew, aligned, and let go in another order. */
static void test_many_copies(void **state)
{
    (void)state;
    enum { N = 5000 };
    static const void *copy[N];
    struct intern_table *t = NULL;
    char key[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "application_name=%d", i);
        copy[i] = intern_take(&t, key, (size_t)n, i % 2 == 0);
        assert_non_null(copy[i]);
        assert_int_equal((uintptr_t)copy[i] % 8, 0);
    }
    assert_int_equal(intern_copies(t), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "application_name=%d", i);
        assert_ptr_equal(intern_take(&t, key, (size_t)n, false), copy[i]);
    }
    assert_int_equal(intern_holders(t), 2 * N);
    for (int i = N - 1; i >= 0; i--)
        intern_drop(&t, copy[i]);
    assert_int_equal(intern_copies(t), N);
    assert_int_equal(intern_holders(t), N);
    for (int i = 0; i < N; i += 2)
        intern_drop(&t, copy[i]);
    assert_int_equal(intern_copies(t), N / 2);
    for (int i = 1; i < N; i += 2) {
        int n = snprintf(key, sizeof(key), "application_name=%d", i);
        assert_memory_equal(copy[i], key, (size_t)n); /* the table shrank: still found, intact */
        intern_drop(&t, copy[i]);
    }
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_bytes_share),
        cmocka_unit_test(test_many_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
