/*
 * cancel_key.c — cancel keys that name the instance holding the session
 * (cancel_key.h).
 */
#include "protocol/cancel_key.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <netinet/in.h>

#include "protocol/proxy_proto.h"

/* The 96 bits of HMAC-SHA256 a 3.2 key carries, over its format, id and random bytes. */
static bool cancel_key_mac(const uint8_t *key, const uint8_t *secret, size_t secret_len,
                           uint8_t mac[CANCEL_V32_MAC_LEN])
{
    uint8_t input[3 + CANCEL_V32_RANDOM], full[EVP_MAX_MD_SIZE];
    unsigned int full_len = 0;
    memcpy(input, key, 3);
    memcpy(input + 3, key + 4, CANCEL_V32_RANDOM);
    if (HMAC(EVP_sha256(), secret, (int)secret_len, input, sizeof(input), full, &full_len) ==
            NULL ||
        full_len < CANCEL_V32_MAC_LEN)
        return false;
    memcpy(mac, full, CANCEL_V32_MAC_LEN);
    return true;
}

int cancel_key_make(uint32_t real_pid, int peer_id, const uint8_t *rnd, const uint8_t *secret,
                    size_t secret_len, uint32_t *pid, uint8_t *key, size_t len)
{
    if (peer_id < 0 || peer_id > CANCEL_PEER_ID_MAX)
        return -1;
    if (len == CANCEL_KEY_V30_LEN) {
        memcpy(key, rnd, CANCEL_KEY_V30_LEN);
        *pid = real_pid;
        if (peer_id == 0)
            return 0;
        *pid = CANCEL_SYNTHETIC | (uint32_t)peer_id << 16 | (uint32_t)rnd[4] << 8 | rnd[5];
        cancel_key_set_forwarded(key, len, false);
        return 0;
    }
    if (len != CANCEL_KEY_V32_LEN)
        return -1;
    *pid = real_pid;
    key[0] = CANCEL_KEY_FORMAT;
    key[1] = (uint8_t)(peer_id >> 8);
    key[2] = (uint8_t)peer_id;
    key[3] = 0;
    memcpy(key + 4, rnd, CANCEL_V32_RANDOM);
    /* Without a secret the MAC's bytes are random too: 28 random bytes. */
    if (secret == NULL || !cancel_key_mac(key, secret, secret_len, key + CANCEL_V32_MAC_OFF))
        memcpy(key + CANCEL_V32_MAC_OFF, rnd + CANCEL_V32_RANDOM, CANCEL_V32_MAC_LEN);
    return 0;
}

int cancel_key_read(uint32_t pid, const uint8_t *key, size_t len, bool peering,
                    struct cancel_key_info *out)
{
    *out = (struct cancel_key_info){0, false};
    if (len == CANCEL_KEY_V32_LEN) {
        if (key[0] != CANCEL_KEY_FORMAT)
            return -1;
        out->peer_id = key[1] << 8 | key[2];
        out->forwarded = (key[3] & 1) != 0;
        return out->peer_id <= CANCEL_PEER_ID_MAX ? 0 : -1;
    }
    /* A real process ID never has bit 30 (Linux's pid_max is at most 2^22). */
    if (len == CANCEL_KEY_V30_LEN && peering && (pid & 0xC0000000u) == CANCEL_SYNTHETIC) {
        out->peer_id = (int)(pid >> 16 & CANCEL_PEER_ID_MAX);
        out->forwarded = (key[3] & 1) != 0;
    }
    return 0;
}

void cancel_key_set_forwarded(uint8_t *key, size_t len, bool on)
{
    /* byte 3 either way: 3.2's flags byte, 3.0's secret's last byte */
    if (len == CANCEL_KEY_V32_LEN || len == CANCEL_KEY_V30_LEN)
        key[3] = on ? (uint8_t)(key[3] | 1) : (uint8_t)(key[3] & ~1);
}

bool cancel_key_mac_ok(const uint8_t *key, size_t len, const uint8_t *secret, size_t secret_len)
{
    uint8_t mac[CANCEL_V32_MAC_LEN];
    if (len != CANCEL_KEY_V32_LEN || !cancel_key_mac(key, secret, secret_len, mac))
        return false;
    return CRYPTO_memcmp(mac, key + CANCEL_V32_MAC_OFF, CANCEL_V32_MAC_LEN) == 0;
}

/* An address as the MAC reads it: family, address bytes, port; its length. */
static size_t cancel_mac_addr(const struct sockaddr *sa, uint8_t *out)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        out[0] = 4;
        memcpy(out + 1, &a->sin_addr, 4);
        memcpy(out + 5, &a->sin_port, 2);
        return 7;
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    out[0] = 6;
    memcpy(out + 1, &a->sin6_addr, 16);
    memcpy(out + 17, &a->sin6_port, 2);
    return 19;
}

bool cancel_forward_mac(const uint8_t *secret, size_t secret_len, int peer_id,
                        const struct sockaddr *src, const struct sockaddr *dst, uint32_t pid,
                        const uint8_t *key, size_t key_len, uint8_t *mac)
{
    uint8_t input[2 + 2 * 19 + 4 + CANCEL_KEY_V32_LEN], full[EVP_MAX_MD_SIZE];
    unsigned int full_len = 0;
    size_t n = 0;
    if (key_len > CANCEL_KEY_V32_LEN)
        return false;
    input[n++] = (uint8_t)(peer_id >> 8);
    input[n++] = (uint8_t)peer_id;
    bool both = (src->sa_family == AF_INET || src->sa_family == AF_INET6) &&
                src->sa_family == dst->sa_family;
    if (both) {
        n += cancel_mac_addr(src, input + n);
        n += cancel_mac_addr(dst, input + n);
    }
    for (int i = 3; i >= 0; i--)
        input[n++] = (uint8_t)(pid >> (8 * i));
    memcpy(input + n, key, key_len);
    n += key_len;
    if (HMAC(EVP_sha256(), secret, (int)secret_len, input, n, full, &full_len) == NULL ||
        full_len < PP_PEER_MAC_LEN)
        return false;
    memcpy(mac, full, PP_PEER_MAC_LEN);
    return true;
}
