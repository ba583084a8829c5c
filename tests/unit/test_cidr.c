/*
 * test_cidr.c — routing/cidr.c, the one address match (trusted_proxies,
 * the peers' addresses, auth_hba_file's lines): cidr_contains on IPv4,
 * IPv6 and IPv4-mapped IPv6 addresses at every kind of prefix (whole
 * bytes, a byte cut, /0), a Unix socket never inside; cidr_addr_parse on
 * bare addresses; and a list built from them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "routing/cidr.h"

/* An address as accept() gives it: IPv4 into a sockaddr_in, anything else into a sockaddr_in6. */
static const struct sockaddr *addr_of(struct sockaddr_storage *ss, const char *text)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return (const struct sockaddr *)ss;
}

/* One entry, from the text a configuration holds. */
static struct cidr cidr_of(const char *text)
{
    struct cidr_list l;
    char err[128];
    assert_true(cidr_list_parse(&l, text, err, sizeof(err)));
    assert_int_equal(l.count, 1);
    return l.items[0];
}

/* Whether text's address is inside entry's. */
static bool inside(const char *entry, const char *text)
{
    struct sockaddr_storage ss;
    struct cidr c = cidr_of(entry);
    return cidr_contains(&c, addr_of(&ss, text));
}

static void test_v4(void **state)
{
    (void)state;
    assert_true(inside("10.0.0.0/8", "10.255.1.2"));
    assert_false(inside("10.0.0.0/8", "11.0.0.1"));
    assert_true(inside("192.168.4.0/22", "192.168.7.255")); /* a prefix inside a byte */
    assert_false(inside("192.168.4.0/22", "192.168.8.0"));
    assert_false(inside("192.168.4.0/22", "192.168.3.255"));
    assert_true(inside("127.0.0.1", "127.0.0.1")); /* a bare address: /32 */
    assert_false(inside("127.0.0.1", "127.0.0.2"));
    assert_true(inside("0.0.0.0/0", "203.0.113.9"));
    assert_false(inside("0.0.0.0/0", "::1")); /* another family */
    assert_true(inside("10.1.2.3/31", "10.1.2.2"));
    assert_false(inside("10.1.2.3/31", "10.1.2.4"));
}

static void test_v6(void **state)
{
    (void)state;
    assert_true(inside("::1", "::1"));
    assert_false(inside("::1", "::2"));
    assert_true(inside("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(inside("2001:db8::/32", "2001:db9::1"));
    assert_true(inside("fd00::/7", "fdff::1")); /* a prefix inside the first byte */
    assert_true(inside("fd00::/7", "fc00::1"));
    assert_false(inside("fd00::/7", "fe00::1"));
    assert_true(inside("::/0", "2001:db8::1"));
    assert_false(inside("::/0", "10.0.0.1"));
    assert_true(inside("2001:db8::1/128", "2001:db8::1"));
    assert_false(inside("2001:db8::1/128", "2001:db8::1:0"));
}

/* An IPv4-mapped IPv6 address (a dual-stack listener's) is the IPv4 one it carries. */
static void test_mapped(void **state)
{
    (void)state;
    assert_true(inside("10.0.0.0/8", "::ffff:10.9.8.7"));
    assert_false(inside("10.0.0.0/8", "::ffff:11.9.8.7"));
    assert_true(inside("127.0.0.1", "::ffff:127.0.0.1"));
    assert_false(inside("::ffff:0:0/96", "::ffff:10.9.8.7")); /* never an IPv6 entry */
    assert_false(inside("::/0", "::ffff:10.9.8.7"));
    assert_true(inside("0.0.0.0/0", "::ffff:10.9.8.7"));
}

static void test_unix_socket(void **state)
{
    (void)state;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct cidr any4 = cidr_of("0.0.0.0/0"), any6 = cidr_of("::/0");
    assert_false(cidr_contains(&any4, (const struct sockaddr *)&un));
    assert_false(cidr_contains(&any6, (const struct sockaddr *)&un));
}

static void test_addr_parse(void **state)
{
    (void)state;
    uint8_t addr[16];
    assert_int_equal(cidr_addr_parse("192.0.2.1", addr), AF_INET);
    assert_memory_equal(addr, "\xc0\x00\x02\x01", 4);
    assert_int_equal(cidr_addr_parse("255.255.240.0", addr), AF_INET);
    assert_int_equal(cidr_addr_parse("2001:db8::1", addr), AF_INET6);
    assert_int_equal(addr[0], 0x20);
    assert_int_equal(addr[15], 0x01);
    assert_int_equal(cidr_addr_parse("10.0.0.0/8", addr), 0); /* no prefix here */
    assert_int_equal(cidr_addr_parse("localhost", addr), 0);
    assert_int_equal(cidr_addr_parse("", addr), 0);
    assert_int_equal(cidr_addr_parse("10.0.0.256", addr), 0);
}

static void test_list(void **state)
{
    (void)state;
    struct cidr_list l;
    struct sockaddr_storage ss;
    char err[128];
    assert_true(cidr_list_parse(&l, "127.0.0.1/32, 10.0.0.0/8,::1", err, sizeof(err)));
    assert_int_equal(l.count, 3);
    assert_true(cidr_list_contains(&l, addr_of(&ss, "10.3.3.3")));
    assert_true(cidr_list_contains(&l, addr_of(&ss, "::ffff:127.0.0.1")));
    assert_true(cidr_list_contains(&l, addr_of(&ss, "::1")));
    assert_false(cidr_list_contains(&l, addr_of(&ss, "127.0.0.2")));
    assert_true(cidr_list_add_host(&l, addr_of(&ss, "::ffff:192.0.2.7")));
    assert_int_equal(l.items[3].family, AF_INET); /* added as the IPv4 it carries */
    assert_true(cidr_list_contains(&l, addr_of(&ss, "192.0.2.7")));
    assert_false(cidr_list_contains(&l, addr_of(&ss, "192.0.2.8")));
    assert_false(cidr_list_parse(&l, "10.0.0.0/33", err, sizeof(err)));
    assert_false(cidr_list_parse(&l, "10.0.0.0/", err, sizeof(err)));
    assert_false(cidr_list_parse(&l, "::1/129", err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4),         cmocka_unit_test(test_v6),
        cmocka_unit_test(test_mapped),     cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_addr_parse), cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
