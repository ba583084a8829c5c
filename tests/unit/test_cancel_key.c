/*
 * test_cancel_key.c
 *    Unit tests for the fleet's cancel keys (protocol/cancel_key.c), the
 *    PROXY v2 header a forwarded cancel request carries
 *    (protocol/proxy_proto.c's pp_build_v2, read back by pp_parse), and the
 *    per-network limit on cancel requests that cancel nothing
 *    (proxy/base/cancel_limit.c).  cmocka, TAP output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "protocol/cancel_key.h"
#include "protocol/proxy_proto.h"
#include "proxy/base/cancel_limit.h"

static const uint8_t secret[40] = "the fleet's secret, forty bytes long....";

static void fill(uint8_t *rnd, uint8_t seed)
{
    for (int i = 0; i < CANCEL_KEY_RANDOM; i++)
        rnd[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

static void test_v30_without_peering(void **state)
{
    (void)state;
    uint8_t rnd[CANCEL_KEY_RANDOM], key[4];
    uint32_t pid;
    struct cancel_key_info info;
    fill(rnd, 1);
    assert_int_equal(cancel_key_make(4242, 0, rnd, NULL, 0, &pid, key, 4), 0);
    assert_int_equal(pid, 4242); /* the server's real process ID */
    assert_memory_equal(key, rnd, 4);
    assert_int_equal(cancel_key_read(pid, key, 4, false, &info), 0);
    assert_int_equal(info.peer_id, 0);
    /* an instance of a fleet reads a real pid as its own key too */
    assert_int_equal(cancel_key_read(pid, key, 4, true, &info), 0);
    assert_int_equal(info.peer_id, 0);
}

static void test_v30_synthetic_pid(void **state)
{
    (void)state;
    uint8_t rnd[CANCEL_KEY_RANDOM], key[4];
    uint32_t pid;
    struct cancel_key_info info;
    for (int id = 1; id <= CANCEL_PEER_ID_MAX; id += 997) {
        fill(rnd, (uint8_t)id);
        rnd[3] |= 1; /* the flag bit comes out clear whatever the random byte */
        assert_int_equal(cancel_key_make(4242, id, rnd, NULL, 0, &pid, key, 4), 0);
        assert_true((pid & 0x80000000u) == 0); /* reads as a positive int */
        assert_true(pid > (1u << 22));         /* above any Linux pid_max */
        assert_int_equal((pid >> 16) & 0x3FFF, id);
        assert_int_equal(key[3] & 1, 0);
        assert_int_equal(cancel_key_read(pid, key, 4, true, &info), 0);
        assert_int_equal(info.peer_id, id);
        assert_false(info.forwarded);
        cancel_key_set_forwarded(key, 4, true);
        assert_int_equal(cancel_key_read(pid, key, 4, true, &info), 0);
        assert_true(info.forwarded);
        /* without peering, the same bytes name nobody */
        assert_int_equal(cancel_key_read(pid, key, 4, false, &info), 0);
        assert_int_equal(info.peer_id, 0);
    }
}

static void test_v32_signed(void **state)
{
    (void)state;
    uint8_t rnd[CANCEL_KEY_RANDOM], key[32], other[40];
    uint32_t pid;
    struct cancel_key_info info;
    fill(rnd, 9);
    assert_int_equal(cancel_key_make(777, 300, rnd, secret, sizeof(secret), &pid, key, 32), 0);
    assert_int_equal(pid, 777); /* 3.2 keeps the real pid */
    assert_int_equal(key[0], CANCEL_KEY_FORMAT);
    assert_int_equal(key[1] << 8 | key[2], 300);
    assert_int_equal(key[3], 0);
    assert_memory_equal(key + 4, rnd, 16);
    assert_int_equal(cancel_key_read(pid, key, 32, false, &info), 0);
    assert_int_equal(info.peer_id, 300);
    assert_true(cancel_key_mac_ok(key, 32, secret, sizeof(secret)));
    memcpy(other, secret, sizeof(other));
    other[39] ^= 1;
    assert_false(cancel_key_mac_ok(key, 32, other, sizeof(other)));
    /* the forwarded flag is not signed: a forwarded key still verifies */
    cancel_key_set_forwarded(key, 32, true);
    assert_true(cancel_key_mac_ok(key, 32, secret, sizeof(secret)));
    assert_int_equal(cancel_key_read(pid, key, 32, false, &info), 0);
    assert_true(info.forwarded);
    /* anything else changed does not */
    for (int i = 0; i < 32; i++) {
        if (i == 3)
            continue;
        key[i] ^= 0x10;
        assert_false(cancel_key_mac_ok(key, 32, secret, sizeof(secret)));
        key[i] ^= 0x10;
    }
}

static void test_v32_unsigned_and_refused(void **state)
{
    (void)state;
    uint8_t rnd[CANCEL_KEY_RANDOM], key[32];
    uint32_t pid;
    struct cancel_key_info info;
    fill(rnd, 3);
    assert_int_equal(cancel_key_make(5, 0, rnd, NULL, 0, &pid, key, 32), 0);
    assert_memory_equal(key + 20, rnd + 16, 12); /* no secret: random bytes in the MAC's place */
    assert_int_equal(cancel_key_read(pid, key, 32, true, &info), 0);
    assert_int_equal(info.peer_id, 0);
    key[0] = 0x02; /* a format pgnear does not make */
    assert_int_equal(cancel_key_read(pid, key, 32, true, &info), -1);
    key[0] = CANCEL_KEY_FORMAT;
    key[1] = 0xFF; /* a peer id out of range */
    assert_int_equal(cancel_key_read(pid, key, 32, true, &info), -1);
    assert_false(cancel_key_mac_ok(key, 4, secret, sizeof(secret)));
    /* what cannot be made */
    assert_int_equal(cancel_key_make(5, CANCEL_PEER_ID_MAX + 1, rnd, NULL, 0, &pid, key, 32), -1);
    assert_int_equal(cancel_key_make(5, -1, rnd, NULL, 0, &pid, key, 4), -1);
    assert_int_equal(cancel_key_make(5, 1, rnd, NULL, 0, &pid, key, 8), -1);
}

static void set_v4(struct sockaddr_storage *ss, const char *ip, int port)
{
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof(*ss));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &a->sin_addr);
}

static void set_v6(struct sockaddr_storage *ss, const char *ip, int port)
{
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
}

static void test_proxy_header_roundtrip(void **state)
{
    (void)state;
    struct sockaddr_storage src, dst;
    struct pp_tlv_types types;
    struct pp_header h;
    uint8_t buf[PP_V2_BUILD_MAX + 8];
    pp_tlv_types_default(&types);
    set_v4(&src, "203.0.113.7", 40000);
    set_v4(&dst, "10.0.0.6", 6432);
    size_t n =
        pp_build_v2(buf, sizeof(buf), (struct sockaddr *)&src, (struct sockaddr *)&dst, 3, NULL);
    assert_int_equal(n, PP_V2_HDR_LEN + 12 + 5);
    buf[n] = 0; /* the CancelRequest would follow */
    assert_int_equal(pp_parse(buf, n + 1, &types, &h), PP_OK);
    assert_int_equal(h.length, n);
    assert_false(h.local);
    assert_int_equal(h.peer_id, 3);
    assert_memory_equal(&((struct sockaddr_in *)&h.src)->sin_addr,
                        &((struct sockaddr_in *)&src)->sin_addr, 4);
    assert_int_equal(((struct sockaddr_in *)&h.src)->sin_port, htons(40000));

    set_v6(&src, "2001:db8::7", 1234);
    set_v6(&dst, "2001:db8::6", 6432);
    n = pp_build_v2(buf, sizeof(buf), (struct sockaddr *)&src, (struct sockaddr *)&dst, 0, NULL);
    assert_int_equal(n, PP_V2_HDR_LEN + 36);
    assert_int_equal(pp_parse(buf, n, &types, &h), PP_OK);
    assert_int_equal(h.peer_id, 0);
    assert_int_equal(h.src.ss_family, AF_INET6);

    /* mixed families: a LOCAL header, which keeps the connection's own address */
    set_v4(&dst, "10.0.0.6", 6432);
    n = pp_build_v2(buf, sizeof(buf), (struct sockaddr *)&src, (struct sockaddr *)&dst, 2, NULL);
    assert_int_equal(pp_parse(buf, n, &types, &h), PP_OK);
    assert_true(h.local);
    assert_int_equal(h.peer_id, 2);
    assert_int_equal(
        pp_build_v2(buf, PP_V2_HDR_LEN, (struct sockaddr *)&src, (struct sockaddr *)&dst, 2, NULL),
        0);
}

/* A forwarded request signed with the fleet's secret: the MAC reads back, and binds it all. */
static void test_forward_mac(void **state)
{
    (void)state;
    struct sockaddr_storage src, dst, other;
    struct pp_tlv_types types;
    struct pp_header h;
    uint8_t buf[PP_V2_BUILD_MAX], mac[PP_PEER_MAC_LEN], again[PP_PEER_MAC_LEN];
    const uint8_t key[4] = {1, 2, 3, 5};
    pp_tlv_types_default(&types);
    set_v4(&src, "203.0.113.7", 40000);
    set_v4(&dst, "10.0.0.6", 6432);
    set_v4(&other, "203.0.113.8", 40000);
    assert_true(cancel_forward_mac(secret, sizeof(secret), 2, (struct sockaddr *)&src,
                                   (struct sockaddr *)&dst, 0x40021234, key, 4, mac));
    size_t n =
        pp_build_v2(buf, sizeof(buf), (struct sockaddr *)&src, (struct sockaddr *)&dst, 2, mac);
    assert_int_equal(n, PP_V2_BUILD_MAX - 24); /* IPv4: 24 bytes of addresses fewer */
    assert_int_equal(pp_parse(buf, n, &types, &h), PP_OK);
    assert_int_equal(h.peer_id, 2);
    assert_true(h.has_peer_mac);
    assert_memory_equal(h.peer_mac, mac, PP_PEER_MAC_LEN);
    /* the receiver computes the same from what it parsed */
    assert_true(cancel_forward_mac(secret, sizeof(secret), h.peer_id, (struct sockaddr *)&h.src,
                                   (struct sockaddr *)&h.dst, 0x40021234, key, 4, again));
    assert_memory_equal(again, mac, PP_PEER_MAC_LEN);
    /* another caller, peer, pid, key or secret: another MAC */
    const uint8_t key2[4] = {1, 2, 3, 4};
    cancel_forward_mac(secret, sizeof(secret), 2, (struct sockaddr *)&other,
                       (struct sockaddr *)&dst, 0x40021234, key, 4, again);
    assert_memory_not_equal(again, mac, PP_PEER_MAC_LEN);
    cancel_forward_mac(secret, sizeof(secret), 3, (struct sockaddr *)&src, (struct sockaddr *)&dst,
                       0x40021234, key, 4, again);
    assert_memory_not_equal(again, mac, PP_PEER_MAC_LEN);
    cancel_forward_mac(secret, sizeof(secret), 2, (struct sockaddr *)&src, (struct sockaddr *)&dst,
                       0x40021235, key, 4, again);
    assert_memory_not_equal(again, mac, PP_PEER_MAC_LEN);
    cancel_forward_mac(secret, sizeof(secret), 2, (struct sockaddr *)&src, (struct sockaddr *)&dst,
                       0x40021234, key2, 4, again);
    assert_memory_not_equal(again, mac, PP_PEER_MAC_LEN);
    cancel_forward_mac(secret, sizeof(secret) - 1, 2, (struct sockaddr *)&src,
                       (struct sockaddr *)&dst, 0x40021234, key, 4, again);
    assert_memory_not_equal(again, mac, PP_PEER_MAC_LEN);
}

static void test_proxy_peer_tlv_strict(void **state)
{
    (void)state;
    struct sockaddr_storage src, dst;
    struct pp_tlv_types types;
    struct pp_header h;
    uint8_t buf[PP_V2_BUILD_MAX + 8];
    pp_tlv_types_default(&types);
    set_v4(&src, "203.0.113.7", 40000);
    set_v4(&dst, "10.0.0.6", 6432);
    size_t n =
        pp_build_v2(buf, sizeof(buf), (struct sockaddr *)&src, (struct sockaddr *)&dst, 3, NULL);
    buf[n - 3] = 1; /* a value of 1 byte, not 2: the header one byte shorter */
    buf[15] = (uint8_t)(buf[15] - 1);
    assert_int_equal(pp_parse(buf, n - 1, &types, &h), PP_EINVALID);
    n = pp_build_v2(buf, sizeof(buf), (struct sockaddr *)&src, (struct sockaddr *)&dst, 3, NULL);
    buf[n - 2] = 0; /* peer id 0 */
    buf[n - 1] = 0;
    assert_int_equal(pp_parse(buf, n, &types, &h), PP_EINVALID);
}

static void test_cancel_limit(void **state)
{
    (void)state;
    static struct cancel_limit l;
    struct sockaddr_storage a, b, c, v6a, v6b;
    set_v4(&a, "198.51.100.10", 1);
    set_v4(&b, "198.51.100.200", 2); /* the same /24 */
    set_v4(&c, "198.51.101.10", 3);  /* another */
    set_v6(&v6a, "2001:db8:1:2::1", 1);
    set_v6(&v6b, "2001:db8:1:2:ffff::9", 1); /* the same /64 */
    int64_t t = 1000000;
    assert_false(cancel_limit_blocked(&l, (struct sockaddr *)&a, 10, t));
    for (int i = 0; i < 20; i++) /* the burst: twice the rate */
        cancel_limit_miss(&l, (struct sockaddr *)&a, 10, t);
    assert_true(cancel_limit_blocked(&l, (struct sockaddr *)&a, 10, t));
    assert_true(cancel_limit_blocked(&l, (struct sockaddr *)&b, 10, t));
    assert_false(cancel_limit_blocked(&l, (struct sockaddr *)&c, 10, t));
    assert_false(cancel_limit_blocked(&l, (struct sockaddr *)&a, 0, t)); /* 0: no limit */
    /* a tenth of a second: one token back */
    assert_false(cancel_limit_blocked(&l, (struct sockaddr *)&a, 10, t + 100));
    cancel_limit_miss(&l, (struct sockaddr *)&a, 10, t + 100);
    assert_true(cancel_limit_blocked(&l, (struct sockaddr *)&a, 10, t + 100));
    for (int i = 0; i < 20; i++)
        cancel_limit_miss(&l, (struct sockaddr *)&v6a, 10, t);
    assert_true(cancel_limit_blocked(&l, (struct sockaddr *)&v6b, 10, t));
    assert_false(cancel_limit_blocked(&l, (struct sockaddr *)&v6b, 10, t + 2000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v30_without_peering),
        cmocka_unit_test(test_v30_synthetic_pid),
        cmocka_unit_test(test_v32_signed),
        cmocka_unit_test(test_v32_unsigned_and_refused),
        cmocka_unit_test(test_proxy_header_roundtrip),
        cmocka_unit_test(test_proxy_peer_tlv_strict),
        cmocka_unit_test(test_forward_mac),
        cmocka_unit_test(test_cancel_limit),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("cancel_key", tests, NULL, NULL);
}
