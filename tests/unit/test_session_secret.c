/*
 * test_session_secret.c — the sessions' SCRAM keys, one copy a worker for
 * the same keys: shared and counted, apart when any part differs, freed
 * with the last holder, the table with the last copy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "protocol/scram.h"
#include "proxy/base/intern.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session_secret.h"

static void keys(uint8_t *client_key, struct scram_verifier *v, uint8_t seed)
{
    memset(client_key, seed, SCRAM_KEY_LEN);
    memset(v, 0, sizeof(*v));
    v->iterations = 4096;
    v->salt_len = 16;
    memset(v->salt, seed + 1, v->salt_len);
    memset(v->stored_key, seed + 2, SCRAM_KEY_LEN);
    memset(v->server_key, seed + 3, SCRAM_KEY_LEN);
}

static void test_shared_and_counted(void **state)
{
    (void)state;
    struct worker w;
    memset(&w, 0, sizeof(w));
    uint8_t ck[SCRAM_KEY_LEN], ck2[SCRAM_KEY_LEN];
    struct scram_verifier v, v2;
    keys(ck, &v, 1);
    keys(ck2, &v2, 1);
    const struct session_secret *a = session_secret_take(&w, ck, &v);
    const struct session_secret *b = session_secret_take(&w, ck2, &v2);
    assert_non_null(a);
    assert_ptr_equal(a, b); /* the same keys: one copy */
    assert_int_equal(intern_holders(w.secrets), 2);
    assert_memory_equal(a->client_key, ck, SCRAM_KEY_LEN);
    /* Another salt (the same password in another region): another copy. */
    v2.salt[0] ^= 1;
    const struct session_secret *c = session_secret_take(&w, ck2, &v2);
    assert_non_null(c);
    assert_ptr_not_equal(a, c);
    /* Another ClientKey in the same bucket's first bytes: apart too. */
    keys(ck2, &v2, 1);
    ck2[SCRAM_KEY_LEN - 1] ^= 1;
    const struct session_secret *d = session_secret_take(&w, ck2, &v2);
    assert_ptr_not_equal(a, d);
    assert_ptr_not_equal(c, d);
    session_secret_drop(&w, a);
    assert_int_equal(intern_copies(w.secrets), 3); /* b is a: still held */
    session_secret_drop(&w, b);
    session_secret_drop(&w, c);
    assert_non_null(w.secrets);
    session_secret_drop(&w, d);
    assert_null(w.secrets); /* the last copy gone: the table too */
    session_secret_drop(&w, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_and_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
