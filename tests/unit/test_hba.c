/*
 * test_hba.c
 *    Unit tests for proxy/base/hba.c (cmocka, TAP output): pg_hba.conf's
 *    syntax as PostgreSQL reads it, what pgnear refuses with the line
 *    named, and the first line a connection matches.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/base/hba.h"

/* The includes a test offers: "users" and "dbs"; anything else cannot be read. */
static bool include_fixture(void *arg, const char *name, char **text, size_t *len, char *why,
                            size_t whycap)
{
    const char *body = strcmp(name, "users") == 0    ? "alice, bob\n# a comment\n\"Carol X\"\n"
                       : strcmp(name, "dbs") == 0    ? "shop"
                       : strcmp(name, "nested") == 0 ? "@users"
                       : strcmp(name, "empty") == 0  ? "# nobody\n"
                                                     : NULL;
    (void)arg;
    if (body == NULL) {
        snprintf(why, whycap, "no such file");
        return false;
    }
    *len = strlen(body);
    *text = malloc(*len);
    memcpy(*text, body, *len); /* not terminated: the parser must not need it */
    return true;
}

static int parse(const char *text, struct hba_file *f, struct hba_error *err)
{
    return hba_parse(text, strlen(text), include_fixture, NULL, f, err);
}

/* The error a one-file text gives: its code, and the line and a part of the reason. */
static void expect_error(const char *text, int rc, int line, const char *why)
{
    struct hba_file f;
    struct hba_error err;
    int got = parse(text, &f, &err);
    if (got != rc || err.line != line || strstr(err.why, why) == NULL)
        fail_msg("\"%s\": got %d at line %d: %s; expected %d at line %d: ...%s...", text, got,
                 err.line, err.why, rc, line, why);
    hba_free(&f);
}

static struct sockaddr_in v4(const char *text)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, text, &sa.sin_addr);
    return sa;
}

static struct sockaddr_in6 v6(const char *text)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, text, &sa.sin6_addr);
    return sa;
}

/* The line number a request matches, 0 for none. */
static int match_line(const struct hba_file *f, const char *db, const char *user, const void *addr,
                      bool tls)
{
    struct hba_request r = {db, user, addr, tls};
    const struct hba_line *l = hba_match(f, &r);
    return l != NULL ? l->line : 0;
}

static void test_basic_lines(void **state)
{
    (void)state;
    const char *text = "# TYPE DATABASE USER ADDRESS METHOD\n"
                       "\n"
                       "local   all  all                 trust\n"
                       "host    all  all  127.0.0.1/32   scram-sha-256\r\n"
                       "hostssl app,\"Other DB\" app 10.0.0.0 255.0.0.0 cert # CN\n"
                       "hostnossl all all ::1/128 reject\n"
                       "host all all all md5";
    struct hba_file f;
    struct hba_error err;
    assert_int_equal(parse(text, &f, &err), HBA_OK);
    assert_int_equal(f.count, 5);
    assert_int_equal(f.lines[0].line, 3);
    assert_int_equal(f.lines[0].conn, HBA_LOCAL);
    assert_int_equal(f.lines[0].method, HBA_METHOD_TRUST);
    assert_int_equal(f.lines[1].address.prefix, 32);
    assert_int_equal(f.lines[1].method, HBA_METHOD_SCRAM);
    assert_int_equal(f.lines[2].n_databases, 2);
    assert_string_equal(f.lines[2].databases[1].name, "Other DB");
    assert_int_equal(f.lines[2].address.prefix, 8);
    assert_int_equal(f.lines[2].method, HBA_METHOD_CERT);
    assert_int_equal(f.lines[2].clientcert, HBA_CLIENTCERT_VERIFY_FULL);
    assert_int_equal(f.lines[3].address.family, AF_INET6);
    assert_int_equal(f.lines[3].method, HBA_METHOD_REJECT);
    assert_true(f.lines[4].any_address);
    assert_int_equal(f.lines[4].method, HBA_METHOD_SCRAM); /* md5: SCRAM, as PostgreSQL would */
    assert_true(hba_uses_method(&f, HBA_METHOD_CERT));
    assert_true(hba_uses_certificates(&f));
    hba_free(&f);
}

static void test_tokens(void **state)
{
    (void)state;
    struct hba_file f;
    struct hba_error err;
    /* A quoted keyword is a name; "" inside quotes is one quote; a list may have spaces. */
    assert_int_equal(parse("host \"all\",\"a\"\"b\", c all all trust\n"
                           "host all \\\n  all all \\\n  trust\n"
                           "host sameuser all all trust",
                           &f, &err),
                     HBA_OK);
    assert_int_equal(f.count, 3);
    assert_int_equal(f.lines[0].n_databases, 3);
    assert_int_equal(f.lines[0].databases[0].kind, HBA_NAME_EXACT);
    assert_string_equal(f.lines[0].databases[0].name, "all");
    assert_string_equal(f.lines[0].databases[1].name, "a\"b");
    assert_string_equal(f.lines[0].databases[2].name, "c");
    assert_int_equal(f.lines[1].line, 2); /* a continued line is its first line's */
    assert_int_equal(f.lines[1].method, HBA_METHOD_TRUST);
    assert_int_equal(f.lines[2].line, 5);
    assert_int_equal(f.lines[2].databases[0].kind, HBA_NAME_SAMEUSER);
    hba_free(&f);
}

static void test_include(void **state)
{
    (void)state;
    struct hba_file f;
    struct hba_error err;
    assert_int_equal(parse("host @dbs @users all trust", &f, &err), HBA_OK);
    assert_int_equal(f.lines[0].n_databases, 1);
    assert_string_equal(f.lines[0].databases[0].name, "shop");
    assert_int_equal(f.lines[0].n_users, 3);
    assert_string_equal(f.lines[0].users[2].name, "Carol X");
    hba_free(&f);
    expect_error("local all all trust\nhost all @missing all trust", HBA_EFILE, 2,
                 "could not read @missing: no such file");
    expect_error("host all @nested all trust", HBA_EUNSUPPORTED, 1, "may not include another");
    expect_error("host all @empty all trust", HBA_ESYNTAX, 1, "@empty names no one");
    assert_int_equal(hba_parse("host all @users all trust", 25, NULL, NULL, &f, &err), HBA_EFILE);
    hba_free(&f);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_error("hots all all all trust", HBA_ESYNTAX, 1, "invalid connection type \"hots\"");
    expect_error("local all", HBA_ESYNTAX, 1, "end-of-line before role specification");
    expect_error("\n\nhost all all", HBA_ESYNTAX, 3, "before IP address");
    expect_error("host all all 10.0.0.1", HBA_ESYNTAX, 1, "before netmask");
    expect_error("host all all 10.0.0.1 255.0.255.0 trust", HBA_ESYNTAX, 1, "invalid IP mask");
    expect_error("host all all 10.0.0.0/33 trust", HBA_ESYNTAX, 1, "invalid IP address or CIDR");
    expect_error("host all all all", HBA_ESYNTAX, 1, "before authentication method");
    expect_error("host all all all magic", HBA_ESYNTAX, 1, "invalid authentication method");
    expect_error("host all all all trust x", HBA_ESYNTAX, 1, "not in name=value format");
    expect_error("host \"all all all trust", HBA_ESYNTAX, 1, "unterminated quoted string");
    /* "a, all" is one list: the address field is then "trust", a host name. */
    expect_error("host a, all all trust", HBA_EUNSUPPORTED, 1, "host name \"trust\"");
    expect_error("host a,\nall all all trust", HBA_ESYNTAX, 1, "a list ends with a comma");
    expect_error("host all all all cert", HBA_ESYNTAX, 1, "only supported on hostssl");
    expect_error("host all all all trust clientcert=verify-ca", HBA_ESYNTAX, 1,
                 "clientcert can only be configured for \"hostssl\" rows");
    expect_error("hostssl all all all cert clientcert=verify-ca", HBA_ESYNTAX, 1,
                 "only accepts \"verify-full\"");
    expect_error("host all,all all all,all trust", HBA_ESYNTAX, 1, "multiple values");
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_error(big, HBA_ESYNTAX, 1, "longer than");
    struct hba_file f;
    struct hba_error err;
    /* A NUL inside the length given is refused, not read as the end. */
    assert_int_equal(hba_parse("local all all trust\0x", 22, NULL, NULL, &f, &err), HBA_ESYNTAX);
    hba_free(&f);
}

static void test_refused(void **state)
{
    (void)state;
    expect_error("host all +admins all trust", HBA_EUNSUPPORTED, 1, "role membership");
    expect_error("host samerole all all trust", HBA_EUNSUPPORTED, 1, "role membership");
    expect_error("host replication all all trust", HBA_EUNSUPPORTED, 1, "replication");
    expect_error("host all all samenet trust", HBA_EUNSUPPORTED, 1, "samenet");
    expect_error("host all all db.example.com trust", HBA_EUNSUPPORTED, 1,
                 "host name \"db.example.com\"");
    expect_error("host all all all ldap", HBA_EUNSUPPORTED, 1, "\"ldap\" is not supported");
    expect_error("local all all peer", HBA_EUNSUPPORTED, 1, "\"peer\" is not supported");
    expect_error("hostgssenc all all all trust", HBA_EUNSUPPORTED, 1, "GSSAPI");
    expect_error("host all all all trust map=x", HBA_EUNSUPPORTED, 1, "\"map\"");
    expect_error("hostssl all all all cert clientname=DN", HBA_EUNSUPPORTED, 1, "clientname=DN");
    expect_error("host all /^a all trust", HBA_EUNSUPPORTED, 1, "regular expression");
}

static void test_match(void **state)
{
    (void)state;
    const char *text = "local all all trust\n"
                       "hostssl shop alice all cert\n"
                       "hostnossl all all 192.168.0.0/16 reject\n"
                       "host sameuser all 10.0.0.0/8 scram-sha-256\n"
                       "host all bob 2001:db8::/32 trust\n"
                       "host \"Shop\" all all scram-sha-256\n";
    struct hba_file f;
    struct hba_error err;
    assert_int_equal(parse(text, &f, &err), HBA_OK);
    struct sockaddr_in lan = v4("192.168.1.5"), ten = v4("10.9.8.7"), out = v4("8.8.8.8");
    struct sockaddr_in6 net6 = v6("2001:db8::42"), mapped = v6("::ffff:10.1.1.1");
    assert_int_equal(match_line(&f, "x", "y", NULL, false), 1);
    assert_int_equal(match_line(&f, "shop", "alice", &out, true), 2);
    assert_int_equal(match_line(&f, "shop", "alice", &out, false), 0);
    assert_int_equal(match_line(&f, "shop", "alice", &lan, false), 3);
    assert_int_equal(match_line(&f, "alice", "alice", &ten, false), 4);
    assert_int_equal(match_line(&f, "alice", "alice", &mapped, true), 4);
    assert_int_equal(match_line(&f, "shop", "alice", &ten, false), 0);
    assert_int_equal(match_line(&f, "shop", "bob", &net6, false), 5);
    assert_int_equal(match_line(&f, "shop", "carol", &net6, false), 0);
    assert_int_equal(match_line(&f, "Shop", "carol", &net6, true), 6);
    assert_int_equal(match_line(&f, "SHOP", "carol", &net6, true), 0); /* names are exact */
    hba_free(&f);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_hba_XXXXXX", path[128], users[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/hba.conf", dir);
    snprintf(users, sizeof(users), "%s/users.txt", dir);
    FILE *fp = fopen(users, "w");
    fputs("alice\n", fp);
    fclose(fp);
    fp = fopen(path, "w");
    fputs("host all @users.txt all trust\nhost all all all bogus\n", fp);
    fclose(fp);
    struct hba_file f;
    assert_int_equal(hba_load(path, &f, err, sizeof(err)), HBA_ESYNTAX);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: invalid authentication method \"bogus\"", path);
    assert_string_equal(err, want);
    assert_string_equal(f.lines[0].users[0].name, "alice"); /* @file beside the file */
    hba_free(&f);
    fp = fopen(path, "w");
    fputs("# nothing but comments\n\n", fp);
    fclose(fp);
    assert_int_equal(hba_load(path, &f, err, sizeof(err)), HBA_ESYNTAX);
    assert_non_null(strstr(err, "contains no entries"));
    hba_free(&f);
    unlink(users);
    unlink(path);
    assert_int_equal(hba_load(path, &f, err, sizeof(err)), HBA_EFILE);
    assert_non_null(strstr(err, "could not open"));
    hba_free(&f);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_lines), cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_include),     cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_refused),     cmocka_unit_test(test_match),
        cmocka_unit_test(test_load_file),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("hba", tests, NULL, NULL);
}
