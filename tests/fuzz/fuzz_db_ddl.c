/*
 * fuzz_db_ddl.c
 *    libFuzzer target for protocol/db_ddl.c, which reads a client's Query
 *    for DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE ...
 *    TEMPLATE and the database each names.  The input is the text, read
 *    from a buffer of exactly its length, so that a byte read past it is
 *    seen.  Promises that must hold, else it traps: the answer is 0 or 1;
 *    on 1 the kind is one of the three and the name is NUL-terminated, not
 *    empty and at most 63 bytes; on 0 the kind is none and the name empty;
 *    a statement in front ("SELECT 1; ") makes it 0 (one statement alone).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/db_ddl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static int parse_exact(const uint8_t *text, size_t n, struct db_ddl *out)
{
    uint8_t *copy = malloc(n > 0 ? n : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, text, n);
    int rc = db_ddl_parse(copy, n, out);
    free(copy);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct db_ddl ddl;
    int rc = parse_exact(data, size, &ddl);
    if (rc < 0)
        return 0;
    check(rc == 0 || rc == 1);
    if (rc == 1) {
        size_t n = strnlen(ddl.database, sizeof(ddl.database));
        check(ddl.kind == DB_DDL_DROP || ddl.kind == DB_DDL_RENAME || ddl.kind == DB_DDL_TEMPLATE);
        check(n > 0 && n <= 63);
    } else {
        check(ddl.kind == DB_DDL_NONE && ddl.database[0] == '\0');
    }
    static const char front[] = "SELECT 1; ";
    uint8_t *both = malloc(sizeof(front) - 1 + size + 1);
    if (both == NULL)
        return 0;
    memcpy(both, front, sizeof(front) - 1);
    memcpy(both + sizeof(front) - 1, data, size);
    struct db_ddl after;
    check(parse_exact(both, sizeof(front) - 1 + size, &after) == 0);
    free(both);
    return 0;
}
