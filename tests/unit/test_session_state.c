/*
 * test_session_state.c
 *    Unit tests for protocol/session_state.c: the rows of a session's
 *    state as a server sends them, and the messages that replay them on
 *    another server (cmocka, TAP).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/session_state.h"
#include "protocol/sql_quote.h"

/* A DataRow body of four text columns; NULL is a NULL column. */
static size_t row(uint8_t *buf, size_t cap, const char *k, const char *n, const char *v,
                  const char *t)
{
    const char *cols[4] = {k, n, v, t};
    size_t off = 0;
    buf[off++] = 0;
    buf[off++] = 4;
    for (int i = 0; i < 4; i++) {
        uint32_t len = cols[i] ? (uint32_t)strlen(cols[i]) : 0xffffffffu;
        assert_true(off + 4 + (cols[i] ? strlen(cols[i]) : 0) <= cap);
        pkt_store_be32(buf + off, len);
        off += 4;
        if (cols[i] != NULL) {
            memcpy(buf + off, cols[i], len);
            off += len;
        }
    }
    return off;
}

static int feed(struct session_state *st, const char *k, const char *n, const char *v,
                const char *t)
{
    uint8_t buf[4096];
    size_t len = row(buf, sizeof(buf), k, n, v, t);
    return session_state_row(st, buf, len);
}

/* The replay as "P:name|text|types;B:params;E;S" for reading in asserts. */
static char *replay_text(struct session_state *st)
{
    size_t len = evbuffer_get_length(st->replay);
    uint8_t *p = evbuffer_pullup(st->replay, -1);
    char *out = calloc(1, len * 4 + 64);
    size_t o = 0, off = 0;
    while (off < len) {
        assert_true(len - off >= 5);
        char type = (char)p[off];
        uint32_t mlen = pkt_be32(p + off + 1);
        assert_true(mlen >= 4 && mlen - 4 <= len - off - 5);
        const uint8_t *b = p + off + 5;
        size_t blen = mlen - 4;
        o += (size_t)sprintf(out + o, "%c", type);
        if (type == 'P') {
            struct pktreader r;
            pkt_reader_init(&r, b, blen);
            const char *name = pkt_get_cstr(&r), *text = pkt_get_cstr(&r);
            uint16_t n = pkt_get_u16(&r);
            o += (size_t)sprintf(out + o, ":%s|%s|", name, text);
            for (uint16_t i = 0; i < n; i++)
                o += (size_t)sprintf(out + o, "%s%u", i ? "," : "", pkt_get_u32(&r));
            assert_false(r.failed);
            assert_int_equal(pkt_remaining(&r), 0);
        } else if (type == 'B') {
            struct pktreader r;
            pkt_reader_init(&r, b, blen);
            pkt_get_cstr(&r);
            pkt_get_cstr(&r);
            assert_int_equal(pkt_get_u16(&r), 0);
            uint16_t n = pkt_get_u16(&r);
            o += (size_t)sprintf(out + o, ":");
            for (uint16_t i = 0; i < n; i++) {
                uint32_t l = pkt_get_u32(&r);
                const uint8_t *v = pkt_get_bytes(&r, l);
                o += (size_t)sprintf(out + o, "%s%.*s", i ? "=" : "", (int)l, (const char *)v);
            }
            assert_int_equal(pkt_get_u16(&r), 0);
            assert_false(r.failed);
        }
        o += (size_t)sprintf(out + o, ";");
        off += 1 + mlen;
    }
    return out;
}

static void test_facts(void **state)
{
    (void)state;
    struct session_state st;
    assert_int_equal(session_state_init(&st), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "f", "temp", "0", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "f", "advisory", "0", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "f", "hold", "0", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "f", "lsn", "16/B374D848", "false 8192 16777216"), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "f", "user", "app", NULL), SESSION_STATE_OK);
    assert_true(st.lsn_known);
    assert_int_equal(st.lsn, ((uint64_t)0x16 << 32) | 0xB374D848u);
    assert_false(st.in_recovery);
    assert_null(session_state_unmovable(&st, "app"));
    assert_string_equal(session_state_unmovable(&st, "other"), "it ran SET SESSION AUTHORIZATION");
    assert_int_equal(feed(&st, "f", "temp", "2", NULL), SESSION_STATE_OK);
    assert_string_equal(session_state_unmovable(&st, "app"), "it has temporary tables");
    st.temp_tables = 0;
    assert_int_equal(feed(&st, "f", "advisory", "1", NULL), SESSION_STATE_OK);
    assert_string_equal(session_state_unmovable(&st, "app"),
                        "it holds session-level advisory locks");
    st.advisory_locks = 0;
    assert_int_equal(feed(&st, "f", "hold", "3", NULL), SESSION_STATE_OK);
    assert_string_equal(session_state_unmovable(&st, "app"), "it has WITH HOLD cursors open");
    /* a standby that replayed nothing yet: no position, no error */
    assert_int_equal(feed(&st, "f", "lsn", NULL, "true 8192 16777216"), SESSION_STATE_OK);
    assert_true(st.in_recovery);
    /* a primary's insert position just past a page header is taken back to the record's end */
    assert_int_equal(feed(&st, "f", "lsn", "0/3002018", "false 8192 16777216"), SESSION_STATE_OK);
    assert_int_equal(st.lsn, 0x3002000);
    /* a standby's replayed position is a record's end already */
    assert_int_equal(feed(&st, "f", "lsn", "0/3002018", "true 8192 16777216"), SESSION_STATE_OK);
    assert_int_equal(st.lsn, 0x3002018);
    assert_int_equal(evbuffer_get_length(st.replay), 0);
    session_state_free(&st);
}

static void test_replay_order_and_quoting(void **state)
{
    (void)state;
    struct session_state st;
    assert_int_equal(session_state_init(&st), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "s", "DateStyle", "SQL, DMY", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "s", "application_name", "it's \"q\"", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "r", "role", "reader", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "l", "Chan \"One\"", NULL, NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "q", "s1", "PREPARE s1(int) AS SELECT $1", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "p", "P0_1", "SELECT $1::text || $2", "{25,23}"), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "p", "none", "SELECT 1", "{}"), SESSION_STATE_OK);
    assert_int_equal(session_state_finish(&st), SESSION_STATE_OK);
    assert_int_equal(st.settings, 2);
    assert_true(st.role_set);
    assert_int_equal(st.channels, 1);
    assert_int_equal(st.statements, 3);
    char *text = replay_text(&st);
    assert_string_equal(text, "P:|SELECT pg_catalog.set_config($1, $2, false)|25,25;"
                              "B:DateStyle=SQL, DMY;E;"
                              "B:application_name=it's \"q\";E;"
                              "B:role=reader;E;"
                              "P:|LISTEN \"Chan \"\"One\"\"\"|;B:;E;"
                              "P:|PREPARE s1(int) AS SELECT $1|;B:;E;"
                              "P:P0_1|SELECT $1::text || $2|25,23;"
                              "P:none|SELECT 1|;"
                              "S;");
    free(text);
    session_state_free(&st);
}

static void test_role_none_and_reparse(void **state)
{
    (void)state;
    struct session_state st;
    assert_int_equal(session_state_init(&st), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "r", "role", "none", NULL), SESSION_STATE_OK);
    assert_false(st.role_set);
    assert_int_equal(evbuffer_get_length(st.replay), 0);
    /* after a LISTEN took the unnamed statement, the next setting parses set_config again */
    assert_int_equal(feed(&st, "l", "c", NULL, NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "s", "work_mem", "4MB", NULL), SESSION_STATE_OK);
    char *text = replay_text(&st);
    assert_string_equal(text, "P:|LISTEN \"c\"|;B:;E;"
                              "P:|SELECT pg_catalog.set_config($1, $2, false)|25,25;"
                              "B:work_mem=4MB;E;");
    free(text);
    session_state_free(&st);
}

/* Its own limits first, the session's ('w' rows) last, after the SQL PREPAREs. */
static void test_own_limits(void **state)
{
    (void)state;
    struct session_state st;
    assert_int_equal(session_state_init(&st), SESSION_STATE_OK);
    assert_int_equal(session_state_own_limits(&st), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "w", "statement_timeout", "1ms", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "w", "lock_timeout", "0", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "w", "idle_session_timeout", "0", NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "s", "work_mem", "4MB", NULL), SESSION_STATE_OK);
    assert_int_equal(feed(&st, "q", "s1", "PREPARE s1 AS SELECT 1", NULL), SESSION_STATE_OK);
    assert_int_equal(session_state_finish(&st), SESSION_STATE_OK);
    assert_int_equal(st.settings, 1);
    char *text = replay_text(&st);
    assert_string_equal(text, "P:|SET LOCAL TRANSACTION ISOLATION LEVEL READ COMMITTED|;B:;E;"
                              "P:|SELECT pg_catalog.set_config('statement_timeout', '0', true), "
                              "pg_catalog.set_config('lock_timeout', '0', true)|;B:;E;"
                              "P:|SELECT pg_catalog.set_config($1, $2, false)|25,25;"
                              "B:work_mem=4MB;E;"
                              "P:|PREPARE s1 AS SELECT 1|;B:;E;"
                              "P:|SELECT pg_catalog.set_config($1, $2, false)|25,25;"
                              "B:statement_timeout=1ms;E;B:lock_timeout=0;E;"
                              "S;");
    free(text);
    assert_non_null(strstr(session_state_query_own_limits(), "SET LOCAL statement_timeout = 0"));
    assert_non_null(
        strstr(session_state_query_own_limits(), "'statement_timeout', 'lock_timeout'"));
    session_state_free(&st);
}

static void test_bad_rows(void **state)
{
    (void)state;
    struct session_state st;
    assert_int_equal(session_state_init(&st), SESSION_STATE_OK);
    uint8_t buf[256];
    size_t len = row(buf, sizeof(buf), "s", "a", "b", NULL);
    /* cut short anywhere, or with a byte too many */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(session_state_row(&st, buf, cut), SESSION_STATE_BAD);
    buf[len] = 0;
    assert_int_equal(session_state_row(&st, buf, len + 1), SESSION_STATE_BAD);
    /* a column length past the end */
    len = row(buf, sizeof(buf), "s", "a", "b", NULL);
    pkt_store_be32(buf + 2 + 4 + 1, 0x7fffffff);
    assert_int_equal(session_state_row(&st, buf, len), SESSION_STATE_BAD);
    buf[1] = 3; /* three columns */
    assert_int_equal(session_state_row(&st, buf, len), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "x", "a", "b", NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "ss", "a", "b", NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "s", NULL, "b", NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "s", "a", NULL, NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "temp", "-1", NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "temp", "99999999999999999999", NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "lsn", "nope", "false 8192 16777216"), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "lsn", "00000002/0/1", "false 8192 16777216"),
                     SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "lsn", "0/1", "false"), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "lsn", "0/1", "maybe 8192 16777216"), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "lsn", "0/1", NULL), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "f", "what", "1", NULL), SESSION_STATE_BAD);
    const char *bad_types[] = {"",     "{",      "}",   "{,}",          "{1,}",
                               "{,1}", "{1,,2}", "{x}", "{4294967296}", "{1 2}",
                               "23",   "{-1}",   NULL};
    for (int i = 0; bad_types[i] != NULL; i++)
        assert_int_equal(feed(&st, "p", "n", "SELECT 1", bad_types[i]), SESSION_STATE_BAD);
    assert_int_equal(feed(&st, "p", "n", "SELECT 1", NULL), SESSION_STATE_BAD);
    /* a NUL inside a text column */
    uint8_t nul[64];
    len = row(nul, sizeof(nul), "s", "a", "bXc", NULL);
    nul[len - 4 - 2] = 0; /* the X */
    assert_int_equal(session_state_row(&st, nul, len), SESSION_STATE_BAD);
    session_state_free(&st);
}

/* A protocol statement whose text is len bytes of text. */
static int feed_big(struct session_state *st, const char *text, size_t len)
{
    size_t cap = len + 64;
    uint8_t *buf = malloc(cap);
    const char *cols[4] = {"p", "big", text, "{}"};
    size_t off = 0;
    buf[off++] = 0;
    buf[off++] = 4;
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(cols[i]);
        pkt_store_be32(buf + off, (uint32_t)n);
        memcpy(buf + off + 4, cols[i], n);
        off += 4 + n;
    }
    (void)len;
    int rc = session_state_row(st, buf, off);
    free(buf);
    return rc;
}

static void test_size_bound(void **state)
{
    (void)state;
    struct session_state st;
    assert_int_equal(session_state_init(&st), SESSION_STATE_OK);
    size_t big = 1024 * 1024;
    char *text = malloc(big + 1);
    memset(text, 'x', big);
    text[big] = '\0';
    int rc = SESSION_STATE_OK;
    int taken = 0;
    while ((rc = feed_big(&st, text, big)) == SESSION_STATE_OK)
        taken++;
    assert_int_equal(rc, SESSION_STATE_FULL);
    assert_true(taken >= 15 && taken <= 16);
    assert_true(evbuffer_get_length(st.replay) <= SESSION_STATE_MAX_BYTES);
    free(text);
    session_state_free(&st);
}

/* A handover's startup parameters: the same bound set_config as a move's settings, one Sync. */
static void test_setting_as_handover(void **state)
{
    (void)state;
    struct session_state st;
    assert_int_equal(session_state_init(&st), SESSION_STATE_OK);
    assert_int_equal(session_state_setting(&st, "application_name", "it's \\x"), SESSION_STATE_OK);
    assert_int_equal(session_state_setting(&st, "TimeZone", "UTC"), SESSION_STATE_OK);
    assert_int_equal(session_state_finish(&st), SESSION_STATE_OK);
    assert_int_equal(st.settings, 2);
    char *text = replay_text(&st);
    assert_string_equal(text, "P:|SELECT pg_catalog.set_config($1, $2, false)|25,25;"
                              "B:application_name=it's \\x;E;"
                              "B:TimeZone=UTC;E;"
                              "S;");
    free(text);
    session_state_free(&st);
}

/* protocol/sql_quote.c, which the LISTEN above and pgnear's other SQL text quote with. */
static void test_sql_quote(void **state)
{
    (void)state;
    char buf[32];
    assert_true(sql_quote_literal_into(buf, sizeof(buf), "it's"));
    assert_string_equal(buf, "'it''s'");
    assert_true(sql_quote_literal_into(buf, sizeof(buf), "a\\b'"));
    assert_string_equal(buf, "E'a\\\\b'''");
    assert_int_equal(sql_quote_literal_len("a\\b'", 4), strlen(buf));
    assert_true(sql_quote_ident_into(buf, sizeof(buf), "x\"y"));
    assert_string_equal(buf, "\"x\"\"y\"");
    assert_true(sql_quote_ident_into(buf, 7, "x\"y")); /* 6 bytes and the NUL fit */
    assert_false(sql_quote_ident_into(buf, 6, "x\"y"));
    assert_false(sql_quote_literal_into(buf, 4, "ab"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_facts),
        cmocka_unit_test(test_replay_order_and_quoting),
        cmocka_unit_test(test_role_none_and_reparse),
        cmocka_unit_test(test_setting_as_handover),
        cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_own_limits),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_sql_quote),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
