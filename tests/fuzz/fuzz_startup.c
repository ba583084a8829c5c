/*
 * fuzz_startup.c
 *    libFuzzer target for protocol/startup.c: startup_packet_length,
 *    startup_parse and startup_param on whatever parsed, then
 *    startup_cut_names (names at most STARTUP_NAME_MAX bytes after, the
 *    packet still as described), and startup_is_tls_handshake (a
 *    direct TLS handshake is never a packet length).  Besides not
 *    crashing, a parse that succeeds must describe memory inside the packet
 *    and respect the documented limits; anything else traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/startup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* p lies inside buf and its string ends there too. */
static void check_cstr_inside(const char *p, const uint8_t *buf, size_t len)
{
    const uint8_t *u = (const uint8_t *)p;
    check(u >= buf && u < buf + len);
    check(memchr(u, 0, (size_t)(buf + len - u)) != NULL);
}

static void check_cancel(const struct startup_packet *sp, const uint8_t *buf, size_t len)
{
    check(sp->cancel_key_len >= CANCEL_KEY_V30_LEN && sp->cancel_key_len <= CANCEL_KEY_MAX_LEN);
    check(sp->cancel_key == buf + 12);
    check(12 + sp->cancel_key_len == len);
}

static void check_message(const struct startup_packet *sp, const uint8_t *buf, size_t len)
{
    check(PROTO_MAJOR(sp->version) == 3);
    check(sp->nparams <= STARTUP_MAX_PARAMS && sp->n_unknown_pq <= STARTUP_MAX_UNKNOWN_PQ);
    check(buf[len - 1] == 0);
    for (size_t i = 0; i < sp->nparams; i++) {
        check_cstr_inside(sp->params[i].name, buf, len);
        check_cstr_inside(sp->params[i].value, buf, len);
        check(strncmp(sp->params[i].name, "_pq_.", 5) != 0);
        /* The last of equal names wins, so the lookup finds i or a later one. */
        const char *v = startup_param(sp, sp->params[i].name);
        check(v != NULL && v >= sp->params[i].value);
    }
    for (size_t i = 0; i < sp->n_unknown_pq; i++) {
        check_cstr_inside(sp->unknown_pq[i], buf, len);
        check(strncmp(sp->unknown_pq[i], "_pq_.", 5) == 0);
    }
    check_cstr_inside(sp->user, buf, len);
    check(sp->user[0] != '\0');
    check(startup_param(sp, "user") == sp->user);
    check_cstr_inside(sp->database, buf, len);
    check(sp->database[0] != '\0');
}

static void check_parsed(const struct startup_packet *sp, const uint8_t *buf, size_t len)
{
    check(len >= STARTUP_MIN_LEN && len <= STARTUP_MAX_LEN);
    switch (sp->kind) {
    case STARTUP_SSL_REQUEST:
    case STARTUP_GSSENC_REQUEST:
        check(len == 8);
        break;
    case STARTUP_CANCEL_REQUEST:
        check_cancel(sp, buf, len);
        break;
    case STARTUP_MESSAGE:
        check_message(sp, buf, len);
        break;
    default:
        check(0);
    }
}

/* Parses a heap copy of exactly len bytes, so ASan flags any read past the packet. */
static void parse_copy(const uint8_t *data, size_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return;
    memcpy(buf, data, len);
    struct startup_packet sp;
    int rc = startup_parse(buf, len, &sp);
    check(startup_strerror(rc) != NULL);
    check(rc <= STARTUP_OK); /* never STARTUP_INCOMPLETE for a whole packet */
    if (rc == STARTUP_OK) {
        check_parsed(&sp, buf, len);
        startup_cut_names(buf, len, &sp);
        check_parsed(&sp, buf, len);
        if (sp.kind == STARTUP_MESSAGE)
            check(strlen(sp.user) <= STARTUP_NAME_MAX && strlen(sp.database) <= STARTUP_NAME_MAX);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t len = 0;
    int rc = startup_packet_length(data, size, &len);
    check(rc == STARTUP_OK || rc == STARTUP_INCOMPLETE || rc == STARTUP_EBADLEN);
    check((rc == STARTUP_INCOMPLETE) == (size < 4));
    /* A direct TLS handshake's first bytes never read as a packet's length. */
    if (startup_is_tls_handshake(data, size))
        check(rc != STARTUP_OK);
    check(startup_is_tls_handshake(data, size) == (size > 0 && data[0] == 0x16));
    if (rc == STARTUP_OK) {
        check(len >= STARTUP_MIN_LEN && len <= STARTUP_MAX_LEN);
        if (len <= size)
            parse_copy(data, len); /* the packet as a server would cut it */
    }
    parse_copy(data, size); /* and the whole input, declared length or not */
    return 0;
}
