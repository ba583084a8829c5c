/*
 * test_patroni_cluster.c
 *    Unit tests for protocol/patroni_cluster.c (cmocka, TAP output).  The
 *    bodies of the first tests are GET /cluster answers of Debian 12's
 *    Patroni 3.0.2 (etcd v2, three members tagged with their regions), as
 *    captured while tests/lib/PgNearPatroni.pm's cluster ran: steady, in a
 *    switchover (the old leader stopping, then stopped with lag
 *    "unknown"), after a kill -9 of the leader (its member gone once its
 *    key expired), with synchronous_mode and the nofailover and
 *    noloadbalance tags, paused.  The others are made up, one fault each.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "protocol/patroni_cluster.h"
#include "routing/cidr.h"
#include "routing/patroni.h"
#include "routing/region.h"

/* Patroni 3.0.2, settled: m1 leads, m2 and m3 stream from it. */
static const char body_steady[] =
    "{\"members\": [{\"name\": \"m1\", \"role\": \"leader\", \"state\": \"running\", "
    "\"api_url\": \"http://127.0.0.1:27401/patroni\", \"host\": \"127.0.0.1\", \"port\": 27501, "
    "\"timeline\": 1, \"tags\": {\"pgnear_region\": \"us-east\"}}, {\"name\": \"m2\", \"role\": "
    "\"replica\", \"state\": \"running\", \"api_url\": \"http://127.0.0.1:27402/patroni\", "
    "\"host\": \"127.0.0.1\", \"port\": 27502, \"timeline\": 1, \"tags\": {\"pgnear_region\": "
    "\"us-west\"}, \"lag\": 0}, {\"name\": \"m3\", \"role\": \"replica\", \"state\": \"running\", "
    "\"api_url\": \"http://127.0.0.1:27403/patroni\", \"host\": \"127.0.0.1\", \"port\": 27503, "
    "\"timeline\": 1, \"tags\": {\"pgnear_region\": \"eu-west\"}, \"lag\": 0}]}";

/* A switchover to m3 begins: the leader stops PostgreSQL (no timeline) and still holds the lock. */
static const char body_stopping[] =
    "{\"members\": [{\"name\": \"m1\", \"role\": \"leader\", \"state\": \"stopping\", "
    "\"api_url\": \"http://127.0.0.1:27401/patroni\", \"host\": \"127.0.0.1\", \"port\": 27501, "
    "\"tags\": {\"pgnear_region\": \"us-east\"}}, {\"name\": \"m2\", \"role\": \"replica\", "
    "\"state\": \"running\", \"api_url\": \"http://127.0.0.1:27402/patroni\", \"host\": "
    "\"127.0.0.1\", \"port\": 27502, \"timeline\": 1, \"tags\": {\"pgnear_region\": "
    "\"us-west\"}, \"lag\": 0}, {\"name\": \"m3\", \"role\": \"replica\", \"state\": \"running\", "
    "\"api_url\": \"http://127.0.0.1:27403/patroni\", \"host\": \"127.0.0.1\", \"port\": 27503, "
    "\"timeline\": 1, \"tags\": {\"pgnear_region\": \"eu-west\"}, \"lag\": 0}]}";

/* ... m3 leads, on its new timeline; m1 is stopped, its lag unknown. */
static const char body_switched[] =
    "{\"members\": [{\"name\": \"m1\", \"role\": \"replica\", \"state\": \"stopped\", "
    "\"api_url\": \"http://127.0.0.1:27401/patroni\", \"host\": \"127.0.0.1\", \"port\": 27501, "
    "\"tags\": {\"pgnear_region\": \"us-east\"}, \"lag\": \"unknown\"}, {\"name\": \"m2\", "
    "\"role\": \"replica\", \"state\": \"running\", \"api_url\": "
    "\"http://127.0.0.1:27402/patroni\", \"host\": \"127.0.0.1\", \"port\": 27502, "
    "\"timeline\": 1, \"tags\": {\"pgnear_region\": \"us-west\"}, \"lag\": 0}, {\"name\": "
    "\"m3\", \"role\": \"leader\", \"state\": \"running\", \"api_url\": "
    "\"http://127.0.0.1:27403/patroni\", \"host\": \"127.0.0.1\", \"port\": 27503, "
    "\"timeline\": 2, \"tags\": {\"pgnear_region\": \"eu-west\"}}]}";

/* After kill -9 of m3 (Patroni and PostgreSQL): its member key expired, m1 took the lock. */
static const char body_failed_over[] =
    "{\"members\": [{\"name\": \"m1\", \"role\": \"leader\", \"state\": \"running\", "
    "\"api_url\": \"http://127.0.0.1:27401/patroni\", \"host\": \"127.0.0.1\", \"port\": 27501, "
    "\"timeline\": 3, \"tags\": {\"pgnear_region\": \"us-east\"}}, {\"name\": \"m2\", \"role\": "
    "\"replica\", \"state\": \"running\", \"api_url\": \"http://127.0.0.1:27402/patroni\", "
    "\"host\": \"127.0.0.1\", \"port\": 27502, \"timeline\": 2, \"tags\": {\"pgnear_region\": "
    "\"us-west\"}, \"lag\": 280}]}";

/* synchronous_mode: true, m2 tagged nofailover and noloadbalance. */
static const char body_sync[] =
    "{\"members\": [{\"name\": \"m1\", \"role\": \"sync_standby\", \"state\": \"running\", "
    "\"api_url\": \"http://127.0.0.1:27401/patroni\", \"host\": \"127.0.0.1\", \"port\": 27501, "
    "\"timeline\": 4, \"tags\": {\"pgnear_region\": \"us-east\"}, \"lag\": 0}, {\"name\": "
    "\"m2\", \"role\": \"replica\", \"state\": \"running\", \"api_url\": "
    "\"http://127.0.0.1:27402/patroni\", \"host\": \"127.0.0.1\", \"port\": 27502, "
    "\"timeline\": 4, \"tags\": {\"pgnear_region\": \"us-west\", \"nofailover\": true, "
    "\"noloadbalance\": true}, \"lag\": 0}, {\"name\": \"m3\", \"role\": \"leader\", \"state\": "
    "\"running\", \"api_url\": \"http://127.0.0.1:27403/patroni\", \"host\": \"127.0.0.1\", "
    "\"port\": 27503, \"timeline\": 4, \"tags\": {\"pgnear_region\": \"eu-west\"}}]}";

/* patronictl pause. */
static const char body_paused[] =
    "{\"members\": [{\"name\": \"m1\", \"role\": \"leader\", \"state\": \"running\", "
    "\"api_url\": \"http://127.0.0.1:27401/patroni\", \"host\": \"127.0.0.1\", \"port\": 27501, "
    "\"timeline\": 3, \"tags\": {\"pgnear_region\": \"us-east\"}}, {\"name\": \"m2\", \"role\": "
    "\"replica\", \"state\": \"running\", \"api_url\": \"http://127.0.0.1:27402/patroni\", "
    "\"host\": \"127.0.0.1\", \"port\": 27502, \"timeline\": 3, \"tags\": {\"pgnear_region\": "
    "\"us-west\", \"nofailover\": true, \"noloadbalance\": true}, \"lag\": 0}, {\"name\": "
    "\"m3\", \"role\": \"sync_standby\", \"state\": \"running\", \"api_url\": "
    "\"http://127.0.0.1:27403/patroni\", \"host\": \"127.0.0.1\", \"port\": 27503, "
    "\"timeline\": 3, \"tags\": {\"pgnear_region\": \"eu-west\"}, \"lag\": 0}], \"pause\": true}";

static void parse_ok(const char *body, struct patroni_cluster *c)
{
    char err[PATRONI_ERROR_MAX];
    int rc = patroni_cluster_parse(body, strlen(body), c, err, sizeof(err));

    if (rc != PATRONI_OK)
        fail_msg("patroni_cluster_parse: %d: %s", rc, err);
    assert_string_equal(err, "");
}

static void assert_member(const struct patroni_member *m, const char *name, enum patroni_role role,
                          const char *state, int port, int64_t timeline, const char *region)
{
    char url[64];

    assert_string_equal(m->name, name);
    assert_int_equal(m->role, role);
    assert_string_equal(m->state, state);
    assert_string_equal(m->host, "127.0.0.1");
    assert_int_equal(m->port, port);
    assert_true(m->timeline == timeline);
    assert_string_equal(m->region, region);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/patroni", port - 100);
    assert_string_equal(m->api_url, url);
}

static void test_steady(void **state)
{
    struct patroni_cluster c;

    (void)state;
    parse_ok(body_steady, &c);
    assert_int_equal(c.count, 3);
    assert_int_equal(c.leader, 0);
    assert_false(c.paused);
    assert_false(c.scheduled_switchover);
    assert_member(&c.members[0], "m1", PATRONI_ROLE_LEADER, "running", 27501, 1, "us-east");
    assert_int_equal(c.members[0].lag, PATRONI_LAG_NONE);
    assert_member(&c.members[1], "m2", PATRONI_ROLE_REPLICA, "running", 27502, 1, "us-west");
    assert_int_equal(c.members[1].lag, PATRONI_LAG_BYTES);
    assert_true(c.members[1].lag_bytes == 0);
    assert_member(&c.members[2], "m3", PATRONI_ROLE_REPLICA, "running", 27503, 1, "eu-west");
    for (size_t i = 0; i < c.count; i++) {
        assert_false(c.members[i].nofailover);
        assert_false(c.members[i].noloadbalance);
        assert_false(c.members[i].pending_restart);
    }
    assert_ptr_equal(patroni_cluster_find(&c, "m2"), &c.members[1]);
    assert_null(patroni_cluster_find(&c, "m4"));
}

static void test_switchover(void **state)
{
    struct patroni_cluster c;

    (void)state;
    parse_ok(body_stopping, &c);
    assert_int_equal(c.leader, 0);
    assert_member(&c.members[0], "m1", PATRONI_ROLE_LEADER, "stopping", 27501, -1, "us-east");
    parse_ok(body_switched, &c);
    assert_int_equal(c.leader, 2);
    assert_member(&c.members[0], "m1", PATRONI_ROLE_REPLICA, "stopped", 27501, -1, "us-east");
    assert_int_equal(c.members[0].lag, PATRONI_LAG_UNKNOWN);
    assert_member(&c.members[2], "m3", PATRONI_ROLE_LEADER, "running", 27503, 2, "eu-west");
    assert_int_equal(c.members[2].lag, PATRONI_LAG_NONE);
}

static void test_failed_over(void **state)
{
    struct patroni_cluster c;

    (void)state;
    parse_ok(body_failed_over, &c);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.leader, 0);
    assert_member(&c.members[0], "m1", PATRONI_ROLE_LEADER, "running", 27501, 3, "us-east");
    assert_member(&c.members[1], "m2", PATRONI_ROLE_REPLICA, "running", 27502, 2, "us-west");
    assert_int_equal(c.members[1].lag, PATRONI_LAG_BYTES);
    assert_true(c.members[1].lag_bytes == 280);
}

static void test_sync_and_tags(void **state)
{
    struct patroni_cluster c;

    (void)state;
    parse_ok(body_sync, &c);
    assert_int_equal(c.leader, 2);
    assert_member(&c.members[0], "m1", PATRONI_ROLE_SYNC_STANDBY, "running", 27501, 4, "us-east");
    assert_false(c.members[0].nofailover);
    assert_true(c.members[1].nofailover);
    assert_true(c.members[1].noloadbalance);
    assert_false(c.members[2].noloadbalance);
    parse_ok(body_paused, &c);
    assert_true(c.paused);
    assert_int_equal(c.members[2].role, PATRONI_ROLE_SYNC_STANDBY);
    assert_true(c.members[1].nofailover);
}

/* Tags as Patroni tests them, with Python's truth; other roles; what may be absent. */
static void test_lenient(void **state)
{
    static const char body[] =
        "{\"members\": [{\"name\": \"a\", \"role\": \"standby_leader\", \"state\": \"\", "
        "\"api_url\": null, \"tags\": {\"nofailover\": \"false\", \"noloadbalance\": 0}}, "
        "{\"name\": \"b\", \"role\": \"quorum_standby\", \"state\": \"streaming\", "
        "\"api_url\": \"x\", \"tags\": {\"nofailover\": 0.0, \"noloadbalance\": [0], "
        "\"pgnear_region\": \"\", \"clonefrom\": true}, \"pending_restart\": true, "
        "\"xlog\": {\"location\": 1}}, {\"name\": \"c\", \"role\": \"master\", \"state\": \"x\", "
        "\"tags\": {\"nofailover\": null, \"noloadbalance\": {}}, \"lag\": 9223372036854775807}],"
        " \"scope\": \"s\", \"scheduled_switchover\": {\"at\": \"2026-01-01T00:00:00+00:00\"}, "
        "\"pause\": false}";
    struct patroni_cluster c;

    (void)state;
    parse_ok(body, &c);
    assert_int_equal(c.count, 3);
    assert_int_equal(c.leader, 0);
    assert_false(c.paused);
    assert_true(c.scheduled_switchover);
    assert_int_equal(c.members[0].role, PATRONI_ROLE_STANDBY_LEADER);
    assert_string_equal(c.members[0].api_url, "");
    assert_string_equal(c.members[0].host, "");
    assert_int_equal(c.members[0].port, 0);
    assert_true(c.members[0].nofailover); /* a non-empty string, even "false" */
    assert_false(c.members[0].noloadbalance);
    assert_int_equal(c.members[1].role, PATRONI_ROLE_QUORUM_STANDBY);
    assert_false(c.members[1].nofailover);
    assert_true(c.members[1].noloadbalance);
    assert_true(c.members[1].pending_restart);
    assert_string_equal(c.members[1].region, "");
    assert_int_equal(c.members[2].role, PATRONI_ROLE_OTHER);
    assert_false(c.members[2].nofailover);
    assert_false(c.members[2].noloadbalance);
    assert_true(c.members[2].lag_bytes == INT64_MAX);
    assert_string_equal(patroni_role_name(PATRONI_ROLE_OTHER), "other");
    assert_string_equal(patroni_role_name(PATRONI_ROLE_SYNC_STANDBY), "sync_standby");
    parse_ok("{\"members\": []}", &c);
    assert_int_equal(c.count, 0);
    assert_int_equal(c.leader, -1);
}

/* Escaped strings decode; a name with a control character does not pass. */
static void test_escapes(void **state)
{
    struct patroni_cluster c;

    (void)state;
    parse_ok("{\"members\": [{\"name\": \"caf\\u00e9\", \"role\": \"leader\", \"state\": "
             "\"running\", \"tags\": {\"pgnear_region\": \"eu\\u002dwest\"}}]}",
             &c);
    assert_string_equal(c.members[0].name, "caf\xc3\xa9");
    assert_string_equal(c.members[0].region, "eu-west");
}

/* body must fail with rc and a message that starts with want. */
static void bad(const char *body, int rc, const char *want)
{
    struct patroni_cluster c;
    char err[PATRONI_ERROR_MAX];
    int got = patroni_cluster_parse(body, strlen(body), &c, err, sizeof(err));

    if (got != rc || strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s\n  got %d \"%s\", want %d \"%s\"", body, got, err, rc, want);
    assert_int_equal(c.count, 0);
    assert_int_equal(c.leader, -1);
}

#define M(x)                                                                                       \
    "{\"members\": [{\"name\": \"m1\", \"role\": \"replica\", \"state\": \"running\"" x "}]}"

static void test_malformed(void **state)
{
    (void)state;
    bad("", PATRONI_EJSON, "not JSON: unexpected end of text at byte 0");
    bad("{\"members\": [}", PATRONI_EJSON, "not JSON: unexpected character at byte 13");
    bad("<html>", PATRONI_EJSON, "not JSON: unexpected character at byte 0");
    bad("[]", PATRONI_EFORMAT, "the body is not a JSON object");
    bad("{}", PATRONI_EFORMAT, "the body has no \"members\"");
    bad("{\"members\": {}}", PATRONI_EFORMAT, "\"members\" is not an array");
    bad("{\"members\": [1]}", PATRONI_EFORMAT, "members[0] is not an object");
    bad("{\"members\": [{\"role\": \"leader\"}]}", PATRONI_EFORMAT, "members[0]: no \"name\"");
    bad("{\"members\": [{\"name\": 1}]}", PATRONI_EFORMAT, "members[0]: \"name\" is not a string");
    bad("{\"members\": [{\"name\": \"\", \"role\": \"leader\"}]}", PATRONI_EFORMAT,
        "members[0]: \"name\" is empty");
    bad("{\"members\": [{\"name\": \"a\\nb\", \"role\": \"leader\"}]}", PATRONI_EFORMAT,
        "members[0]: \"name\" holds a control character");
    bad("{\"members\": [{\"name\": \"a\\u0000\", \"role\": \"leader\"}]}", PATRONI_EFORMAT,
        "members[0]: \"name\" holds a control character");
    bad("{\"members\": [{\"name\": \"m\"}]}", PATRONI_EFORMAT, "members[0]: no \"role\"");
    bad("{\"members\": [{\"name\": \"m\", \"role\": null}]}", PATRONI_EFORMAT,
        "members[0]: \"role\" is not a string");
    bad(M(", \"port\": 0"), PATRONI_EFORMAT,
        "members[0]: \"port\" is not an integer from 1 to 65535");
    bad(M(", \"port\": 65536"), PATRONI_EFORMAT, "members[0]: \"port\" is not an integer");
    bad(M(", \"port\": \"5432\""), PATRONI_EFORMAT, "members[0]: \"port\" is not an integer");
    bad(M(", \"port\": 5432.0"), PATRONI_EFORMAT, "members[0]: \"port\" is not an integer");
    bad(M(", \"timeline\": -1"), PATRONI_EFORMAT, "members[0]: \"timeline\" is not an integer");
    bad(M(", \"lag\": -1"), PATRONI_EFORMAT,
        "members[0]: \"lag\" is neither \"unknown\" nor a number of bytes");
    bad(M(", \"lag\": \"lots\""), PATRONI_EFORMAT, "members[0]: \"lag\" is neither");
    bad(M(", \"lag\": 1e3"), PATRONI_EFORMAT, "members[0]: \"lag\" is neither");
    bad(M(", \"host\": 1"), PATRONI_EFORMAT, "members[0]: \"host\" is not a string");
    bad("{\"members\": [{\"name\": \"m\", \"role\": \"replica\", \"state\": null}]}",
        PATRONI_EFORMAT, "members[0]: \"state\" is not a string");
    bad(M(", \"api_url\": 1"), PATRONI_EFORMAT, "members[0]: \"api_url\" is not a string");
    bad(M(", \"tags\": []"), PATRONI_EFORMAT, "members[0]: \"tags\" is not an object");
    bad(M(", \"tags\": {\"pgnear_region\": 1}"), PATRONI_EFORMAT,
        "members[0]: \"pgnear_region\" is not a string");
    bad(M(", \"pending_restart\": 1"), PATRONI_EFORMAT,
        "members[0]: \"pending_restart\" is not true or false");
    bad("{\"members\": [], \"pause\": \"yes\"}", PATRONI_EFORMAT, "\"pause\" is not true or false");
    bad("{\"members\": [{\"name\": \"a\", \"role\": \"leader\", \"state\": \"running\"}, "
        "{\"name\": \"b\", \"role\": \"standby_leader\", \"state\": \"running\"}]}",
        PATRONI_EFORMAT, "members[0] and members[1] are both leaders");
    bad("{\"members\": [{\"name\": \"a\", \"role\": \"replica\", \"state\": \"running\"}, "
        "{\"name\": \"a\", \"role\": \"leader\", \"state\": \"running\"}]}",
        PATRONI_EFORMAT, "members[0] and members[1] have the same name");
}

/* The second member's fault names the second member. */
static void test_malformed_later(void **state)
{
    (void)state;
    bad("{\"members\": [{\"name\": \"a\", \"role\": \"leader\", \"state\": \"running\"}, "
        "{\"name\": \"b\", \"role\": \"replica\", \"state\": \"running\", \"port\": -5}]}",
        PATRONI_EFORMAT, "members[1]: \"port\" is not an integer from 1 to 65535");
}

/* Strings at their caps fit; a byte more is refused. */
static void test_lengths(void **state)
{
    char body[1024], name[PATRONI_NAME_MAX + 2], host[PATRONI_HOST_MAX + 2];
    struct patroni_cluster c;

    (void)state;
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(body, sizeof(body), M(", \"host\": \"%s\""), host + 1);
    parse_ok(body, &c);
    assert_int_equal(strlen(c.members[0].host), PATRONI_HOST_MAX);
    snprintf(body, sizeof(body), M(", \"host\": \"%s\""), host);
    bad(body, PATRONI_EFORMAT, "members[0]: \"host\" is longer than 255 bytes");
    snprintf(body, sizeof(body), "{\"members\": [{\"name\": \"%s\", \"role\": \"leader\"}]}", name);
    bad(body, PATRONI_EFORMAT, "members[0]: \"name\" is longer than 63 bytes");
}

/* PATRONI_MEMBERS_MAX members fit; one more is refused. */
static void test_member_count(void **state)
{
    char body[PATRONI_MEMBERS_MAX * 64 + 64];
    struct patroni_cluster c;
    size_t n;

    (void)state;
    for (int extra = 0; extra < 2; extra++) {
        n = (size_t)snprintf(body, sizeof(body), "{\"members\": [");
        for (int i = 0; i < PATRONI_MEMBERS_MAX + extra; i++)
            n += (size_t)snprintf(body + n, sizeof(body) - n,
                                  "%s{\"name\": \"m%d\", \"role\": \"replica\"}", i ? ", " : "", i);
        snprintf(body + n, sizeof(body) - n, "]}");
        if (extra == 0) {
            parse_ok(body, &c);
            assert_int_equal(c.count, PATRONI_MEMBERS_MAX);
            assert_string_equal(c.members[PATRONI_MEMBERS_MAX - 1].name, "m31");
        } else {
            bad(body, PATRONI_EFORMAT, "more than 32 members");
        }
    }
}

/* No message buffer: the result alone. */
static void test_no_message(void **state)
{
    struct patroni_cluster c;

    (void)state;
    assert_int_equal(patroni_cluster_parse("{}", 2, &c, NULL, 0), PATRONI_EFORMAT);
    assert_int_equal(patroni_cluster_parse("{", 1, &c, NULL, 0), PATRONI_EJSON);
    assert_int_equal(patroni_cluster_parse(body_steady, sizeof(body_steady) - 1, &c, NULL, 0),
                     PATRONI_OK);
}

/* A resolver of the test's: db.internal is 10.1.0.7, and each name asked is counted. */
static int lookups;
static bool fake_lookup(void *arg, const char *host, int port, struct host_addr *out, char *err,
                        size_t errcap)
{
    assert_string_equal(arg, "10.0.0.53:53");
    lookups++;
    if (strcmp(host, "db.internal") != 0) {
        snprintf(err, errcap, "could not resolve host \"%s\": no address", host);
        return false;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
    memset(out, 0, sizeof(*out));
    snprintf(out->host, sizeof(out->host), "%s", host);
    out->port = port;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "10.1.0.7", &sin->sin_addr);
    out->addrlen = sizeof(*sin);
    return true;
}

static char admit_said[PATRONI_LINE_MAX];
static void admit_log(void *arg, bool warn, const char *line)
{
    (void)arg;
    assert_true(warn);
    snprintf(admit_said, sizeof(admit_said), "%s", line);
}

/* Members named by DNS are asked of the resolver handed down (dns_server's), not the system's. */
static void test_admit_lookup(void **state)
{
    struct region_set set = {0};
    struct cidr_list allowed;
    char err[256];
    struct patroni_place places[] = {
        {"eu", "db.internal", 5432}, {"eu", "gone.internal", 5432}, {"eu", "bad name!", 5432}};

    (void)state;
    assert_non_null(region_set_add(&set, "eu"));
    assert_true(cidr_list_parse(&allowed, "10.1.0.0/16", err, sizeof(err)));
    lookups = 0;
    patroni_admit(&set, &allowed, places, 3, fake_lookup, "10.0.0.53:53", admit_log, NULL);
    assert_int_equal(lookups, 2); /* never for a name that is not one */
    assert_int_equal(set.items[0].nhosts, 1);
    assert_string_equal(set.items[0].hosts[0].name, "db.internal");
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)&set.items[0].hosts[0].addr)->sin_addr, a,
              sizeof(a));
    assert_string_equal(a, "10.1.0.7");
    assert_non_null(strstr(admit_said, "neither an IP address nor a DNS name"));
    region_set_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady),      cmocka_unit_test(test_switchover),
        cmocka_unit_test(test_failed_over), cmocka_unit_test(test_sync_and_tags),
        cmocka_unit_test(test_lenient),     cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_malformed),   cmocka_unit_test(test_malformed_later),
        cmocka_unit_test(test_lengths),     cmocka_unit_test(test_member_count),
        cmocka_unit_test(test_no_message),  cmocka_unit_test(test_admit_lookup),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("patroni_cluster", tests, NULL, NULL);
}
