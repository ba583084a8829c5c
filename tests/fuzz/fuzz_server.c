/*
 * fuzz_server.c
 *    libFuzzer target for pgnear as the client of a hostile server: every
 *    consumer of a server's bytes, end to end.  A whole pgnear (proxy/
 *    daemon.c: all of pgnear but main.c) runs in this process, as in
 *    fuzz_login, and its two hosts are servers of this process that answer
 *    each connection pgnear opens with the messages the input chooses.
 *    The consumers: a session's server connection (the login, SCRAM with
 *    the ClientKey a client's proof revealed, ParameterStatus, BackendKeyData,
 *    then the relay under session or transaction pooling, and `nearest`),
 *    auth_query's connection, the health checks' (every health_check_interval,
 *    whatever the input), the routines catalog's (func_catalog, read when a
 *    `nearest` statement calls a function) and LISTEN's listening connection
 *    (notify_hub, transaction pooling).  A crash or sanitizer report in any
 *    thread, a worker that stops answering /healthz, or a daemon that stops,
 *    is the finding.  Answers of one input may still reach connections that
 *    an earlier input's client made pgnear open, as a server's would.
 *
 *    Input (bytes past the end read as 0):
 *      [0] bits 0-2 the client, through pgnear (libpq, user app, SCRAM):
 *          0 a session (database movr, session pooling), 1 the same under
 *          transaction pooling (database txn), 2 and 3 `nearest` (movr,
 *          txn) calling a function, so the routines catalog is read first
 *          (each input names a database of its own), 4 a user that only
 *          auth_query knows, 5 LISTEN under transaction pooling, 6 LISTEN
 *          then a second statement, 7 no client (the health checks alone);
 *          bits 3-4 how the query goes: simple, extended, two statements
 *          in one Query, a transaction block; bits 5-6 the hosts' roles as
 *          the checks would have left them (host 0 primary, host 1 a
 *          standby; both primaries; swapped; both down); bit 7 the server
 *          closes with a reset at the end
 *      then the server's answer, one step at a time:
 *      [s] bits 0-4 what (see put_step), bit 5 wait first for the next
 *          message of pgnear, bits 6-7 a variant; then the step's bytes.
 *    Past the steps, the server reads until pgnear closes or goes quiet.
 *    PGNEAR_FUZZ_LOG=1 sends pgnear's log to stderr (else /dev/null, at
 *    DEBUG so that every log line is formatted); PGNEAR_FUZZ_VERBOSE=1
 *    prints what each client and each server connection saw.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/daemon.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "tests/fuzz/fuzz_bytes.h"
#include "tests/fuzz/fuzz_daemon.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NHOSTS      2
#define INPUT_MS    1500 /* the longest one client may take */
#define ALIVE_MS    5000 /* a worker that does not answer /healthz in this long hangs */
#define WAIT_MS     150  /* a server step that waits for pgnear waits at most this long */
#define QUIET_MS    150  /* past its steps, a server reads until pgnear is quiet this long */
#define MAX_STEPS   64
#define SCRIPT_CAP  (256 * 1024)
#define MAX_CONNS   48 /* server connections served at once; more are closed at once */
#define PASSWORD    "fuzzpass"
#define ITERATIONS  4096
#define SALT        "pgnear-fuzz-salt"
#define NONCE_CAP   256
#define LONG_NONCE  70000
#define COUNT(a)    (sizeof(a) / sizeof((a)[0]))
#define PICK(a, k)  ((a)[(k) % COUNT(a)])
#define CODE_SSL    80877103u
#define CODE_GSSENC 80877104u

static struct {
    char dir[64];
    int port, ws_port, host_port[NHOSTS];
    int listen_fd[NHOSTS];
    struct region_host *hosts[NHOSTS];
    bool verbose;
    unsigned input_no;
    int conns; /* server connections being served (atomic) */
} G;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_server: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ---- bytes beyond fuzz_bytes.h's ---- */

/* n copies of ch: a long nonce, value or name. */
static void out_fill(struct out *o, char ch, size_t n)
{
    while (n-- > 0 && o->len < o->cap)
        o->b[o->len++] = (uint8_t)ch;
}

/* ---- the server's script ---- */

enum step_kind {
    STEP_MSG,      /* bytes as they are */
    STEP_SASL,     /* server-first-message: "r=" the client's nonce, then the bytes */
    STEP_TRUNCATE, /* the bytes, then the connection ends in the middle of a message */
    STEP_CLOSE,    /* the connection ends here */
};

struct step {
    enum step_kind kind;
    bool wait; /* for pgnear's next message first */
    size_t off, len;
};

struct script {
    struct step steps[MAX_STEPS];
    int nsteps;
    bool rst;
    size_t used;
    uint8_t bytes[SCRIPT_CAP];
};

/* The current input's: each server connection copies it as it starts. */
static pthread_mutex_t script_lock = PTHREAD_MUTEX_INITIALIZER;
static struct script current;

static const char *const param_names[] = {"server_version",
                                          "client_encoding",
                                          "standard_conforming_strings",
                                          "TimeZone",
                                          "in_hot_standby",
                                          "DateStyle",
                                          "default_transaction_read_only",
                                          "is_superuser",
                                          "application_name",
                                          "integer_datetimes",
                                          "session_authorization",
                                          "server_encoding",
                                          "IntervalStyle",
                                          "search_path",
                                          "scram_iterations"};
static const char *const param_values[] = {
    "on", "off",     "15.4",          "UTF8",     "LATIN1", "SQL_ASCII", "UTC",     "ISO, MDY",
    "",   "17devel", "Europe/Berlin", "postgres", "yes",    "1",         "\xff\xfe"};
static const char *const field_values[] = {
    "ERROR", "FATAL", "PANIC", "WARNING", "57P01", "53300", "08P01", "25006", "0A000", "26000",
    "42P05", "40001", "28P01", "3D000",   "57P03", "25P02", "",      "XX000", "5",     "relation"};
static const char *const row_values[] = {"t",
                                         "f",
                                         "0",
                                         "1",
                                         "-1",
                                         "18446744073709551615",
                                         "99999999999999999999",
                                         "0/3000148",
                                         "1e308",
                                         "NaN",
                                         "-Infinity",
                                         "on",
                                         "off",
                                         "",
                                         "7",
                                         "4096",
                                         "SCRAM-SHA-256$4096:c2FsdA==$a:b",
                                         "md5d41d8cd98f00b204e9800998ecf8427e",
                                         "app",
                                         "f",
                                         "123456789012345678",
                                         "-0.5",
                                         "1.5"};
static const char *const tags[] = {
    "SELECT 1", "LISTEN", "UNLISTEN", "INSERT 0 1",  "BEGIN",      "COMMIT",
    "ROLLBACK", "SET",    "SELECT 0", "DISCARD ALL", "DEALLOCATE", "SELECT 18446744073709551616",
    "SELECT"};
static const char *const iterations[] = {"4096", "1", "0", "-1", "2147483648", "4096x", ""};
static const uint32_t bad_lengths[] = {0, 3, 0x7FFFFFFF, 0x40000000, 0xFFFFFFFF, 1u << 20};

/* A value from the table (k's bits 0-1 not 0), the input's bytes, or a long run. */
static void put_value(struct out *o, struct cursor *c, const char *const *table, size_t n)
{
    uint8_t k = take_u8(c);
    if ((k & 3) == 0)
        out_chunk(o, c);
    else if ((k & 3) == 3 && (k & 4))
        out_fill(o, 'x', (size_t)1 << (8 + ((k >> 3) & 7)));
    else
        out_str(o, table[(k >> 2) % n]);
}

static void put_auth(struct out *o, struct cursor *c, uint8_t v)
{
    static const uint32_t codes[] = {0, 3, 5, 10, 11, 12, 7, 8, 9, 2};
    uint8_t k = take_u8(c);
    uint32_t code = (k & 15) < COUNT(codes) ? codes[k & 15] : take_u32(c);
    out_u32(o, code);
    if (code == 10) {
        /* The offer: SCRAM-SHA-256, with -PLUS, or the input's. */
        if (v & 1)
            out_cstr(o, "SCRAM-SHA-256-PLUS");
        if (v & 2)
            out_chunk(o, c);
        else
            out_cstr(o, "SCRAM-SHA-256");
        out_u8(o, 0);
    } else if (code == 5) {
        out_u32(o, take_u32(c));
    } else if (code == 12 || (k & 16)) {
        out_str(o, (v & 1) ? "e=" : "v=");
        out_chunk(o, c);
    }
}

/* The part of server-first-message past the client's nonce (sent by STEP_SASL). */
static void put_sasl_rest(struct out *o, struct cursor *c, uint8_t v)
{
    static const size_t longs[4] = {0, 100, 5000, LONG_NONCE};
    uint8_t k = take_u8(c);
    out_u32(o, 11);
    if (v == 3) { /* no nonce of the client's extended: the bytes alone */
        out_chunk(o, c);
        return;
    }
    out_chunk(o, c);
    out_fill(o, 'N', longs[k & 3]);
    char salt64[64];
    EVP_EncodeBlock((unsigned char *)salt64, (const unsigned char *)SALT, (int)strlen(SALT));
    out_str(o, ",s=");
    if (v == 1)
        out_chunk(o, c);
    else
        out_str(o, salt64);
    out_str(o, ",i=");
    out_str(o, (k & 0x1C) == 0 ? iterations[0] : PICK(iterations, k >> 2));
    if (v == 2)
        out_chunk(o, c);
}

static void put_fields(struct out *o, struct cursor *c, uint8_t v)
{
    static const char codes[] = "SVCMDHPpqWstcdnFLR";
    int n = take_u8(c) & 15;
    for (int i = 0; i < n; i++) {
        uint8_t k = take_u8(c);
        out_u8(o, (k & 0x80) ? take_u8(c) : (uint8_t)codes[k % (sizeof(codes) - 1)]);
        put_value(o, c, field_values, COUNT(field_values));
        if (!(v & 1) || i + 1 < n)
            out_u8(o, 0);
    }
    if (!(v & 2))
        out_u8(o, 0);
}

static void put_row_description(struct out *o, struct cursor *c, uint8_t v)
{
    static const uint32_t types[] = {25, 16, 20, 3220, 1700, 19, 23, 701, 0};
    uint8_t k = take_u8(c);
    uint16_t n = (v & 1) ? (uint16_t)take_u32(c) : (uint16_t)(k & 15);
    out_u16(o, n);
    for (uint16_t i = 0; i < n && o->len < 60000; i++) {
        uint8_t f = take_u8(c);
        if (f & 1)
            out_chunk(o, c);
        out_u8(o, 0);
        out_u32(o, 0);
        out_u16(o, (uint16_t)i);
        out_u32(o, PICK(types, f >> 1));
        out_u16(o, (f & 0x80) ? 0xFFFF : 4);
        out_u32(o, 0xFFFFFFFFu);
        out_u16(o, (v & 2) ? (uint16_t)(f >> 6) : 0);
    }
}

static void put_data_row(struct out *o, struct cursor *c, uint8_t v)
{
    uint8_t k = take_u8(c);
    uint16_t n = (v & 1) ? (uint16_t)take_u32(c) : (uint16_t)(k & 15);
    out_u16(o, n);
    for (uint16_t i = 0; i < n && o->len < 200000; i++) {
        uint8_t f = take_u8(c);
        if ((f & 7) == 0) {
            out_u32(o, 0xFFFFFFFFu); /* NULL */
            continue;
        }
        if ((f & 7) == 1 && (v & 2)) {
            out_u32(o, take_u32(c)); /* a length of the input's */
            continue;
        }
        size_t at = o->len;
        out_u32(o, 0);
        put_value(o, c, row_values, COUNT(row_values));
        patch_u32(o, at, (uint32_t)(o->len - at - 4));
    }
}

/* The body of a message of type t, variant v. */
static void put_body(struct out *o, struct cursor *c, uint8_t t, uint8_t v)
{
    switch (t) {
    case 'R':
        put_auth(o, c, v);
        break;
    case 'S':
        if (v == 3) {
            out_chunk(o, c); /* no NULs, perhaps */
            break;
        }
        put_value(o, c, param_names, COUNT(param_names));
        out_u8(o, 0);
        put_value(o, c, param_values, COUNT(param_values));
        if (v != 2)
            out_u8(o, 0);
        break;
    case 'K':
        if (v == 0) {
            out_u32(o, take_u32(c));
            out_u32(o, take_u32(c));
        } else {
            out_chunk(o, c); /* any length: 3.2's longer keys, or too short */
        }
        break;
    case 'Z':
        out_u8(o, v == 3 ? take_u8(c) : (uint8_t) "ITE"[v]);
        break;
    case 'E':
    case 'N':
        put_fields(o, c, v);
        break;
    case 'T':
        put_row_description(o, c, v);
        break;
    case 'D':
        put_data_row(o, c, v);
        break;
    case 'C':
        put_value(o, c, tags, COUNT(tags));
        if (v != 1)
            out_u8(o, 0);
        break;
    case 'A':
        out_u32(o, take_u32(c));
        if (v & 1)
            out_chunk(o, c);
        else
            out_str(o, "ch");
        out_u8(o, 0);
        out_chunk(o, c);
        if (!(v & 2))
            out_u8(o, 0);
        break;
    case 'v':
        out_u32(o, take_u32(c));
        out_u32(o, v == 0 ? 1 : take_u32(c));
        out_str(o, "_pq_.");
        out_chunk(o, c);
        out_u8(o, 0);
        break;
    case 't':
        out_u16(o, (uint16_t)(take_u8(c) & 7));
        out_chunk(o, c);
        break;
    default:
        if (v != 0)
            out_chunk(o, c);
        break;
    }
}

/*
 * What a step is ([s] bits 0-4): 0-17 a message of the type below with
 * a body built for it (put_body); 18 the SCRAM server-first-message on
 * the client's nonce; 19 a message of the input's type and bytes; 20 a
 * length word of bad_lengths, then bytes; 21 a message cut short by the
 * connection's end; 22 the end now; 23-31 the usual login (AuthenticationOk,
 * a ParameterStatus, BackendKeyData, ReadyForQuery idle) at once.
 */
static const char step_types[] = "RSKZENTDCA12ns3Ivt";
_Static_assert(sizeof(step_types) - 1 == 18, "step types 0-17");

static bool add_step(struct script *sc, struct cursor *c)
{
    uint8_t s = take_u8(c), what = s & 31, v = s >> 6;
    struct step *st = &sc->steps[sc->nsteps];
    struct out o = {sc->bytes + sc->used, 0, SCRIPT_CAP - sc->used};
    *st = (struct step){STEP_MSG, (s & 32) != 0, sc->used, 0};
    if (what < 18 || what == 19 || what == 21) {
        uint8_t t = what < 18 ? (uint8_t)step_types[what] : take_u8(c);
        out_u8(&o, t);
        out_u32(&o, 0);
        if (what == 19)
            out_chunk(&o, c);
        else
            put_body(&o, c, t, v);
        patch_u32(&o, 1, (uint32_t)(o.len - 1));
        if (what == 21) {
            st->kind = STEP_TRUNCATE;
            o.len -= MIN(o.len - 1, (size_t)1 + (take_u8(c) % (o.len - 1)));
        }
    } else if (what == 18) {
        st->kind = STEP_SASL;
        put_sasl_rest(&o, c, v);
    } else if (what == 20) {
        out_u8(&o, take_u8(c));
        out_u32(&o, PICK(bad_lengths, v + (take_u8(c) & 4)));
        out_chunk(&o, c);
    } else if (what == 22) {
        st->kind = STEP_CLOSE;
    } else {
        static const uint8_t login[] = {
            'R', 0,   0,   0,   8,   0,   0,   0,   0,   'S', 0, 0,   0,   24,  's', 'e', 'r', 'v',
            'e', 'r', '_', 'v', 'e', 'r', 's', 'i', 'o', 'n', 0, '1', '5', '.', '4', 0,   'K', 0,
            0,   0,   12,  0,   0,   0,   42,  1,   2,   3,   4, 'Z', 0,   0,   0,   5,   'I'};
        out_put(&o, login, sizeof(login));
    }
    st->len = o.len;
    sc->used += o.len;
    sc->nsteps++;
    return sc->used < SCRIPT_CAP - 4096;
}

static void script_build(struct script *sc, struct cursor *c, bool rst)
{
    sc->nsteps = 0;
    sc->used = 0;
    sc->rst = rst;
    while (c->n > 0 && sc->nsteps < MAX_STEPS && add_step(sc, c))
        ;
}

/* ---- a server connection ---- */

struct conn {
    int fd;
    int64_t deadline;
    struct script sc;
    uint8_t in[16384];
    size_t nin;
    unsigned got;        /* messages of pgnear's read so far */
    unsigned waited_for; /* messages read when the last wait began */
    char nonce[NONCE_CAP];
    char app[64];
    bool eof;
};

static bool send_all(struct conn *k, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(k->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {k->fd, POLLOUT, 0};
            if (poll(&pfd, 1, 200) <= 0)
                return false; /* pgnear reads no more */
            continue;
        }
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* The client nonce of a SASLInitialResponse ("n,,n=,r=NONCE"), kept for STEP_SASL. */
static void note_message(struct conn *k, const uint8_t *m, size_t len)
{
    k->got++;
    if (m[0] != 'p' || len < 5)
        return;
    const uint8_t *r = memmem(m + 5, len - 5, ",r=", 3);
    if (r == NULL)
        return;
    r += 3;
    size_t n = 0;
    while (r + n < m + len && r[n] != ',' && r[n] != 0 && n + 1 < NONCE_CAP)
        n++;
    memcpy(k->nonce, r, n);
    k->nonce[n] = '\0';
}

/* Reads what pgnear sent (for up to ms), counting its messages; false at its end. */
static bool conn_read(struct conn *k, int ms)
{
    struct pollfd pfd = {k->fd, POLLIN, 0};
    if (poll(&pfd, 1, ms) <= 0)
        return !k->eof;
    ssize_t r = recv(k->fd, k->in + k->nin, sizeof(k->in) - k->nin, 0);
    if (r <= 0) {
        k->eof = r == 0 || errno != EINTR;
        return !k->eof;
    }
    k->nin += (size_t)r;
    for (;;) {
        if (k->nin < 5)
            break;
        uint32_t len =
            (uint32_t)k->in[1] << 24 | (uint32_t)k->in[2] << 16 | k->in[3] << 8 | k->in[4];
        if (len < 4 || len + 1 > sizeof(k->in)) {
            k->nin = 0; /* too long to keep: counted, dropped */
            k->got++;
            break;
        }
        if (k->nin < len + 1)
            break;
        note_message(k, k->in, len + 1);
        memmove(k->in, k->in + len + 1, k->nin - len - 1);
        k->nin -= len + 1;
    }
    return true;
}

/* Until pgnear sent another message, or WAIT_MS. */
static void conn_wait(struct conn *k)
{
    int64_t until = now_ms() + WAIT_MS;
    unsigned seen = k->waited_for;
    while (k->got == seen && !k->eof && now_ms() < until)
        conn_read(k, (int)(until - now_ms()));
    k->waited_for = k->got;
}

/* Reads a startup packet, answering SSLRequest and GSSENCRequest with 'N'; false: none came. */
static bool conn_startup(struct conn *k)
{
    for (int tries = 0; tries < 3; tries++) {
        uint8_t hdr[8];
        size_t n = 0;
        while (n < sizeof(hdr)) {
            struct pollfd pfd = {k->fd, POLLIN, 0};
            if (poll(&pfd, 1, 1000) <= 0)
                return false;
            ssize_t r = recv(k->fd, hdr + n, sizeof(hdr) - n, 0);
            if (r <= 0)
                return false;
            n += (size_t)r;
        }
        uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | hdr[2] << 8 | hdr[3];
        uint32_t code = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | hdr[6] << 8 | hdr[7];
        if (len == 8 && (code == CODE_SSL || code == CODE_GSSENC)) {
            if (!send_all(k, (const uint8_t *)"N", 1))
                return false;
            continue;
        }
        if (len < 8 || len > sizeof(k->in))
            return false;
        size_t body = len - 8;
        n = 0;
        while (n < body) {
            ssize_t r = recv(k->fd, k->in + n, body - n, 0);
            if (r <= 0)
                return false;
            n += (size_t)r;
        }
        const uint8_t *app = memmem(k->in, body, "application_name", 17);
        if (app != NULL)
            snprintf(k->app, sizeof(k->app), "%s", (const char *)app + 17);
        return true;
    }
    return false;
}

static bool conn_step(struct conn *k, const struct step *st)
{
    const uint8_t *p = k->sc.bytes + st->off;
    if (st->wait)
        conn_wait(k);
    switch (st->kind) {
    case STEP_MSG:
        return send_all(k, p, st->len);
    case STEP_TRUNCATE:
        send_all(k, p, st->len);
        return false;
    case STEP_CLOSE:
        return false;
    case STEP_SASL: {
        /* R, its length, code 11, then "r=" nonce and the rest (p: code, rest). */
        uint8_t head[5 + 4 + 2];
        size_t nn = strlen(k->nonce), rest = st->len - 4;
        struct out o = {head, 0, sizeof(head)};
        out_u8(&o, 'R');
        out_u32(&o, (uint32_t)(4 + 4 + 2 + nn + rest));
        out_put(&o, p, 4);
        out_str(&o, "r=");
        return send_all(k, head, o.len) && send_all(k, (const uint8_t *)k->nonce, nn) &&
               send_all(k, p + 4, rest);
    }
    }
    return false;
}

static void conn_serve(struct conn *k)
{
    if (!conn_startup(k))
        return;
    int i = 0;
    for (; i < k->sc.nsteps && now_ms() < k->deadline; i++)
        if (!conn_step(k, &k->sc.steps[i]))
            break;
    /* Past the script: read until pgnear closes or is quiet, then end. */
    if (i == k->sc.nsteps)
        while (now_ms() < k->deadline && conn_read(k, QUIET_MS) && !k->eof) {
            unsigned before = k->got;
            conn_read(k, QUIET_MS);
            if (k->got == before && k->nin == 0)
                break;
        }
    if (G.verbose)
        fprintf(stderr, "fuzz_server: served \"%s\" %d of %d steps, read %u messages%s\n", k->app,
                i, k->sc.nsteps, k->got, k->eof ? ", pgnear closed" : "");
}

static void *conn_thread(void *arg)
{
    struct conn *k = arg;
    conn_serve(k);
    if (k->sc.rst) {
        struct linger lg = {1, 0};
        setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(k->fd);
    free(k);
    __atomic_sub_fetch(&G.conns, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Each host's server: every connection served on a thread of its own, with the current script. */
static void *server_thread(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd pfd[NHOSTS];
        for (int i = 0; i < NHOSTS; i++)
            pfd[i] = (struct pollfd){G.listen_fd[i], POLLIN, 0};
        if (poll(pfd, NHOSTS, -1) < 0)
            continue;
        for (int i = 0; i < NHOSTS; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            int fd = accept4(G.listen_fd[i], NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            struct conn *k = NULL;
            if (__atomic_add_fetch(&G.conns, 1, __ATOMIC_SEQ_CST) > MAX_CONNS ||
                (k = calloc(1, sizeof(*k))) == NULL) {
                close(fd);
                __atomic_sub_fetch(&G.conns, 1, __ATOMIC_SEQ_CST);
                continue;
            }
            k->fd = fd;
            k->deadline = now_ms() + 3000;
            pthread_mutex_lock(&script_lock);
            memcpy(&k->sc, &current, offsetof(struct script, bytes) + current.used);
            pthread_mutex_unlock(&script_lock);
            pthread_t t;
            if (pthread_create(&t, NULL, conn_thread, k) != 0) {
                close(fd);
                free(k);
                __atomic_sub_fetch(&G.conns, 1, __ATOMIC_SEQ_CST);
                continue;
            }
            pthread_detach(t);
        }
    }
    return NULL;
}

/* ---- the client, through pgnear ---- */

enum consumer {
    C_SESSION,
    C_TXN,
    C_NEAR,
    C_NEAR_TXN,
    C_AUTH_QUERY,
    C_LISTEN,
    C_LISTEN_MORE,
    C_NONE
};

/* Polls libpq's socket for what it waits on, until the deadline; false past it. */
static bool client_wait(PGconn *pc, bool writing, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0 || PQsocket(pc) < 0)
        return false;
    struct pollfd pfd = {PQsocket(pc), writing ? POLLOUT : POLLIN, 0};
    return poll(&pfd, 1, (int)left) >= 0;
}

static bool client_connect(PGconn *pc, int64_t deadline)
{
    for (;;) {
        PostgresPollingStatusType st = PQconnectPoll(pc);
        if (st == PGRES_POLLING_OK)
            return true;
        if (st == PGRES_POLLING_FAILED || !client_wait(pc, st == PGRES_POLLING_WRITING, deadline))
            return false;
    }
}

/* Sends one statement and reads its results until the last, an error, or the deadline. */
static void client_query(PGconn *pc, const char *sql, bool extended, int64_t deadline)
{
    int sent =
        extended ? PQsendQueryParams(pc, sql, 0, NULL, NULL, NULL, NULL, 0) : PQsendQuery(pc, sql);
    if (!sent)
        return;
    while (PQflush(pc) == 1)
        if (!client_wait(pc, true, deadline))
            return;
    for (;;) {
        while (!PQisBusy(pc)) {
            PGresult *res = PQgetResult(pc);
            ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_COMMAND_OK;
            PQclear(res);
            /* A COPY's start comes back for ever: this client copies nothing. */
            if (res == NULL || st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
                return;
        }
        if (!client_wait(pc, false, deadline) || !PQconsumeInput(pc))
            return;
        PGnotify *n;
        while ((n = PQnotifies(pc)) != NULL)
            PQfreemem(n);
    }
}

static void client_run(enum consumer who, int how)
{
    static const char *const queries[4] = {"SELECT 1", "SELECT 1", "SELECT 1; SELECT 2",
                                           "BEGIN; SELECT 1; COMMIT"};
    char port[16], db[32];
    bool txn = who == C_TXN || who == C_NEAR_TXN || who == C_LISTEN || who == C_LISTEN_MORE;
    bool near = who == C_NEAR || who == C_NEAR_TXN;
    snprintf(port, sizeof(port), "%d", G.port);
    /* A database of its own for each `nearest` input: its routines are read afresh. */
    if (near)
        snprintf(db, sizeof(db), "%s%u", txn ? "txn" : "movr", G.input_no % 4096);
    else
        snprintf(db, sizeof(db), "%s", txn ? "txn" : "movr");
    const char *keys[] = {
        "host",    "port", "user", "password", "dbname", "options", "connect_timeout",
        "sslmode", NULL};
    const char *vals[] = {
        "127.0.0.1", port,      who == C_AUTH_QUERY ? "fuzz" : "app",
        PASSWORD,    db,        near ? "-c pgnear.target_session_attrs=nearest" : "",
        "2",         "disable", NULL};
    int64_t deadline = now_ms() + INPUT_MS;
    PGconn *pc = PQconnectStartParams(keys, vals, 0);
    if (pc != NULL && PQstatus(pc) != CONNECTION_BAD && client_connect(pc, deadline)) {
        if (who == C_LISTEN || who == C_LISTEN_MORE)
            client_query(pc, "LISTEN ch", how == 1, deadline);
        if (near)
            client_query(pc, "SELECT app_log(1)", how == 1, deadline);
        if (who != C_LISTEN)
            client_query(pc, queries[how], how == 1, deadline);
    }
    if (G.verbose)
        fprintf(stderr, "fuzz_server: client %d: %s\n", (int)who,
                pc == NULL ? "no memory" : PQerrorMessage(pc));
    PQfinish(pc);
}

/* ---- host health, as checks would have left it ---- */

static void set_health(int roles)
{
    for (int i = 0; i < NHOSTS; i++) {
        struct host_health *hh = &G.hosts[i]->runtime->health;
        bool standby = roles == 0 ? i == 1 : roles == 2 ? i == 0 : false;
        __atomic_store_n(&hh->up, roles != 3, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->checked, true, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->role_known, true, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->in_recovery, standby, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->read_only, standby, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->lagging, false, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->login_saw_standby_ms, 0, __ATOMIC_RELAXED);
    }
}

/* ---- the daemon ---- */

/* A host's listening socket, on a port of fuzz_pick_port's; its port. */
static int listen_on(int *fd_out, const int *taken, int ntaken)
{
    for (int tries = 0; tries < 100; tries++) {
        int port = fuzz_pick_port("fuzz_server", taken, ntaken);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            fail("socket: %s", strerror(errno));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 128) == 0) {
            *fd_out = fd;
            return port;
        }
        close(fd); /* taken meanwhile */
    }
    fail("no port to listen on");
}

/* PASSWORD's SCRAM verifier, with SALT and ITERATIONS (the server's answers use them too). */
static void scram_verifier(char *verifier, size_t cap)
{
    uint8_t client_key[FUZZ_KEY_LEN], stored_key[FUZZ_KEY_LEN];
    fuzz_scram_keys("fuzz_server", PASSWORD, (const uint8_t *)SALT, strlen(SALT), ITERATIONS,
                    client_key, stored_key, verifier, cap);
}

static void write_file(const char *name, char *path, size_t cap, const char *text)
{
    snprintf(path, cap, "%s/%s", G.dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        fail("could not write %s", path);
}

static void write_config(char *path, size_t cap)
{
    char users[256], verifier[256], line[512], text[4096];
    scram_verifier(verifier, sizeof(verifier));
    snprintf(line, sizeof(line), "\"app\" \"%s\"\n", verifier);
    write_file("users.txt", users, sizeof(users), line);
    snprintf(text, sizeof(text),
             "[pgnear]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir = %s\n"
             "websocket_port = %d\nworkers = 2\nauth = scram\nauth_file = %s\n"
             "auth_query = SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1\n"
             "server_conninfo = user=pgnear password=fuzz connect_timeout=1\n"
             "client_hints = on\nserver_tls = disable\nfailover_wait = 200ms\n"
             "client_login_timeout = 1s\nserver_connect_timeout = 300ms\n"
             "health_check_interval = 500ms\nhealth_check_timeout = 300ms\n"
             "auth_failure_threshold = 0\nquery_wait_timeout = 1s\nlogfile = %s\n"
             "\n[region here]\nlocation = 39.04, -77.49\nhosts = 127.0.0.1:%d, 127.0.0.1:%d\n"
             "\n[database txn]\npool_mode = transaction\n",
             G.port, G.dir, G.ws_port, users, getenv("PGNEAR_FUZZ_LOG") ? "" : "/dev/null",
             G.host_port[0], G.host_port[1]);
    write_file("pgnear.ini", path, cap, text);
}

static void load_and_start(const char *path)
{
    struct config *cfg = fuzz_daemon_start("fuzz_server", path);
    if (cfg->regions.count != 1 || cfg->regions.items[0].nhosts != NHOSTS)
        fail("the configuration does not have %d hosts", NHOSTS);
    for (int i = 0; i < NHOSTS; i++)
        G.hosts[i] = &cfg->regions.items[0].hosts[i];
}

/* At a normal exit: the files of G.dir (a crash leaves them for a look). */
static void remove_dir(void)
{
    fuzz_remove_dir(G.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[256];
    pthread_t thread;
    signal(SIGPIPE, SIG_IGN); /* as pgnear's main does */
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    snprintf(G.dir, sizeof(G.dir), "/tmp/fuzz_server.XXXXXX");
    if (mkdtemp(G.dir) == NULL)
        fail("mkdtemp: %s", strerror(errno));
    atexit(remove_dir);
    G.verbose = getenv("PGNEAR_FUZZ_VERBOSE") != NULL;
    int ports[NHOSTS + 2];
    for (int i = 0; i < NHOSTS; i++)
        ports[i] = G.host_port[i] = listen_on(&G.listen_fd[i], ports, i);
    ports[NHOSTS] = G.port = fuzz_pick_port("fuzz_server", ports, NHOSTS);
    G.ws_port = fuzz_pick_port("fuzz_server", ports, NHOSTS + 1);
    if (pthread_create(&thread, NULL, server_thread, NULL) != 0)
        fail("could not start the servers' thread");
    pthread_detach(thread);
    write_config(path, sizeof(path));
    load_and_start(path);
    int64_t until = now_ms() + 20000;
    while (!fuzz_healthz(G.ws_port, 500))
        if (now_ms() > until)
            fail("pgnear did not start on port %d", G.port);
    for (int i = 0; i < NHOSTS; i++)
        if (__atomic_load_n(&G.hosts[i]->runtime, __ATOMIC_ACQUIRE) == NULL)
            fail("host %d has no registry entry", i);
    fprintf(stderr, "fuzz_server: pgnear on 127.0.0.1:%d, hosts on %d and %d, in %s\n", G.port,
            G.host_port[0], G.host_port[1], G.dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cursor c = {data, size};
    uint8_t head = take_u8(&c);
    G.input_no++;
    pthread_mutex_lock(&script_lock);
    script_build(&current, &c, (head & 0x80) != 0);
    pthread_mutex_unlock(&script_lock);
    set_health((head >> 5) & 3);
    enum consumer who = (enum consumer)(head & 7);
    if (who == C_NONE)
        nanosleep(&(struct timespec){0, 400 * 1000000L}, NULL); /* most of a health-check round */
    else
        client_run(who, (head >> 3) & 3);
    fuzz_check_alive("fuzz_server", G.ws_port, ALIVE_MS);
    return 0;
}
