/*
 * test_admin_grammar.c
 *    Unit tests for the admin grammar, proxy/admin/grammar*.c (cmocka, TAP output): every
 *    command and argument shape, case and comments and quoting, the
 *    errors (SQLSTATE, message, hint, position) for unknown commands, SQL,
 *    several statements, bad values, NUL bytes and lengths over the
 *    limits; and that every kind of command it parses has its struct
 *    admin_command in the command table (proxy/admin/commands.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/commands.h"
#include "proxy/admin/grammar.h"

static struct admin_cmd cmd;
static struct pg_error err;

static int parse(const char *text)
{
    return admin_parse(text, strlen(text), &cmd, &err);
}

static void expect_kind(const char *text, enum admin_cmd_kind kind)
{
    int rc = parse(text);
    if (rc != ADMIN_PARSE_OK)
        fail_msg("\"%s\": %d %s %s", text, rc, err.sqlstate, err.message);
    assert_int_equal(cmd.kind, kind);
}

static void expect_error(const char *text, const char *sqlstate, int position)
{
    int rc = parse(text);
    if (rc != ADMIN_PARSE_ERROR && rc != ADMIN_PARSE_SQL)
        fail_msg("\"%s\" parsed (%d)", text, rc);
    if (strcmp(err.sqlstate, sqlstate) != 0)
        fail_msg("\"%s\": SQLSTATE %s (%s), expected %s", text, err.sqlstate, err.message,
                 sqlstate);
    if (position > 0)
        assert_int_equal(err.position, position);
}

static void test_every_command(void **state)
{
    (void)state;
    size_t n;
    const struct admin_command_def *defs = admin_commands(&n);
    assert_int_equal(n, ADMIN_CMD_KINDS);
    expect_kind("SHOW HELP", ADMIN_SHOW_HELP);
    expect_kind("show version", ADMIN_SHOW_VERSION);
    expect_kind("Show Config;", ADMIN_SHOW_CONFIG);
    expect_kind("SHOW REGIONS", ADMIN_SHOW_REGIONS);
    expect_kind("SHOW CLIENTS", ADMIN_SHOW_CLIENTS);
    expect_kind("SHOW SERVERS", ADMIN_SHOW_SERVERS);
    expect_kind("SHOW POOLS", ADMIN_SHOW_POOLS);
    expect_kind("SHOW STATS", ADMIN_SHOW_STATS);
    expect_kind("SHOW LISTS", ADMIN_SHOW_LISTS);
    expect_kind("RELOAD", ADMIN_RELOAD);
    expect_kind("SHUTDOWN", ADMIN_SHUTDOWN);
    expect_kind("RECONNECT", ADMIN_RECONNECT);
    assert_false(cmd.has_region);
    /* every command's own syntax line starts with words that parse to it */
    for (size_t i = 0; i < n; i++)
        assert_non_null(defs[i].help);
}

static void test_blanks_and_comments(void **state)
{
    (void)state;
    expect_kind("  \n\tSHOW\n  STATS  ; \n", ADMIN_SHOW_STATS);
    expect_kind("-- a comment\nSHOW /* in the middle */ STATS -- and after", ADMIN_SHOW_STATS);
    expect_kind("SHOW STATS;;;", ADMIN_SHOW_STATS);
    assert_int_equal(parse(""), ADMIN_PARSE_EMPTY);
    assert_int_equal(parse("  -- nothing\n /* at all */ ;"), ADMIN_PARSE_EMPTY);
    assert_int_equal(parse(";"), ADMIN_PARSE_EMPTY);
    expect_error("SHOW /* never closed", "42601", 6);
}

static void test_regions(void **state)
{
    (void)state;
    expect_kind("PAUSE us-east", ADMIN_PAUSE);
    assert_true(cmd.has_region);
    assert_string_equal(cmd.region, "us-east");
    expect_kind("PAUSE", ADMIN_PAUSE);
    assert_false(cmd.has_region);
    expect_kind("RESUME \"Us East\"", ADMIN_RESUME);
    assert_string_equal(cmd.region, "Us East");
    expect_kind("DISABLE \"a\"\"b\"", ADMIN_DISABLE);
    assert_string_equal(cmd.region, "a\"b");
    expect_kind("ENABLE eu.west-1", ADMIN_ENABLE);
    assert_string_equal(cmd.region, "eu.west-1");
    expect_kind("DRAIN ap_northeast;", ADMIN_DRAIN);
    assert_string_equal(cmd.region, "ap_northeast");
    expect_kind("RECONNECT us-west", ADMIN_RECONNECT);
    assert_true(cmd.has_region);
    expect_error("DISABLE", "42601", 8);
    expect_error("DISABLE 'quoted'", "42601", 9);
    expect_error("PAUSE us-east us-west", "42601", 15);
    char longname[100];
    memset(longname, 'r', 64);
    longname[64] = '\0';
    char text[200];
    snprintf(text, sizeof(text), "DISABLE %s", longname);
    expect_error(text, "42622", 9);
    snprintf(text, sizeof(text), "DISABLE \"%s\"", longname);
    expect_error(text, "42622", 9);
    longname[63] = '\0';
    snprintf(text, sizeof(text), "DISABLE %s", longname);
    expect_kind(text, ADMIN_DISABLE);
    assert_int_equal(strlen(cmd.region), 63);
    expect_error("DISABLE \"never closed", "42601", 9);
}

static void test_route(void **state)
{
    (void)state;
    expect_kind("SHOW ROUTE FOR CITY 'São Paulo'", ADMIN_SHOW_ROUTE);
    assert_int_equal(cmd.route_target, ADMIN_ROUTE_CITY);
    assert_string_equal(cmd.value, "São Paulo");
    expect_kind("show route for city 'Val-d''Or'", ADMIN_SHOW_ROUTE);
    assert_string_equal(cmd.value, "Val-d'Or");
    expect_kind("SHOW ROUTE FOR IP '81.2.69.142'", ADMIN_SHOW_ROUTE);
    assert_int_equal(cmd.route_target, ADMIN_ROUTE_IP);
    expect_kind("SHOW ROUTE FOR IP '2001:db8::1'", ADMIN_SHOW_ROUTE);
    expect_kind("SHOW ROUTE FOR IP 10.0.0.1", ADMIN_SHOW_ROUTE);
    expect_error("SHOW ROUTE FOR IP '300.1.1.1'", "22P02", 19);
    expect_kind("SHOW ROUTE FOR LOCATION '47.6, -122.3'", ADMIN_SHOW_ROUTE);
    assert_int_equal(cmd.route_target, ADMIN_ROUTE_LOCATION);
    expect_kind("SHOW ROUTE FOR LOCATION '90,180'", ADMIN_SHOW_ROUTE);
    expect_kind("SHOW ROUTE FOR LOCATION '-90,-180'", ADMIN_SHOW_ROUTE);
    expect_error("SHOW ROUTE FOR LOCATION '90.01,0'", "22023", 25);
    expect_error("SHOW ROUTE FOR LOCATION '0,180.5'", "22023", -1);
    expect_error("SHOW ROUTE FOR LOCATION 'north'", "22023", -1);
    expect_error("SHOW ROUTE FOR LOCATION '1,2,3'", "22023", -1);
    expect_kind("SHOW ROUTE FOR REGION 'us-east'", ADMIN_SHOW_ROUTE);
    assert_int_equal(cmd.route_target, ADMIN_ROUTE_REGION);
    expect_error("SHOW ROUTE", "42601", 11);
    expect_error("SHOW ROUTE FOR", "42601", 15);
    expect_error("SHOW ROUTE FOR COUNTRY 'FR'", "42601", 16);
    expect_error("SHOW ROUTE FOR CITY", "42601", 20);
    expect_error("SHOW ROUTE FOR CITY 'never closed", "42601", 21);
}

static void test_kill(void **state)
{
    (void)state;
    expect_kind("KILL 42", ADMIN_KILL);
    assert_int_equal(cmd.client_id, 42);
    expect_kind("KILL 18446744073709551615", ADMIN_KILL);
    assert_true(cmd.client_id == UINT64_MAX);
    expect_error("KILL 18446744073709551616", "22023", 6);
    expect_error("KILL -1", "22023", 6);
    expect_error("KILL bob", "22023", 6);
    expect_error("KILL 12abc", "22023", 6);
    expect_error("KILL", "42601", 5);
    expect_error("KILL 1 2", "42601", 8);
}

static void test_set(void **state)
{
    (void)state;
    expect_kind("SET pause_timeout = '20s'", ADMIN_SET);
    assert_string_equal(cmd.setting, "pause_timeout");
    assert_string_equal(cmd.value, "20s");
    assert_true(cmd.value_quoted);
    expect_kind("set client_hints to off", ADMIN_SET);
    assert_string_equal(cmd.value, "off");
    assert_false(cmd.value_quoted);
    expect_kind("SET health_check_interval = 1.5", ADMIN_SET);
    assert_string_equal(cmd.value, "1.5");
    expect_kind("SET auth_query = 'SELECT a, b FROM c WHERE d = $1'", ADMIN_SET);
    assert_string_equal(cmd.value, "SELECT a, b FROM c WHERE d = $1");
    expect_kind("SET \"trusted_proxies\" = '10.0.0.0/8'", ADMIN_SET);
    expect_kind("SET x = 'back\\slash'", ADMIN_SET);
    assert_string_equal(cmd.value, "back\\slash");
    expect_error("SET x", "42601", 6);
    expect_error("SET x =", "42601", 8);
    expect_error("SET = 1", "42601", 5);
    char big[1200];
    memset(big, 'v', sizeof(big));
    memcpy(big, "SET x = '", 9);
    big[9 + 1025] = '\'';
    big[9 + 1026] = '\0';
    expect_error(big, "54000", 9);
}

static void test_migrate(void **state)
{
    (void)state;
    expect_kind("SHOW MIGRATIONS", ADMIN_SHOW_MIGRATIONS);
    expect_kind("migrate plan", ADMIN_MIGRATE_PLAN);
    assert_false(cmd.has_version);
    assert_false(cmd.has_region);
    expect_kind("MIGRATE PLAN TO 0002", ADMIN_MIGRATE_PLAN);
    assert_true(cmd.has_version);
    assert_int_equal(cmd.version, 2);
    assert_false(cmd.has_region);
    expect_kind("MIGRATE PLAN in region \"eu-west\";", ADMIN_MIGRATE_PLAN);
    assert_false(cmd.has_version);
    assert_true(cmd.has_region);
    assert_string_equal(cmd.region, "eu-west");
    expect_kind("MIGRATE PLAN TO 999999999999999999 IN REGION us", ADMIN_MIGRATE_PLAN);
    assert_int_equal(cmd.version, 999999999999999999LL);
    assert_string_equal(cmd.region, "us");
    expect_error("MIGRATE PLAN TO", "42601", 16);
    expect_error("MIGRATE PLAN TO 0", "22023", 17);
    expect_error("MIGRATE PLAN TO -1", "22023", 17);
    expect_error("MIGRATE PLAN TO 1x", "22023", 17);
    expect_error("MIGRATE PLAN TO 99999999999999999999", "22023", 17);
    expect_error("MIGRATE PLAN TO '2'", "42601", 17);
    expect_error("MIGRATE PLAN IN us", "42601", 17);
    expect_error("MIGRATE PLAN IN REGION", "42601", 23);
    expect_error("MIGRATE PLAN IN REGION us TO 2", "42601", 27);
    expect_error("MIGRATE PLAN us", "42601", 14);
    expect_kind("MIGRATE NEXT", ADMIN_MIGRATE_NEXT);
    assert_false(cmd.has_region);
    expect_kind("migrate next in region us", ADMIN_MIGRATE_NEXT);
    assert_string_equal(cmd.region, "us");
    expect_error("MIGRATE NEXT TO 2", "42601", 14);
    expect_kind("MIGRATE UP", ADMIN_MIGRATE_UP);
    expect_kind("migrate up to 3 in region \"eu-west\"", ADMIN_MIGRATE_UP);
    assert_true(cmd.has_version && cmd.version == 3 && cmd.has_region);
    assert_string_equal(cmd.region, "eu-west");
    expect_kind("MIGRATE UP IN REGION us;", ADMIN_MIGRATE_UP);
    expect_error("MIGRATE UP TO", "42601", 14);
    expect_error("MIGRATE UP TO 0", "22023", 15);
    expect_error("MIGRATE UP us", "42601", 12);
    expect_kind("MIGRATE DOWN TO 1", ADMIN_MIGRATE_DOWN);
    assert_true(cmd.has_version && cmd.version == 1 && !cmd.has_region);
    expect_kind("migrate down to 2 in region us", ADMIN_MIGRATE_DOWN);
    assert_true(cmd.version == 2 && cmd.has_region);
    expect_kind("MIGRATE DOWN TO 0", ADMIN_MIGRATE_DOWN); /* every step undone */
    assert_true(cmd.has_version && cmd.version == 0);
    expect_error("MIGRATE DOWN TO -1", "22023", 17);
    expect_error("MIGRATE UP TO 0 FORCE", "22023", 15);
    expect_error("MIGRATE DOWN", "42601", 13);
    expect_error("MIGRATE DOWN IN REGION us", "42601", 14);
    expect_kind("MIGRATE ABORT", ADMIN_MIGRATE_ABORT);
    expect_error("MIGRATE ABORT 3", "42601", 15);
    expect_kind("MIGRATE UP TO 3 IN REGION us FORCE", ADMIN_MIGRATE_UP);
    assert_true(cmd.force && cmd.version == 3 && cmd.has_region);
    expect_kind("migrate up force", ADMIN_MIGRATE_UP);
    assert_true(cmd.force && !cmd.has_version);
    expect_kind("MIGRATE UP", ADMIN_MIGRATE_UP);
    assert_false(cmd.force);
    expect_kind("MIGRATE NEXT FORCE;", ADMIN_MIGRATE_NEXT);
    assert_true(cmd.force);
    expect_kind("MIGRATE DOWN TO 1 FORCE", ADMIN_MIGRATE_DOWN);
    assert_true(cmd.force);
    expect_kind("MIGRATE RETRY 2 IN REGION us FORCE", ADMIN_MIGRATE_RETRY);
    assert_true(cmd.force);
    expect_error("MIGRATE PLAN FORCE", "42601", 14);
    expect_error("MIGRATE RESOLVE 3 AS applied FORCE", "42601", 30);
    expect_error("MIGRATE UP FORCE TO 3", "42601", 18);
    expect_kind("MIGRATE RESOLVE 3 AS applied", ADMIN_MIGRATE_RESOLVE);
    assert_true(cmd.has_version && cmd.version == 3 && cmd.resolve_applied && !cmd.has_region);
    expect_kind("migrate resolve 0003 as FAILED in region us;", ADMIN_MIGRATE_RESOLVE);
    assert_true(cmd.version == 3 && !cmd.resolve_applied && cmd.has_region);
    expect_kind("MIGRATE RESOLVE 3 AS reverted", ADMIN_MIGRATE_RESOLVE);
    assert_true(cmd.resolve_reverted && !cmd.resolve_applied);
    expect_kind("MIGRATE RESOLVE 3 AS applied", ADMIN_MIGRATE_RESOLVE);
    assert_false(cmd.resolve_reverted);
    expect_error("MIGRATE RESOLVE 3", "42601", 18);
    expect_error("MIGRATE RESOLVE 3 AS done", "42601", 22);
    expect_error("MIGRATE RESOLVE AS applied", "22023", 17);
    expect_kind("MIGRATE RETRY 7", ADMIN_MIGRATE_RETRY);
    assert_true(cmd.has_version && cmd.version == 7);
    expect_kind("MIGRATE RETRY 7 IN REGION \"eu-west\"", ADMIN_MIGRATE_RETRY);
    expect_error("MIGRATE RETRY", "42601", 14);
    expect_error("MIGRATE RETRY 7 AS applied", "42601", 17);
}

/* MOVE DATABASE db TO REGION r | CUTOVER | REVERT | FINISH | ABORT; SHOW MOVES; SQL's MOVE of a
 * cursor stays SQL. */
static void test_move_database(void **state)
{
    (void)state;
    expect_kind("MOVE DATABASE movr TO REGION eu-west", ADMIN_MOVE_DATABASE);
    assert_string_equal(cmd.database, "movr");
    assert_string_equal(cmd.to_region, "eu-west");
    assert_int_equal(cmd.db_action, ADMIN_DB_MOVE);
    expect_kind("move database \"Odd Db\" abort;", ADMIN_MOVE_DATABASE);
    assert_string_equal(cmd.database, "Odd Db");
    assert_int_equal(cmd.db_action, ADMIN_DB_ABORT);
    expect_kind("MOVE DATABASE movr CUTOVER", ADMIN_MOVE_DATABASE);
    assert_int_equal(cmd.db_action, ADMIN_DB_CUTOVER);
    expect_kind("move database movr revert;", ADMIN_MOVE_DATABASE);
    assert_int_equal(cmd.db_action, ADMIN_DB_REVERT);
    expect_kind("MOVE DATABASE movr Finish", ADMIN_MOVE_DATABASE);
    assert_int_equal(cmd.db_action, ADMIN_DB_FINISH);
    expect_error("MOVE DATABASE movr CUTOVER NOW", "42601", 0);
    expect_kind("SHOW MOVES", ADMIN_SHOW_MOVES);
    expect_error("MOVE DATABASE movr", "42601", 0);
    assert_string_equal(err.hint,
                        "Write TO REGION and a region, or CUTOVER, REVERT, FINISH or ABORT.");
    expect_error("MOVE DATABASE movr TO eu-west", "42601", 0);
    expect_error("MOVE DATABASE TO REGION eu-west", "42601", 0);
    assert_int_equal(parse("MOVE NEXT FROM cur"), ADMIN_PARSE_SQL);
    /* a city's rows: the city a string literal, kept as written */
    expect_kind("MOVE CITY 'New York' OF DATABASE movr TO REGION us-east", ADMIN_MOVE_CITY);
    assert_string_equal(cmd.city, "New York");
    assert_string_equal(cmd.database, "movr");
    assert_string_equal(cmd.to_region, "us-east");
    assert_int_equal(cmd.db_action, ADMIN_DB_MOVE);
    expect_kind("move city 'seattle' of database movr abort;", ADMIN_MOVE_CITY);
    assert_int_equal(cmd.db_action, ADMIN_DB_ABORT);
    expect_error("MOVE CITY seattle OF DATABASE movr ABORT", "42601", 0);
    expect_error("MOVE CITY 'seattle' DATABASE movr ABORT", "42601", 0);
    expect_error("MOVE CITY 'seattle' OF movr ABORT", "42601", 0);
    expect_error("MOVE CITY '' OF DATABASE movr ABORT", "22023", 0);
}

static void test_unknown_commands(void **state)
{
    (void)state;
    expect_error("SHOW CLEINTS", "42601", 1);
    assert_string_equal(err.message, "unrecognized admin command \"SHOW CLEINTS\"");
    assert_string_equal(err.hint, "Did you mean \"SHOW CLIENTS\"?");
    expect_error("PAUS us-east", "42601", 1);
    assert_string_equal(err.hint, "Did you mean \"PAUSE [region]\"?");
    expect_error("SHOW STAT", "42601", 1);
    assert_string_equal(err.hint, "Did you mean \"SHOW STATS\"?");
    expect_error("relaod", "42601", 1);
    assert_string_equal(err.hint, "Did you mean \"RELOAD\"?");
    expect_error("FROBNICATE everything", "42601", 1);
    assert_string_equal(err.hint, "Type SHOW HELP for the list of commands.");
    expect_error("SHOW server_version", "42601", 1);
    expect_error("'quoted'", "42601", 1);
    expect_error("= 1", "42601", 1);
}

static void test_sql_and_several(void **state)
{
    (void)state;
    assert_int_equal(parse("SELECT 1"), ADMIN_PARSE_SQL);
    assert_string_equal(err.sqlstate, "0A000");
    assert_string_equal(err.message, "the pgnear admin console does not run SQL");
    assert_int_equal(parse("  select n.nspname from pg_namespace n"), ADMIN_PARSE_SQL);
    assert_int_equal(err.position, 3);
    assert_int_equal(parse("BEGIN"), ADMIN_PARSE_SQL);
    assert_int_equal(parse("with x as (select 1) select * from x"), ADMIN_PARSE_SQL);
    expect_error("SHOW STATS; SHOW CLIENTS", "0A000", 13);
    assert_string_equal(err.message, "the admin console runs one command at a time");
    expect_error("RELOAD;RELOAD", "0A000", 8);
}

static void test_limits(void **state)
{
    (void)state;
    char with_nul[] = "SHOW\0STATS";
    assert_int_equal(admin_parse(with_nul, sizeof(with_nul) - 1, &cmd, &err), ADMIN_PARSE_ERROR);
    assert_string_equal(err.sqlstate, "22021");
    assert_int_equal(err.position, 5);
    /* UTF-8 as PostgreSQL checks it: valid text in values goes through, the rest is 22021 */
    expect_kind("SHOW ROUTE FOR CITY 'Zürich'", ADMIN_SHOW_ROUTE);
    assert_string_equal(cmd.value, "Zürich");
    expect_kind("SHOW ROUTE FOR CITY '東京'", ADMIN_SHOW_ROUTE);
    expect_error("SHOW \xff", "22021", 6);
    assert_string_equal(err.message, "invalid byte sequence for encoding \"UTF8\": 0xff");
    expect_error("SHOW ROUTE FOR CITY 'Z\xc3'", "22021", 23); /* cut short */
    expect_error("SHOW \xc0\xaf", "22021", 6);                /* overlong '/' */
    expect_error("SHOW \xed\xa0\x80", "22021", 6);            /* a surrogate */
    expect_error("SHOW \xf4\x90\x80\x80", "22021", 6);        /* above U+10FFFF */
    expect_error("SHOW \x80", "22021", 6);                    /* a stray continuation */
    size_t n = ADMIN_TEXT_MAX + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "SHOW STATS", 10);
    assert_int_equal(admin_parse(big, n, &cmd, &err), ADMIN_PARSE_ERROR);
    assert_string_equal(err.sqlstate, "54000");
    /* exactly at the limit: blanks after the command are fine */
    assert_int_equal(admin_parse(big, n - 1, &cmd, &err), ADMIN_PARSE_OK);
    assert_int_equal(cmd.kind, ADMIN_SHOW_STATS);
    free(big);
    /* the text need not end with a NUL: only len bytes are read */
    assert_int_equal(admin_parse("SHOW STATSXYZ", 10, &cmd, &err), ADMIN_PARSE_OK);
    assert_int_equal(cmd.kind, ADMIN_SHOW_STATS);
}

static void test_names(void **state)
{
    (void)state;
    char name[64];
    assert_string_equal(admin_command_name(ADMIN_SHOW_CLIENTS, name, sizeof(name)), "SHOW CLIENTS");
    assert_string_equal(admin_command_name(ADMIN_PAUSE, name, sizeof(name)), "PAUSE");
    assert_string_equal(admin_command_name(ADMIN_KILL, name, sizeof(name)), "KILL");
    assert_string_equal(admin_command_name(ADMIN_MIGRATE_UP, name, sizeof(name)), "MIGRATE UP");
}

/* The command table has a row for every kind, each either run or rendered, its columns counted. */
static void test_every_kind_has_a_command(void **state)
{
    (void)state;
    char name[64];
    for (int kind = 0; kind < ADMIN_CMD_KINDS; kind++) {
        const struct admin_command *c = command_find((enum admin_cmd_kind)kind);
        const char *what = admin_command_name((enum admin_cmd_kind)kind, name, sizeof(name));
        if (c == NULL)
            fail_msg("%s has no row in commands.c's table", what);
        if ((c->run != NULL) == (c->render != NULL))
            fail_msg("%s must either run or render a snapshot", what);
        if ((c->cols != NULL) != (c->ncols > 0))
            fail_msg("%s: cols and ncols disagree", what);
    }
    assert_null(command_find(ADMIN_CMD_KINDS));
}

/*
 * Every two-word row is the console's command, whether its first word
 * begins SQL or not (MOVE CITY is no cursor's MOVE): the parse asks the
 * table, so a new row cannot be read as SQL.
 */
static void test_two_word_rows_not_sql(void **state)
{
    (void)state;
    size_t n;
    const struct admin_command_def *defs = admin_commands(&n);
    for (size_t i = 0; i < n; i++) {
        char text[64];
        if (defs[i].words[1] == NULL)
            continue;
        snprintf(text, sizeof(text), "%s %s", defs[i].words[0], defs[i].words[1]);
        if (parse(text) == ADMIN_PARSE_SQL)
            fail_msg("\"%s\": read as SQL", text);
    }
    expect_error("MOVE NEXT FROM c", "0A000", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command),
        cmocka_unit_test(test_blanks_and_comments),
        cmocka_unit_test(test_regions),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_kill),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_migrate),
        cmocka_unit_test(test_unknown_commands),
        cmocka_unit_test(test_sql_and_several),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_move_database),
        cmocka_unit_test(test_every_kind_has_a_command),
        cmocka_unit_test(test_two_word_rows_not_sql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
