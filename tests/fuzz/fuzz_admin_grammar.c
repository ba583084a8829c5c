/*
 * fuzz_admin_grammar.c
 *    libFuzzer target for proxy/admin/grammar_parse.c: admin_parse on any bytes.
 *    Besides not crashing: a parse that succeeds names a known command and
 *    leaves every name and value NUL-terminated within its bounds; an
 *    error has a five-character SQLSTATE, a message, and a position inside
 *    the text; the same text always parses the same way.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void check_bounded(const char *s, size_t cap)
{
    check(memchr(s, '\0', cap) != NULL);
}

static void check_parsed(const struct admin_cmd *cmd)
{
    check(cmd->kind >= 0 && cmd->kind < ADMIN_CMD_KINDS);
    check_bounded(cmd->region, sizeof(cmd->region));
    check_bounded(cmd->setting, sizeof(cmd->setting));
    check_bounded(cmd->value, sizeof(cmd->value));
    check(cmd->route_target >= ADMIN_ROUTE_CITY && cmd->route_target <= ADMIN_ROUTE_REGION);
}

static void check_error(const struct pg_error *err, size_t size)
{
    check(strlen(err->sqlstate) == 5);
    check(err->message[0] != '\0');
    check_bounded(err->message, sizeof(err->message));
    check_bounded(err->hint, sizeof(err->hint));
    check(err->position >= 1 && (size_t)err->position <= size + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct admin_cmd cmd, again;
    struct pg_error err, err2;
    int rc = admin_parse((const char *)data, size, &cmd, &err);
    check(rc == ADMIN_PARSE_OK || rc == ADMIN_PARSE_EMPTY || rc == ADMIN_PARSE_ERROR ||
          rc == ADMIN_PARSE_SQL);
    if (rc == ADMIN_PARSE_OK)
        check_parsed(&cmd);
    else if (rc != ADMIN_PARSE_EMPTY)
        check_error(&err, size);
    check(admin_parse((const char *)data, size, &again, &err2) == rc);
    if (rc == ADMIN_PARSE_OK)
        check(memcmp(&cmd, &again, sizeof(cmd)) == 0);
    return 0;
}
