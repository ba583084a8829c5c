/*
 * fuzz_listen_sql.c
 *    libFuzzer target for what pgnear reads of LISTEN and UNLISTEN in a
 *    client's text and messages: protocol/listen_sql.c (a Query of LISTEN
 *    and UNLISTEN alone; the UNLISTEN statements of any text),
 *    protocol/pg_encoding.c (the text to UTF8 from LATIN1, SJIS, UTF8,
 *    and a notification back) and proxy/session/notify_watch.c's reading
 *    of a Query, Parse, Bind or Execute.  The first byte picks the message
 *    type and the encoding.  Besides not crashing: every channel read is a
 *    NUL-terminated name of at most 63 bytes, not empty unless UNLISTEN *
 *    or DISCARD ALL; a conversion that succeeds fits its buffer and ends
 *    with a NUL; a refusal names a byte within the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/listen_sql.h"
#include "protocol/pg_encoding.h"
#include "protocol/pg_error.h"
#include "proxy/session/notify_watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* notify_watch.c applies a committed UNLISTEN through the hub: not reached by the reading. */
void notify_hub_unlisten(struct session *s, const struct listen_op *op);
void notify_hub_unlisten(struct session *s, const struct listen_op *op)
{
    (void)s;
    (void)op;
}

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void check_ops(const struct listen_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(ops[i].channel, sizeof(ops[i].channel));
        check(len <= LISTEN_SQL_NAME_MAX);
        check(len > 0 || ops[i].kind == LISTEN_OP_UNLISTEN_ALL ||
              ops[i].kind == LISTEN_OP_DISCARD_ALL);
    }
}

static void convert(const char *from, const char *to, const uint8_t *in, size_t len)
{
    char out[512];
    size_t n, bad;
    enum pg_enc_rc rc = pg_encoding_convert(from, to, in, len, out, sizeof(out), &n, &bad);
    if (rc == PG_ENC_OK) {
        check(n < sizeof(out) && out[n] == '\0');
    } else if (rc == PG_ENC_INVALID || rc == PG_ENC_UNMAPPABLE) {
        check(bad <= len);
        struct pg_error e;
        pg_encoding_error(&e, rc, from, to, in, len, bad);
        check(pg_error_is_set(&e));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const char *const encodings[] = {"UTF8", "LATIN1", "SJIS", "SQL_ASCII"};
    static const uint8_t types[] = {'Q', 'P', 'B', 'E'};
    uint8_t pick = data[0];
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    struct listen_op ops[LISTEN_SQL_OPS_MAX];
    check_ops(ops, listen_sql_parse(text, len, ops, LISTEN_SQL_OPS_MAX));
    check_ops(ops, listen_sql_unlistens(text, len, ops, LISTEN_SQL_OPS_MAX));
    (void)listen_sql_may_unlisten(text, len);
    if (len <= 100) {
        convert(encodings[pick & 3], "UTF8", text, len);
        convert("UTF8", encodings[pick & 3], text, len);
    }
    struct notify_watch_msg m;
    notify_watch_read(types[(pick >> 2) & 3], text, len, &m);
    check(m.nops <= NOTIFY_WATCH_MAX);
    check_ops(m.ops, m.nops);
    check(!m.name_ok || strlen(m.name) < sizeof(m.name));
    return 0;
}
