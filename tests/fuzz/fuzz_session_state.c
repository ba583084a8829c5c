/*
 * fuzz_session_state.c
 *    libFuzzer target for protocol/session_state.c, which reads a
 *    session's state back from a server before a move: the input is cut
 *    into DataRow bodies (a two-byte length, then that many bytes), each
 *    handed to session_state_row as a server's answer would be.  Besides
 *    not crashing: the replay built stays within its bound and is always a
 *    well-formed sequence of Parse, Bind, Execute (and the final Sync)
 *    messages whose lengths add up; the counts only grow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/session_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* Every message of the replay: a known type, a length within what is there. */
static void check_replay(struct session_state *st, int finished)
{
    size_t len = evbuffer_get_length(st->replay);
    check(len <= SESSION_STATE_MAX_BYTES);
    const uint8_t *p = evbuffer_pullup(st->replay, -1);
    size_t off = 0;
    char last = 0;
    while (off < len) {
        check(len - off >= 5);
        last = (char)p[off];
        check(last == 'P' || last == 'B' || last == 'E' || last == 'S');
        uint32_t mlen = pkt_be32(p + off + 1);
        check(mlen >= 4 && mlen - 4 <= len - off - 5);
        if (last == 'P') {
            struct pktreader r;
            pkt_reader_init(&r, p + off + 5, mlen - 4);
            pkt_get_cstr(&r);
            pkt_get_cstr(&r);
            uint16_t n = pkt_get_u16(&r);
            check(!r.failed && pkt_remaining(&r) == (size_t)n * 4);
        }
        off += 1 + mlen;
    }
    check(!finished || last == 'S');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session_state st;
    if (session_state_init(&st) != SESSION_STATE_OK)
        return 0;
    size_t off = 0;
    unsigned settings = 0, channels = 0, statements = 0;
    while (size - off >= 2) {
        size_t n = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (n > size - off)
            n = size - off;
        /* a copy of exactly n bytes, so that a read past the row is seen */
        uint8_t *row = malloc(n ? n : 1);
        if (row == NULL)
            break;
        memcpy(row, data + off, n);
        int rc = session_state_row(&st, row, n);
        free(row);
        off += n;
        check(rc == SESSION_STATE_OK || rc == SESSION_STATE_BAD || rc == SESSION_STATE_FULL);
        check(st.settings >= settings && st.channels >= channels && st.statements >= statements);
        settings = st.settings, channels = st.channels, statements = st.statements;
        if (rc != SESSION_STATE_OK)
            break; /* a move stops at the first row it cannot read */
    }
    check_replay(&st, 0);
    if (session_state_finish(&st) == SESSION_STATE_OK)
        check_replay(&st, 1);
    (void)session_state_unmovable(&st, "app");
    session_state_free(&st);
    return 0;
}
