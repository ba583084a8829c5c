/*
 * fuzz_cancel_key.c
 *    libFuzzer target for protocol/cancel_key.c, the cancel keys that say
 *    which instance of a fleet holds the session.  The input is read as a
 *    CancelRequest's process ID and key (any length, any bytes) and as the
 *    material for keys made anew.  Promises that must hold, else it traps:
 *    a key read never names a peer out of range; a key made for a peer
 *    reads back as that peer, not forwarded, and as forwarded once the
 *    flag is set, with nothing else changed; a 3.2 key made with a secret
 *    verifies with it and not with another, and not once a byte of its
 *    random part or MAC changes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/cancel_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* Whatever arrives: read it as a receiver would, with and without peering. */
static void read_any(const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    uint32_t pid = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | data[2] << 8 | data[3];
    size_t len = size - 4 > CANCEL_KEY_V32_LEN ? CANCEL_KEY_V32_LEN : size - 4;
    for (int peering = 0; peering < 2; peering++) {
        struct cancel_key_info info;
        if (cancel_key_read(pid, data + 4, len, peering, &info) == 0)
            check(info.peer_id >= 0 && info.peer_id <= CANCEL_PEER_ID_MAX);
    }
    (void)cancel_key_mac_ok(data + 4, len, data,
                            size < CANCEL_SECRET_MIN ? size : CANCEL_SECRET_MIN);
}

/* A key made from the input's bytes keeps its promises. */
static void make_and_read(const uint8_t *data, size_t size)
{
    uint8_t rnd[CANCEL_KEY_RANDOM] = {0}, secret[CANCEL_SECRET_MIN], other[CANCEL_SECRET_MIN];
    if (size < 3)
        return;
    int peer_id = (data[0] << 8 | data[1]) % (CANCEL_PEER_ID_MAX + 1);
    uint32_t real_pid = data[2] & 0x3F;
    memcpy(rnd, data + 3, size - 3 < sizeof(rnd) ? size - 3 : sizeof(rnd));
    for (size_t i = 0; i < sizeof(secret); i++) {
        secret[i] = (uint8_t)(data[i % size] + i);
        other[i] = (uint8_t)(secret[i] ^ (i == 7));
    }
    const size_t lens[2] = {CANCEL_KEY_V30_LEN, CANCEL_KEY_V32_LEN};
    for (int l = 0; l < 2; l++) {
        uint8_t key[CANCEL_KEY_V32_LEN], copy[CANCEL_KEY_V32_LEN];
        uint32_t pid;
        struct cancel_key_info info;
        check(cancel_key_make(real_pid, peer_id, rnd, secret, sizeof(secret), &pid, key, lens[l]) ==
              0);
        check(cancel_key_read(pid, key, lens[l], peer_id != 0, &info) == 0);
        check(info.peer_id == peer_id && !info.forwarded);
        check(lens[l] == CANCEL_KEY_V32_LEN || peer_id != 0 || pid == real_pid);
        memcpy(copy, key, lens[l]);
        cancel_key_set_forwarded(copy, lens[l], true);
        check(cancel_key_read(pid, copy, lens[l], peer_id != 0, &info) == 0);
        bool flagged = lens[l] == CANCEL_KEY_V32_LEN || peer_id != 0; /* a fleet's format */
        check(info.peer_id == peer_id && info.forwarded == flagged);
        cancel_key_set_forwarded(copy, lens[l], false);
        check(memcmp(copy, key, lens[l]) == 0 || !flagged);
        if (lens[l] != CANCEL_KEY_V32_LEN)
            continue;
        check(cancel_key_mac_ok(key, lens[l], secret, sizeof(secret)));
        check(!cancel_key_mac_ok(key, lens[l], other, sizeof(other)));
        size_t at = 4 + (size_t)data[size - 1] % 28; /* the random part or the MAC */
        key[at] ^= 0x01;
        check(!cancel_key_mac_ok(key, lens[l], secret, sizeof(secret)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_any(data, size);
    make_and_read(data, size);
    return 0;
}
