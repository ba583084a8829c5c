/*
 * test_db_ddl.c
 *    Unit tests for protocol/db_ddl.c (cmocka, TAP output): DROP DATABASE
 *    (IF EXISTS, WITH (FORCE), (FORCE)), ALTER DATABASE ... RENAME TO and
 *    CREATE DATABASE ... TEMPLATE [=] read for the database they name
 *    (folded, quoted, cut to 63 bytes, comments and a ';' around), and
 *    the texts that name none (other statements and other ALTER DATABASE
 *    forms, TEMPLATE DEFAULT, two statements, unterminated quotes), every
 *    prefix copied to a buffer of exactly its length for the sanitizer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/db_ddl.h"

static struct db_ddl ddl;

static int parse(const char *text)
{
    size_t n = strlen(text);
    uint8_t *copy = malloc(n > 0 ? n : 1);
    assert_non_null(copy);
    memcpy(copy, text, n);
    int rc = db_ddl_parse(copy, n, &ddl);
    free(copy);
    return rc;
}

static void named(const char *text, enum db_ddl_kind kind, const char *database)
{
    assert_int_equal(parse(text), 1);
    assert_int_equal(ddl.kind, kind);
    assert_string_equal(ddl.database, database);
}

static void none(const char *text)
{
    assert_int_equal(parse(text), 0);
    assert_int_equal(ddl.kind, DB_DDL_NONE);
    assert_string_equal(ddl.database, "");
}

static void test_drop(void **state)
{
    (void)state;
    named("DROP DATABASE Shop", DB_DDL_DROP, "shop");
    named("  drop database if exists \"Shop\"\"s\" ;", DB_DDL_DROP, "Shop\"s");
    named("DROP DATABASE shop WITH (FORCE)", DB_DDL_DROP, "shop");
    named("/* c */ DROP -- x\n DATABASE shop (force);", DB_DDL_DROP, "shop");
}

static void test_rename_template(void **state)
{
    (void)state;
    named("ALTER DATABASE shop RENAME TO shop_old", DB_DDL_RENAME, "shop");
    named("CREATE DATABASE copy TEMPLATE shop", DB_DDL_TEMPLATE, "shop");
    named("CREATE DATABASE copy WITH OWNER = app TEMPLATE = \"Shop\" ENCODING 'UTF8';",
          DB_DDL_TEMPLATE, "Shop");
}

static void test_cut(void **state)
{
    (void)state;
    char text[200], want[64];
    memset(want, 'a', 63);
    want[63] = '\0';
    snprintf(text, sizeof(text), "DROP DATABASE %s%s", want, "bbbbbb");
    named(text, DB_DDL_DROP, want);
}

static void test_none(void **state)
{
    (void)state;
    none("");
    none("SELECT 1");
    none("DROP TABLE shop");
    none("DROP DATABASE");
    none("DROP DATABASE IF shop");
    none("DROP DATABASE shop; SELECT 1");
    none("DROP DATABASE shop WITH (FORCE");
    none("ALTER DATABASE shop SET work_mem = '1MB'");
    none("ALTER DATABASE shop RENAME TO");
    none("CREATE DATABASE copy");
    none("CREATE DATABASE copy TEMPLATE DEFAULT");
    none("CREATE DATABASE copy TEMPLATE");
    none("DROP DATABASE \"shop");
    none("DROP DATABASE \"\"");
    none("COMMIT");
}

static void test_every_prefix(void **state)
{
    (void)state;
    const char *texts[] = {"DROP DATABASE IF EXISTS \"x\"\"y\" WITH (FORCE);",
                           "CREATE DATABASE c TEMPLATE = t", "ALTER DATABASE a RENAME TO b"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t n = strlen(texts[i]);
        for (size_t k = 0; k <= n; k++) {
            uint8_t *copy = malloc(k > 0 ? k : 1);
            assert_non_null(copy);
            memcpy(copy, texts[i], k);
            int rc = db_ddl_parse(copy, k, &ddl);
            assert_true(rc == 0 || rc == 1);
            free(copy);
        }
    }
}

static void test_may_begin(void **state)
{
    (void)state;
    assert_true(db_ddl_may_begin('D') && db_ddl_may_begin('a') && db_ddl_may_begin('C'));
    assert_true(db_ddl_may_begin(' ') && db_ddl_may_begin('\t') && db_ddl_may_begin('/') &&
                db_ddl_may_begin('-'));
    assert_false(db_ddl_may_begin('S') || db_ddl_may_begin('i') || db_ddl_may_begin('('));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop),         cmocka_unit_test(test_rename_template),
        cmocka_unit_test(test_cut),          cmocka_unit_test(test_none),
        cmocka_unit_test(test_every_prefix), cmocka_unit_test(test_may_begin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
