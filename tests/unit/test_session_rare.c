/*
 * test_session_rare.c — the fields few sessions set, apart: shared zeros
 * until one is set, the session's own part while any is, given back once
 * all are clear, and everything it holds freed with the session.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proxy/session/session_rare.h"

static void test_own_and_settle(void **state)
{
    (void)state;
    const struct session_rare *rare = &session_rare_none;
    assert_null(rare->move);
    assert_null(rare->notify);
    session_rare_settle(&rare, false); /* none: nothing */
    assert_ptr_equal(rare, &session_rare_none);
    struct session_rare *own = session_rare_own(&rare);
    assert_non_null(own);
    assert_ptr_not_equal(own, &session_rare_none);
    assert_ptr_equal(rare, own);
    assert_ptr_equal(session_rare_own(&rare), own); /* one part a session */
    /* A field set: the part stays at the callback's end; cleared: it goes. */
    static int marker;
    own->notify_watch = (struct notify_watch *)&marker;
    session_rare_settle(&rare, false);
    assert_ptr_equal(rare, own);
    session_rare_own(&rare)->notify_watch = NULL;
    session_rare_settle(&rare, false);
    assert_ptr_equal(rare, &session_rare_none);
    assert_null(session_rare_none.notify_watch);
}

/* As the session is freed: its own strings go with the part (ASan tells a leak). */
static void test_free_all(void **state)
{
    (void)state;
    const struct session_rare *rare = &session_rare_none;
    struct session_rare *own = session_rare_own(&rare);
    assert_non_null(own);
    own->peer_label = strdup("fetcher for client 7");
    own->txn_region = strdup("eu-west");
    session_rare_settle(&rare, false); /* set: kept */
    assert_ptr_equal(rare, own);
    session_rare_settle(&rare, true);
    assert_ptr_equal(rare, &session_rare_none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_and_settle),
        cmocka_unit_test(test_free_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
