/*
 * test_dbmove.c
 *    Unit tests for proxy/dbmove/ (cmocka, TAP output).  preflight.h: the
 *    judgement of a database move's facts.  Facts that allow a move give no
 *    problem; then each fact is spoiled on its own and must give its own
 *    SQLSTATE and message, and when several are spoiled, the first in the
 *    documented order wins.  record.h: state names both ways, and the
 *    subscription's names.  follow.h: which row of the records decides
 *    where a database lives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/dbmove/follow.h"
#include "proxy/dbmove/preflight.h"
#include "proxy/dbmove/record.h"

static void good_facts(struct dbmove_source_facts *src, struct dbmove_target_facts *dst)
{
    memset(src, 0, sizeof(*src));
    memset(dst, 0, sizeof(*dst));
    snprintf(src->wal_level, sizeof(src->wal_level), "logical");
    snprintf(dst->wal_level, sizeof(dst->wal_level), "logical");
    src->superuser = dst->superuser = true;
    src->free_slots = src->free_senders = 4;
    dst->free_slots = dst->free_workers = 4;
    src->server_version = dst->server_version = 150010;
    src->tables = 3;
}

static void test_good(void **state)
{
    (void)state;
    struct dbmove_source_facts src;
    struct dbmove_target_facts dst;
    struct pg_error p;
    good_facts(&src, &dst);
    assert_false(dbmove_judge("movr", "us-east", "eu-west", &src, &dst, &p));
    /* an empty database of that name on the target is fine: the move uses it */
    dst.has_database = true;
    assert_false(dbmove_judge("movr", "us-east", "eu-west", &src, &dst, &p));
}

struct spoil {
    const char *what, *sqlstate, *message;
    void (*apply)(struct dbmove_source_facts *src, struct dbmove_target_facts *dst);
};

static void src_standby(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)d;
    s->in_recovery = true;
}
static void dst_standby(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)s;
    d->in_recovery = true;
}
static void src_not_super(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)d;
    s->superuser = false;
}
static void dst_replica(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)s;
    snprintf(d->wal_level, sizeof(d->wal_level), "replica");
}
static void dst_older(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)s;
    d->server_version = 140000;
}
static void no_identity(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)d;
    snprintf(s->no_identity, sizeof(s->no_identity), "public.events");
}
static void unlogged(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)d;
    snprintf(s->unlogged, sizeof(s->unlogged), "public.cache");
}
static void missing_ext(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)s;
    snprintf(d->missing_ext, sizeof(d->missing_ext), "postgis");
}
static void missing_roles(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)s;
    snprintf(d->missing_roles, sizeof(d->missing_roles), "reporter");
}
static void no_slot(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)d;
    s->free_slots = 0;
}
static void no_worker(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)s;
    d->free_workers = 0;
}
static void not_empty(struct dbmove_source_facts *s, struct dbmove_target_facts *d)
{
    (void)s;
    d->has_database = true;
    d->relations = 7;
}

static const struct spoil spoils[] = {
    {"source standby", "25006", "region \"us-east\" has no writable primary", src_standby},
    {"not superuser", "42501",
     "pgnear's user is not a superuser on the primary of region \"us-east\"", src_not_super},
    {"target standby", "25006", "region \"eu-west\" has no writable primary", dst_standby},
    {"wal_level", "55000", "region \"eu-west\" cannot take part in logical replication",
     dst_replica},
    {"older target", "0A000", "region \"eu-west\" runs an older PostgreSQL than region \"us-east\"",
     dst_older},
    {"no identity", "55000", "some tables have neither a primary key nor a replica identity",
     no_identity},
    {"unlogged", "55000", "some tables are unlogged", unlogged},
    {"extension", "0A000",
     "an extension of database \"movr\" is not available in region \"eu-west\"", missing_ext},
    {"roles", "42704",
     "roles that own or are granted objects of database \"movr\" do not exist in region "
     "\"eu-west\"",
     missing_roles},
    {"slots", "53400", "region \"us-east\" has no free replication slot or WAL sender", no_slot},
    {"workers", "53400", "region \"eu-west\" has no room for another subscription", no_worker},
    {"not empty", "42P04",
     "database \"movr\" already exists in region \"eu-west\" and is not empty", not_empty},
};
#define N_SPOILS (sizeof(spoils) / sizeof(spoils[0]))

static void test_each_alone(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SPOILS; i++) {
        struct dbmove_source_facts src;
        struct dbmove_target_facts dst;
        struct pg_error p;
        good_facts(&src, &dst);
        spoils[i].apply(&src, &dst);
        if (!dbmove_judge("movr", "us-east", "eu-west", &src, &dst, &p))
            fail_msg("%s: no problem found", spoils[i].what);
        if (strcmp(p.sqlstate, spoils[i].sqlstate) != 0 || strcmp(p.message, spoils[i].message))
            fail_msg("%s: got %s \"%s\", expected %s \"%s\"", spoils[i].what, p.sqlstate, p.message,
                     spoils[i].sqlstate, spoils[i].message);
        if (p.detail[0] == '\0' || p.hint[0] == '\0')
            fail_msg("%s: no detail or no hint", spoils[i].what);
    }
}

/* With every later fact spoiled too, the earlier one is named. */
static void test_order(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SPOILS; i++) {
        struct dbmove_source_facts src;
        struct dbmove_target_facts dst;
        struct pg_error p;
        good_facts(&src, &dst);
        for (size_t j = i; j < N_SPOILS; j++)
            spoils[j].apply(&src, &dst);
        assert_true(dbmove_judge("movr", "us-east", "eu-west", &src, &dst, &p));
        if (strcmp(p.message, spoils[i].message) != 0)
            fail_msg("spoiled from %s on: got \"%s\"", spoils[i].what, p.message);
    }
}

/* The detail names the tables. */
static void test_detail_lists(void **state)
{
    (void)state;
    struct dbmove_source_facts src;
    struct dbmove_target_facts dst;
    struct pg_error p;
    good_facts(&src, &dst);
    snprintf(src.no_identity, sizeof(src.no_identity), "public.a, \"Odd\".b");
    assert_true(dbmove_judge("movr", "us-east", "eu-west", &src, &dst, &p));
    assert_non_null(strstr(p.detail, "public.a, \"Odd\".b."));
}

/* Every state's name parses back to it; anything else does not parse. */
static void test_state_names(void **state)
{
    (void)state;
    static const enum dbmove_state all[] = {DBMOVE_COPYING,   DBMOVE_STREAMING,    DBMOVE_ABORTED,
                                            DBMOVE_FAILED,    DBMOVE_CUTTING_OVER, DBMOVE_MOVED,
                                            DBMOVE_REVERTING, DBMOVE_FINISHED};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        enum dbmove_state back;
        assert_true(dbmove_state_parse(dbmove_state_name(all[i]), &back));
        assert_int_equal(back, all[i]);
    }
    enum dbmove_state back;
    assert_false(dbmove_state_parse("Copying", &back));
    assert_false(dbmove_state_parse("", &back));
    assert_false(dbmove_state_live(DBMOVE_ABORTED));
    assert_false(dbmove_state_live(DBMOVE_FINISHED));
    assert_true(dbmove_state_live(DBMOVE_FAILED));
    assert_true(dbmove_state_live(DBMOVE_MOVED));
    assert_true(dbmove_state_in_target(DBMOVE_MOVED) && dbmove_state_in_target(DBMOVE_FINISHED));
    assert_false(dbmove_state_in_target(DBMOVE_CUTTING_OVER) ||
                 dbmove_state_in_target(DBMOVE_REVERTING));
    char name[64];
    dbmove_subscription_name(1795000000123456, name, sizeof(name));
    assert_string_equal(name, "pgnear_move_1795000000123456");
    dbmove_back_name(1795000000123456, name, sizeof(name));
    assert_string_equal(name, "pgnear_move_1795000000123456_back");
}

static struct dbmove_row row(int64_t id, const char *db, enum dbmove_state st, int version)
{
    struct dbmove_row r = {.id = id, .state = st, .version = version};
    snprintf(r.database, sizeof(r.database), "%s", db);
    snprintf(r.from_region, sizeof(r.from_region), "us-east");
    snprintf(r.to_region, sizeof(r.to_region), "eu-west");
    return r;
}

/*
 * The follower's decision: per database, the newest move (highest id),
 * and of its two regions' rows the higher version, whatever their order;
 * where each state says the database lives.
 */
static void test_newest(void **state)
{
    (void)state;
    struct dbmove_row rows[] = {
        row(10, "movr", DBMOVE_ABORTED, 3),      /* an older move */
        row(20, "movr", DBMOVE_CUTTING_OVER, 4), /* the source, before its second write */
        row(20, "movr", DBMOVE_MOVED, 5),        /* the target: written first */
        row(7, "shop", DBMOVE_STREAMING, 2),     row(7, "shop", DBMOVE_REVERTING, 6),
        row(7, "shop", DBMOVE_STREAMING, 7), /* REVERT's commit, in the source only so far */
        row(3, "old", DBMOVE_ABORTED, 2),
    };
    const struct dbmove_row *out[8];
    size_t n = dbmove_newest(rows, sizeof(rows) / sizeof(rows[0]), out, 8);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(out[i]->database, "movr") == 0) {
            assert_true(out[i]->id == 20 && out[i]->state == DBMOVE_MOVED);
            assert_string_equal(dbmove_home_region(out[i]), "eu-west");
        } else if (strcmp(out[i]->database, "shop") == 0) {
            assert_int_equal(out[i]->version, 7);
            assert_string_equal(dbmove_home_region(out[i]), "us-east");
        } else {
            assert_string_equal(out[i]->database, "old");
            assert_string_equal(dbmove_home_region(out[i]), "");
        }
    }
    /* the same rows the other way round decide the same */
    struct dbmove_row rev[sizeof(rows) / sizeof(rows[0])];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        rev[i] = rows[sizeof(rows) / sizeof(rows[0]) - 1 - i];
    n = dbmove_newest(rev, sizeof(rev) / sizeof(rev[0]), out, 8);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i]->database, "movr") == 0)
            assert_int_equal(out[i]->version, 5);
    /* a full table keeps the first databases it met */
    assert_int_equal(dbmove_newest(rows, sizeof(rows) / sizeof(rows[0]), out, 1), 1);
}

/* A row of a move of one city's rows (city as the record writes it). */
static struct dbmove_row city_row(int64_t id, const char *db, const char *city,
                                  enum dbmove_state st, int version)
{
    struct dbmove_row r = row(id, db, st, version);
    snprintf(r.city, sizeof(r.city), "%s", city);
    return r;
}

/*
 * Per city too: a database's newest move and each city's are apart, the
 * cities compared folded ("new york", "New-York"), each deciding by id
 * then version as a database's moves do.
 */
static void test_newest_cities(void **state)
{
    (void)state;
    struct dbmove_row rows[] = {
        row(5, "movr", DBMOVE_FINISHED, 4),
        city_row(30, "movr", "seattle", DBMOVE_ABORTED, 3), /* a later move of seattle */
        city_row(10, "movr", "seattle", DBMOVE_FINISHED, 4),
        city_row(12, "movr", "new york", DBMOVE_CUTTING_OVER, 3),
        city_row(12, "movr", "New-York", DBMOVE_MOVED, 4),
        city_row(9, "shop", "seattle", DBMOVE_STREAMING, 2),
    };
    const struct dbmove_row *out[8];
    size_t n = dbmove_newest(rows, sizeof(rows) / sizeof(rows[0]), out, 8);
    assert_int_equal(n, 4);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dbmove_row *r = out[i];
        if (strcmp(r->database, "movr") == 0 && r->city[0] == '\0') {
            assert_int_equal(r->id, 5), seen |= 1;
        } else if (strcmp(r->database, "movr") == 0 && strcmp(r->city, "seattle") == 0) {
            assert_int_equal(r->id, 30), seen |= 2;
            assert_string_equal(dbmove_home_region(r), ""); /* with the database's other rows */
        } else if (strcmp(r->database, "movr") == 0) {
            assert_int_equal(r->version, 4), seen |= 4;
            assert_string_equal(dbmove_home_region(r), "eu-west");
        } else {
            assert_string_equal(r->database, "shop");
            assert_string_equal(dbmove_home_region(r), "us-east"), seen |= 8;
        }
    }
    assert_int_equal(seen, 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),          cmocka_unit_test(test_each_alone),
        cmocka_unit_test(test_order),         cmocka_unit_test(test_detail_lists),
        cmocka_unit_test(test_state_names),   cmocka_unit_test(test_newest),
        cmocka_unit_test(test_newest_cities),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("dbmove", tests, NULL, NULL);
}
