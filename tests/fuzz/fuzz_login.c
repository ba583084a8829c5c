/*
 * fuzz_login.c
 *    libFuzzer target for the login phases of a whole pgnear, met as an
 *    unauthenticated client meets them.  The daemon (proxy/daemon.c: all
 *    of pgnear but main.c) runs in this process on threads of its own for
 *    the whole run, from a configuration written at start: three regions
 *    whose hosts are closed loopback ports (every dial is refused at once),
 *    auth = scram with an auth_file and auth_query (PGNEAR_FUZZ_AUTH=
 *    passthrough for passthrough), proxy_protocol = optional, a
 *    websocket_port, a fleet peer, client hints and short login timers.
 *
 *    Each input first sets every host's health as the checks would (up,
 *    role, read-only, lag, WAL position, timeline, cluster), then is one
 *    client: it connects to listen_port, to websocket_port (an HTTP
 *    upgrade built from the input, locality headers included, then masked
 *    frames) or to the Unix socket; from a trusted proxy's address, an
 *    untrusted one or a fleet peer's; with a PROXY v1 or v2 header (built
 *    or raw) or none; with an SSLRequest or GSSENCRequest first; then a
 *    startup packet built from the input (hints in options or as
 *    parameters of their own, LSNs well formed or not) or raw bytes; then
 *    a SCRAM exchange or a password, right or wrong, or raw bytes.  It
 *    reads until pgnear closes or falls silent, hangs up at a chosen
 *    moment, or shuts down its writing side first.  The daemon lives on
 *    between inputs: a crash or sanitizer report in any of its threads, a
 *    worker that stops answering /healthz, or a daemon that stops, is the
 *    finding.  Sessions of earlier inputs may still be winding down when
 *    the next starts, as they would in a real pgnear.
 *
 *    Input (bytes past the end read as 0):
 *      [0] bits 0-1 listener: 0, 1 listen_port, 2 websocket_port, 3 the
 *          Unix socket (which trusts this OS user for the admin console:
 *          listen_port instead when the packet could name admin_db);
 *          bits 2-3 source address: 127.0.0.1 twice (trusted_proxies),
 *          127.0.0.2 (untrusted), 127.0.0.3 (a fleet peer's, and in
 *          trusted_http_proxies: on websocket_port its forwarded address
 *          decides access too);
 *          bits 4-5 PROXY header: none, v1, v2, raw (not on websocket_port
 *          or the Unix socket); bits 6-7 first: nothing, SSLRequest,
 *          GSSENCRequest, both
 *      [1..4] a host each: bit 0 up, 1 checked, 2 role known, 3 in
 *          recovery, 4 read-only, 5 lagging, 6-7 its WAL position
 *      [5] [6] two bits a host: its timeline, its cluster's system id
 *      [7] bits 0-1 the end: read until EOF or silence; read, hanging up
 *          at the delay; send, wait the delay, close unread; shut down
 *          writing after sending, then read; bits 2-4 the delay (and the
 *          silence that ends reading); bits 5-6 auth: raw, SCRAM, SCRAM
 *          with the wrong password, SCRAM whose first message is the
 *          input's; bit 7 the startup packet is the rest of the input, raw
 *      [8] bit 0 hang up with a reset; bit 1 send in pieces of bits 2-4
 *          plus one bytes (the first 256 bytes); bit 5 every host as host
 *          0 (a fleet of standbys, or of hosts down, is one bit away)
 *      then the PROXY header's bytes (build_proxy), the HTTP request's
 *      (build_http), the startup packet's (build_startup), SCRAM's first
 *      message (auth 3), and the rest: sent right after the startup packet
 *      under raw auth, else once pgnear accepted the client.
 *
 *    PGNEAR_FUZZ_WORKERS=N sets workers (2), PGNEAR_FUZZ_LOG=1 sends
 *    pgnear's log to stderr (else /dev/null, at DEBUG so that every log
 *    line is formatted), PGNEAR_FUZZ_VERBOSE=1 prints how each client
 *    ended, PGNEAR_FUZZ_CITIES=FILE names a cities_file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/daemon.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "tests/fuzz/fuzz_bytes.h"
#include "tests/fuzz/fuzz_daemon.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NHOSTS         4    /* hosts of the three regions together */
#define HEAD_LEN       9    /* the input's fixed settings */
#define INPUT_MS       1500 /* the longest one client may take */
#define ALIVE_MS       5000 /* a worker that does not answer /healthz in this long hangs */
#define MIN_SILENCE_MS 20
#define CHOP_BYTES     256 /* bytes sent in small pieces, at most */
#define PASSWORD       "fuzzpass"
#define ADMIN_DB       "pgnear"
#define KEY_LEN        32

static const char *const region_names[] = {"us-east", "eu-west", "ap-south", "atlantis"};
static const char *const city_names[] = {"seattle",  "dublin", "Mumbai",
                                         "New York", "seatle", "Paris, FR"};
static const char *const need_names[] = {"any",      "read-write",     "read-only",      "primary",
                                         "standby",  "prefer-standby", "prefer-primary", "nearest",
                                         "readwrite"};
static const char *const fence_names[] = {"on", "off", "yes", "0", "maybe"};
static const char *const user_names[] = {"app", "fuzz", "writer", "postgres"};
_Static_assert(sizeof(user_names) / sizeof(user_names[0]) == 4, "build_startup picks by 2 bits");
static const char *const db_names[] = {"movr", "reports", "postgres", "template1"};
static const char *const hint_names[] = {
    "region", "city", "location", "target_session_attrs", "min_lsn", "report_fence"};
enum hint { H_REGION, H_CITY, H_LOCATION, H_NEED, H_MIN_LSN, H_FENCE, H_COUNT, H_RAW = H_COUNT };

#define COUNT(a)    (sizeof(a) / sizeof((a)[0]))
#define PICK(a, k)  ((a)[(k) % COUNT(a)])
#define CODE_SSL    80877103u
#define CODE_GSSENC 80877104u

static struct {
    char dir[64];
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int port, ws_port;
    struct config *cfg; /* the daemon's: workers and health checks use it */
    struct region_host *hosts[NHOSTS];
    uint8_t client_key[KEY_LEN]; /* SCRAM's, from PASSWORD */
    uint8_t stored_key[KEY_LEN];
    bool verbose;
    unsigned connect_failures;
} G;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_login: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ---- values of hints, PROXY TLVs and HTTP headers ---- */

/* "00000001/FF/0" and its kin: well formed, or near it. */
static void put_lsn(struct out *o, struct cursor *c, uint8_t k)
{
    uint32_t tli = take_u32(c), hi = take_u32(c), lo = take_u32(c);
    switch (k & 7) {
    case 0:
    case 1:
        out_printf(o, "%08X/%X/%X", tli, hi, lo);
        break;
    case 2:
        out_printf(o, "%X/%X", hi, lo);
        break;
    case 3:
        out_printf(o, "%08X/%X/%X", tli & 3, hi & 0x1FF, lo & 0xF);
        break;
    case 4:
        out_printf(o, "%X/%X/%X", tli, hi, lo); /* the timeline unpadded */
        break;
    case 5:
        out_printf(o, "%08X/%X/%X/%X", tli, hi, lo, tli);
        break;
    case 6:
        out_printf(o, "%08X//%X", tli, lo);
        break;
    default:
        out_printf(o, "%09X/%X/%X", tli, hi, lo);
        break;
    }
}

/* "lat,lon" in range or out of it. */
static void put_location(struct out *o, struct cursor *c, uint8_t k)
{
    int lat = (int16_t)(take_u8(c) << 8);
    lat |= take_u8(c);
    int lon = (int16_t)(take_u8(c) << 8);
    lon |= take_u8(c);
    static const char *const separators[] = {",", ", ", " ", ",,"};
    out_printf(o, "%d.%02d%s%d.%02d", lat / 300, abs(lat % 100), PICK(separators, k), lon / 150,
               abs(lon % 100));
}

/* A value for hint h: one pgnear knows or nearly (k & 3 != 0), or the input's own bytes. */
static void put_hint_value(struct out *o, struct cursor *c, int h)
{
    uint8_t k = take_u8(c);
    if ((k & 3) == 0 || h == H_RAW) {
        out_chunk(o, c);
        return;
    }
    k >>= 2;
    switch (h) {
    case H_REGION:
        out_str(o, PICK(region_names, k));
        break;
    case H_CITY:
        out_str(o, PICK(city_names, k));
        break;
    case H_LOCATION:
        put_location(o, c, k);
        break;
    case H_NEED:
        out_str(o, PICK(need_names, k));
        break;
    case H_MIN_LSN:
        put_lsn(o, c, k);
        break;
    default:
        out_str(o, PICK(fence_names, k));
        break;
    }
}

/* ---- the startup packet ---- */

/* One word of options: a hint in one of the forms the server takes, or the input's bytes. */
static void put_option_word(struct out *o, struct cursor *c)
{
    static const char *const forms[] = {"-c pgnear.", "-cpgnear.", "--pgnear.", "-c PGNEAR."};
    uint8_t w = take_u8(c);
    int kind = w & 7;
    if (kind == 7) {
        out_chunk(o, c);
        return;
    }
    if (kind == 6) {
        out_str(o, "-c pgnear.");
        out_chunk(o, c); /* a name pgnear may not know */
        out_u8(o, '=');
    } else {
        out_printf(o, "%s%s=", forms[(w >> 3) & 3], hint_names[kind]);
    }
    uint8_t vbuf[300];
    struct out v = OUT_ON(vbuf);
    put_hint_value(&v, c, kind == 6 ? H_RAW : kind);
    for (size_t i = 0; i < v.len; i++) {
        /* Escaped as libpq users must, or not: a stray word is an error of its own. */
        if ((w & 0x20) && (v.b[i] == ' ' || v.b[i] == '\\'))
            out_u8(o, '\\');
        out_u8(o, v.b[i]);
    }
}

static void put_options(struct out *o, struct cursor *c)
{
    int words = 1 + (take_u8(c) & 7);
    for (int i = 0; i < words; i++) {
        if (i > 0)
            out_str(o, (i & 1) ? " " : "  ");
        put_option_word(o, c);
    }
    out_u8(o, 0);
}

/* A name from the table (k & 3 != 0) or the input's bytes; with its NUL. */
static void put_choice(struct out *o, struct cursor *c, const char *const *names, size_t n)
{
    uint8_t k = take_u8(c);
    if ((k & 3) == 0)
        out_chunk(o, c);
    else
        out_str(o, names[(k >> 2) % n]);
    out_u8(o, 0);
}

static void put_param(struct out *o, struct cursor *c)
{
    static const char *const repl[] = {"true", "database", "off"};
    uint8_t sel = take_u8(c);
    int which = sel % 13;
    if (which == 0) {
        out_cstr(o, "user");
        put_choice(o, c, user_names, COUNT(user_names));
    } else if (which == 1) {
        out_cstr(o, "database");
        put_choice(o, c, db_names, COUNT(db_names));
    } else if (which == 2) {
        out_cstr(o, "options");
        put_options(o, c);
    } else if (which < 9) {
        /* A hint as a parameter of its own, as some drivers send settings. */
        out_printf(o, (sel & 0x80) ? "PgNear.%s" : "pgnear.%s", hint_names[which - 3]);
        out_u8(o, 0);
        put_hint_value(o, c, which - 3);
        out_u8(o, 0);
    } else if (which == 9) {
        out_cstr(o, "replication");
        put_choice(o, c, repl, COUNT(repl));
    } else {
        static const char *const prefixes[] = {"_pq_.", "application_name", ""};
        out_str(o, prefixes[which - 10]);
        if (which != 11)
            out_chunk(o, c);
        out_u8(o, 0);
        out_chunk(o, c);
        out_u8(o, 0);
    }
}

/*
 * [v] protocol version (bits 0-2: 3.0, 3.0, 3.2, 3.1, 3.9, 2.0, 3.65535,
 * four bytes of the input), bits 3-4 the user of f's bit 7 (app and writer
 * are in auth_file, the others go to auth_query); [f] bits 0-4 parameters,
 * bit 5 no final NUL, bit 6 a length off by a signed byte, bit 7 a user
 * and database movr first; then each parameter (put_param).
 */
static void build_startup(struct out *o, struct cursor *c)
{
    static const uint32_t versions[8] = {0x30000, 0x30000, 0x30002, 0x30001,
                                         0x30009, 0x20000, 0x3FFFF, 0};
    uint8_t v = take_u8(c), f = take_u8(c);
    out_u32(o, 0);
    out_u32(o, (v & 7) == 7 ? take_u32(c) : versions[v & 7]);
    if (f & 0x80) {
        out_cstr(o, "user");
        out_cstr(o, user_names[(v >> 3) & 3]);
        out_cstr(o, "database");
        out_cstr(o, "movr");
    }
    for (int i = 0; i < (f & 31); i++)
        put_param(o, c);
    if (!(f & 0x20))
        out_u8(o, 0);
    uint32_t len = (uint32_t)o->len;
    if (f & 0x40)
        len += (uint32_t)(int8_t)take_u8(c);
    patch_u32(o, 0, len);
}

/* ---- PROXY headers ---- */

static uint32_t crc32c(const uint8_t *p, size_t n)
{
    uint32_t crc = ~0u;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void build_proxy_v1(struct out *o, struct cursor *c)
{
    uint8_t k = take_u8(c), a[12];
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = take_u8(c);
    unsigned sport = (unsigned)a[8] << 8 | a[9], dport = (unsigned)a[10] << 8 | a[11];
    switch (k & 3) {
    case 0:
    case 1:
        out_printf(o, "PROXY TCP4 %u.%u.%u.%u %u.%u.%u.%u %u %u\r\n", a[0], a[1], a[2], a[3], a[4],
                   a[5], a[6], a[7], sport, dport);
        break;
    case 2:
        out_printf(o, "PROXY TCP6 2001:db8::%x:%x ::ffff:%u.%u.%u.%u %u %u\r\n", a[0], a[1], a[4],
                   a[5], a[6], a[7], sport, dport);
        break;
    default:
        out_str(o, "PROXY UNKNOWN\r\n");
        break;
    }
}

/* A TLV: the locality ones pgnear reads (0xE3 city, 0xE4 region, 0xE5 location), or others. */
static void put_tlv(struct out *o, struct cursor *c)
{
    static const uint8_t types[] = {0xE3, 0xE4, 0xE5, 0x04, 0x20, 0x01, 0x02};
    static const int hints[] = {H_CITY, H_REGION, H_LOCATION};
    uint8_t sel = take_u8(c) % 8;
    uint8_t vbuf[300];
    struct out v = OUT_ON(vbuf);
    uint8_t type = sel < COUNT(types) ? types[sel] : take_u8(c);
    put_hint_value(&v, c, sel < COUNT(hints) ? hints[sel] : H_RAW);
    out_u8(o, type);
    out_u16(o, (uint16_t)v.len);
    out_put(o, v.b, v.len);
}

/*
 * [k] bits 0-1 family (unspecified, IPv4, IPv6, Unix), bit 2 LOCAL, bit 3
 * a CRC32C TLV (right), bits 4-6 TLVs; the addresses' bytes; the TLVs.
 */
static void build_proxy_v2(struct out *o, struct cursor *c)
{
    static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    static const uint8_t families[4] = {0x00, 0x11, 0x21, 0x31};
    static const size_t addr_len[4] = {0, 12, 36, 216};
    uint8_t k = take_u8(c);
    out_put(o, sig, sizeof(sig));
    out_u8(o, (k & 4) ? 0x20 : 0x21);
    out_u8(o, families[k & 3]);
    out_u16(o, 0);
    for (size_t i = 0; i < addr_len[k & 3]; i++)
        out_u8(o, take_u8(c));
    for (int i = 0; i < ((k >> 4) & 7); i++)
        put_tlv(o, c);
    size_t crc_at = 0;
    if (k & 8) {
        out_u8(o, 0x03);
        out_u16(o, 4);
        crc_at = o->len;
        out_u32(o, 0);
    }
    size_t len = o->len - 16;
    o->b[14] = (uint8_t)(len >> 8);
    o->b[15] = (uint8_t)len;
    if (crc_at != 0)
        patch_u32(o, crc_at, crc32c(o->b, o->len));
}

static void build_proxy(struct out *o, struct cursor *c, int kind)
{
    if (kind == 1)
        build_proxy_v1(o, c);
    else if (kind == 2)
        build_proxy_v2(o, c);
    else if (kind == 3)
        out_chunk(o, c);
}

/* ---- the WebSocket upgrade ---- */

struct ws_opts {
    size_t frame;  /* payload bytes a frame */
    bool ping;     /* a ping before each frame */
    bool unmasked; /* frames a client must not send */
    bool pipeline; /* frames right behind the request, before the answer */
};

static void put_header(struct out *o, struct cursor *c, bool on, const char *name, int hint)
{
    if (!on)
        return;
    out_printf(o, "%s: ", name);
    put_hint_value(o, c, hint);
    out_str(o, "\r\n");
}

/*
 * [f] bits 0-1 path (/, /v2?..., /healthz, another), then headers:
 * bit 2 X-Region, 3 X-City and X-Country, 4 X-Client-City-Lat-Long,
 * 5 X-Forwarded-For, 6 Forwarded, 7 raw lines; [g] bits 0-1 a fault (none,
 * no key, version 8, POST), bits 2-4 frame size, bits 5-7 ws_opts; then
 * the headers' values.
 */
static void build_http(struct out *o, struct cursor *c, struct ws_opts *w)
{
    static const char *const paths[4] = {"/", "/v2?address=db.example.com:5432", "/healthz",
                                         "/nowhere"};
    static const size_t frames[8] = {1, 3, 7, 16, 64, 200, 1024, 65535};
    uint8_t f = take_u8(c), g = take_u8(c);
    out_printf(o, "%s %s HTTP/1.1\r\nHost: pgnear.example.com\r\n", (g & 3) == 3 ? "POST" : "GET",
               paths[f & 3]);
    out_str(o, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    if ((g & 3) != 1)
        out_str(o, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    out_printf(o, "Sec-WebSocket-Version: %s\r\n", (g & 3) == 2 ? "8" : "13");
    put_header(o, c, f & 0x04, "X-Region", H_REGION);
    put_header(o, c, f & 0x08, "X-City", H_CITY);
    put_header(o, c, f & 0x08, "X-Country", H_RAW);
    put_header(o, c, f & 0x10, "X-Client-City-Lat-Long", H_LOCATION);
    put_header(o, c, f & 0x20, "X-Forwarded-For", H_RAW);
    put_header(o, c, f & 0x40, "Forwarded", H_RAW);
    if (f & 0x80)
        out_chunk(o, c);
    out_str(o, "\r\n");
    w->frame = frames[(g >> 2) & 7];
    w->ping = g & 0x20;
    w->unmasked = g & 0x40;
    w->pipeline = g & 0x80;
}

/* ---- one input's client, as planned ---- */

enum listener { L_TCP, L_WS, L_UNIX };
enum ending { END_READ, END_HANG_UP, END_CLOSE, END_SHUT_WR };
enum client_auth { AUTH_RAW, AUTH_RIGHT, AUTH_WRONG, AUTH_FIRST };

struct plan {
    enum listener listener;
    int src;    /* the last byte of 127.0.0.x */
    int proxy;  /* none, v1, v2, raw */
    int prefix; /* bit 0 SSLRequest, bit 1 GSSENCRequest */
    enum ending end;
    int delay_ms;
    enum client_auth auth;
    bool raw_startup, rst;
    size_t piece; /* 0: send whole */
    struct ws_opts ws;
    struct out proxy_hdr, http, startup;
    const uint8_t *first, *tail; /* SCRAM's first message (AUTH_FIRST), the rest */
    size_t nfirst, ntail;
};

static uint8_t proxy_store[4096], http_store[16384], startup_store[32768];

/*
 * Whether bytes could reach the admin console over the Unix socket (where
 * this OS user is trusted): admin_db as a whole string, which every way
 * of naming it as the database (or the user it defaults to) must be.
 */
static bool names_admin_db(const uint8_t *p, size_t n)
{
    size_t k = strlen(ADMIN_DB);
    for (size_t i = 1; i + k <= n; i++)
        if (p[i - 1] == 0 && memcmp(p + i, ADMIN_DB, k) == 0 && (i + k == n || p[i + k] == 0))
            return true;
    return false;
}

static void plan_head(struct plan *p, const uint8_t *h)
{
    static const int delays[8] = {0, 5, 20, 50, 120, 250, 400, 1100};
    static const int sources[4] = {1, 1, 2, 3};
    static const enum listener listeners[4] = {L_TCP, L_TCP, L_WS, L_UNIX};
    memset(p, 0, sizeof(*p));
    p->listener = listeners[h[0] & 3];
    p->src = sources[(h[0] >> 2) & 3];
    p->proxy = p->listener == L_TCP ? (h[0] >> 4) & 3 : 0;
    p->prefix = h[0] >> 6;
    p->end = (enum ending)(h[7] & 3);
    p->delay_ms = delays[(h[7] >> 2) & 7];
    p->auth = (enum client_auth)((h[7] >> 5) & 3);
    p->raw_startup = h[7] & 0x80;
    p->rst = h[8] & 1;
    p->piece = (h[8] & 2) ? 1 + (size_t)((h[8] >> 2) & 7) : 0;
    p->proxy_hdr = OUT_ON(proxy_store);
    p->http = OUT_ON(http_store);
    p->startup = OUT_ON(startup_store);
}

static void plan_input(struct plan *p, const uint8_t *h, struct cursor *c)
{
    plan_head(p, h);
    build_proxy(&p->proxy_hdr, c, p->proxy);
    if (p->listener == L_WS)
        build_http(&p->http, c, &p->ws);
    if (p->raw_startup) {
        out_put(&p->startup, c->p, c->n);
        c->n = 0;
    } else {
        build_startup(&p->startup, c);
    }
    if (p->auth == AUTH_FIRST)
        p->nfirst = take_chunk(c, &p->first);
    p->tail = c->p;
    p->ntail = c->n;
    if (p->listener == L_UNIX && (p->raw_startup || names_admin_db(p->startup.b, p->startup.len) ||
                                  memmem(p->tail, p->ntail, ADMIN_DB, strlen(ADMIN_DB)) != NULL))
        p->listener = L_TCP;
}

/* ---- the client's connection ---- */

#define RX_CAP 16384

/* Its buffers last: client_run clears what comes before them. */
struct client {
    int fd;
    const struct plan *plan;
    bool ws;        /* websocket_port: frames both ways once upgraded */
    int ws_state;   /* 0 the HTTP answer is awaited, 1 upgraded, 2 refused */
    bool eof;       /* pgnear closed, or the connection broke */
    bool broken;    /* sending failed */
    size_t chopped; /* bytes sent in pieces so far */
    int64_t deadline;
    bool tail_sent;
    size_t got;  /* bytes received in all, for PGNEAR_FUZZ_VERBOSE */
    size_t nraw; /* in raw: received on websocket_port, not yet unframed */
    size_t npg;  /* in pg: the PostgreSQL stream received, not yet parsed */
    size_t nfirst_bare;
    char first_bare[600]; /* SCRAM client-first-message-bare */
    uint8_t raw[RX_CAP];
    uint8_t pg[RX_CAP];
};

static struct client cl;

/* Waits for events on fd until the deadline (ms of now_ms); false on time out. */
static bool wait_fd(int fd, short events, int64_t until)
{
    for (;;) {
        int64_t left = until - now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {fd, events, 0};
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

static int connect_unix(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memcpy(sun.sun_path, G.unix_path, sizeof(sun.sun_path));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 && errno != EINPROGRESS &&
        errno != EAGAIN) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A loopback TCP connection from 127.0.0.src to port; -1 if it cannot be made within 1 s. */
static int connect_tcp(int port, int src)
{
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7F000000u | src)};
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, err = 0;
    socklen_t len = sizeof(err);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0 ||
        (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0 && errno != EINPROGRESS) ||
        !wait_fd(fd, POLLOUT, now_ms() + 1000) ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_raw(struct client *c, const uint8_t *p, size_t n)
{
    while (n > 0 && !c->broken) {
        bool chop = c->plan->piece > 0 && c->chopped < CHOP_BYTES;
        ssize_t w = send(c->fd, p, chop ? MIN(n, c->plan->piece) : n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            if (chop) {
                c->chopped += (size_t)w;
                nap_us(200); /* so that pgnear may read the pieces apart */
            }
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            c->broken = !wait_fd(c->fd, POLLOUT, c->deadline);
        } else {
            c->broken = true;
        }
    }
}

/* A client's frame: FIN, opcode, masked with a fixed key unless the plan says not. */
static void send_frame(struct client *c, uint8_t opcode, const uint8_t *p, size_t n)
{
    static const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
    bool mask = !c->plan->ws.unmasked;
    uint8_t hdr[14], buf[1024];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        hdr[h++] = (uint8_t)((mask ? 0x80 : 0) | n);
    } else {
        hdr[h++] = (uint8_t)((mask ? 0x80 : 0) | 126); /* n < 65536: frames are smaller */
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    }
    if (mask)
        for (int i = 0; i < 4; i++)
            hdr[h++] = key[i];
    send_raw(c, hdr, h);
    for (size_t off = 0; off < n; off += sizeof(buf)) {
        size_t k = MIN(n - off, sizeof(buf));
        for (size_t i = 0; i < k; i++)
            buf[i] = p[off + i] ^ (mask ? key[(off + i) & 3] : 0);
        send_raw(c, buf, k);
    }
}

/* The PostgreSQL stream, in frames on websocket_port. */
static void client_send(struct client *c, const uint8_t *p, size_t n)
{
    if (!c->ws) {
        send_raw(c, p, n);
        return;
    }
    while (n > 0 && !c->broken) {
        size_t k = MIN(n, c->plan->ws.frame);
        if (c->plan->ws.ping)
            send_frame(c, 0x9, (const uint8_t *)"hi", 2);
        send_frame(c, 0x2, p, k);
        p += k;
        n -= k;
    }
}

static void rx_drop(uint8_t *buf, size_t *n, size_t k)
{
    memmove(buf, buf + k, *n - k);
    *n -= k;
}

/* pgnear's frames (unmasked): data into c->pg, a close frame ends the stream. */
static void ws_unframe(struct client *c)
{
    while (c->nraw >= 2) {
        size_t len = c->raw[1] & 0x7F, h = 2;
        if (len == 126 && c->nraw >= 4)
            len = (size_t)c->raw[2] << 8 | c->raw[3], h = 4;
        else if (len == 127 && c->nraw >= 10)
            len = RX_CAP, h = 10; /* pgnear's frames are never that long at login */
        else if (len >= 126)
            return;
        h += (c->raw[1] & 0x80) ? 4 : 0;
        if (h + len > RX_CAP) {
            c->nraw = 0; /* not a frame this client can take: forget it */
            return;
        }
        if (h + len > c->nraw)
            return;
        uint8_t op = c->raw[0] & 0x0F;
        if (op <= 2 && c->npg + len <= RX_CAP) {
            memcpy(c->pg + c->npg, c->raw + h, len);
            c->npg += len;
        }
        if (op == 8)
            c->eof = true;
        rx_drop(c->raw, &c->nraw, h + len);
    }
}

/* websocket_port's bytes: the HTTP answer first, then frames (or nothing, once refused). */
static void ws_received(struct client *c)
{
    if (c->ws_state == 0) {
        uint8_t *end = memmem(c->raw, c->nraw, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        c->ws_state = c->nraw >= 13 && memcmp(c->raw, "HTTP/1.1 101 ", 13) == 0 ? 1 : 2;
        rx_drop(c->raw, &c->nraw, (size_t)(end + 4 - c->raw));
    }
    if (c->ws_state == 1)
        ws_unframe(c);
    else
        c->nraw = 0;
}

/* Waits up to ms for bytes; false on silence or at the end of the stream. */
static bool client_fill(struct client *c, int ms)
{
    int64_t until = now_ms() + ms;
    if (c->eof || !wait_fd(c->fd, POLLIN, MIN(until, c->deadline)))
        return false;
    uint8_t *buf = c->ws ? c->raw : c->pg;
    size_t *n = c->ws ? &c->nraw : &c->npg;
    if (*n == RX_CAP)
        *n = 0; /* more than a login ever sends at once: start over */
    ssize_t r = recv(c->fd, buf + *n, RX_CAP - *n, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        c->eof = true;
        return false;
    }
    if (r > 0) {
        *n += (size_t)r;
        c->got += (size_t)r;
        if (c->ws)
            ws_received(c);
    }
    return true;
}

/* ---- the client's side of the login ---- */

static void send_message(struct client *c, uint8_t type, const struct out *body)
{
    uint8_t buf[2048];
    struct out m = OUT_ON(buf);
    out_u8(&m, type);
    out_u32(&m, (uint32_t)(body->len + 4));
    out_put(&m, body->b, body->len);
    client_send(c, m.b, m.len);
}

static void send_tail(struct client *c)
{
    if (c->tail_sent)
        return;
    c->tail_sent = true;
    client_send(c, c->plan->tail, c->plan->ntail);
}

/* SASLInitialResponse: "n,,n=,r=NONCE", or the input's bytes (AUTH_FIRST). */
static void scram_first(struct client *c)
{
    const struct plan *p = c->plan;
    uint8_t buf[1024];
    struct out m = OUT_ON(buf);
    out_cstr(&m, "SCRAM-SHA-256");
    if (p->auth == AUTH_FIRST) {
        out_u32(&m, (uint32_t)p->nfirst);
        out_put(&m, p->first, p->nfirst);
        /* The bare message follows the GS2 header's two commas. */
        const uint8_t *bare = memchr(p->first, ',', p->nfirst);
        bare = bare ? memchr(bare + 1, ',', p->nfirst - (size_t)(bare + 1 - p->first)) : NULL;
        size_t skip = bare ? (size_t)(bare + 1 - p->first) : 0;
        c->nfirst_bare = MIN(p->nfirst - skip, sizeof(c->first_bare));
        memcpy(c->first_bare, p->first + skip, c->nfirst_bare);
    } else {
        c->nfirst_bare =
            (size_t)snprintf(c->first_bare, sizeof(c->first_bare), "n=,r=fuzzLoginClientNonce0123");
        out_u32(&m, (uint32_t)c->nfirst_bare + 3);
        out_str(&m, "n,,");
        out_put(&m, c->first_bare, c->nfirst_bare);
    }
    send_message(c, 'p', &m);
}

/* SASLResponse to server-first sf: the proof PASSWORD gives, or one bit off it. */
static void scram_final(struct client *c, const uint8_t *sf, size_t n)
{
    uint8_t auth_msg[2048], sig[EVP_MAX_MD_SIZE], proof[KEY_LEN], buf[1024];
    char proof64[64];
    unsigned sig_len = 0;
    const uint8_t *r = n >= 2 && memcmp(sf, "r=", 2) == 0 ? sf + 2 : sf;
    const uint8_t *comma = memchr(r, ',', n - (size_t)(r - sf));
    size_t nr = comma ? (size_t)(comma - r) : n - (size_t)(r - sf);
    struct out m = OUT_ON(buf), a = OUT_ON(auth_msg);
    out_str(&m, "c=biws,r=");
    out_put(&m, r, nr);
    out_put(&a, c->first_bare, c->nfirst_bare);
    out_u8(&a, ',');
    out_put(&a, sf, n);
    out_u8(&a, ',');
    out_put(&a, m.b, m.len);
    if (HMAC(EVP_sha256(), G.stored_key, KEY_LEN, a.b, a.len, sig, &sig_len) == NULL)
        fail("HMAC failed");
    for (int i = 0; i < KEY_LEN; i++)
        proof[i] = G.client_key[i] ^ sig[i];
    if (c->plan->auth == AUTH_WRONG)
        proof[0] ^= 1;
    EVP_EncodeBlock((unsigned char *)proof64, proof, KEY_LEN);
    out_str(&m, ",p=");
    out_str(&m, proof64);
    send_message(c, 'p', &m);
}

static void send_password(struct client *c)
{
    uint8_t buf[64];
    struct out m = OUT_ON(buf);
    out_cstr(&m, c->plan->auth == AUTH_WRONG ? "wrong" PASSWORD : PASSWORD);
    send_message(c, 'p', &m);
}

/* What pgnear asks of the client during authentication. */
static void client_handle(struct client *c, uint8_t type, const uint8_t *body, size_t len)
{
    if (type != 'R' || len < 4 || c->plan->auth == AUTH_RAW)
        return;
    uint32_t code = (uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 | body[2] << 8 | body[3];
    if (code == 10)
        scram_first(c);
    else if (code == 11)
        scram_final(c, body + 4, len - 4);
    else if (code == 3)
        send_password(c);
    else if (code == 12 || code == 0)
        send_tail(c);
}

/* Every whole message received so far; a length no message has ends the parse. */
static void client_parse(struct client *c)
{
    while (c->npg >= 5) {
        uint32_t len =
            (uint32_t)c->pg[1] << 24 | (uint32_t)c->pg[2] << 16 | c->pg[3] << 8 | c->pg[4];
        if (len < 4 || len > RX_CAP - 1) {
            c->npg = 0;
            return;
        }
        if (c->npg < (size_t)len + 1)
            return;
        client_handle(c, c->pg[0], c->pg + 5, len - 4);
        rx_drop(c->pg, &c->npg, (size_t)len + 1);
    }
}

/* Reads and answers until pgnear closes, falls silent for silence_ms, or the deadline. */
static void client_converse(struct client *c, int silence_ms)
{
    for (;;) {
        client_parse(c);
        if (c->eof || now_ms() >= c->deadline)
            return;
        if (!client_fill(c, silence_ms) && !c->eof)
            return;
    }
}

/* SSLRequest or GSSENCRequest, and pgnear's one-byte answer: true for 'N', go on. */
static bool client_negotiate(struct client *c, uint32_t code, int silence_ms)
{
    uint8_t buf[8];
    struct out m = OUT_ON(buf);
    out_u32(&m, 8);
    out_u32(&m, code);
    client_send(c, m.b, m.len);
    while (c->npg == 0 && client_fill(c, silence_ms))
        ;
    if (c->npg == 0 || c->pg[0] != 'N')
        return false;
    rx_drop(c->pg, &c->npg, 1);
    return true;
}

/* The HTTP upgrade; true when frames may follow (at once, under ws.pipeline). */
static bool client_upgrade(struct client *c, int silence_ms)
{
    send_raw(c, c->plan->http.b, c->plan->http.len);
    if (c->plan->ws.pipeline)
        return true;
    while (c->ws_state == 0 && client_fill(c, silence_ms))
        ;
    return c->ws_state == 1;
}

/* Everything up to the startup packet; false when pgnear turned the client away. */
static bool client_open(struct client *c, int silence_ms)
{
    const struct plan *p = c->plan;
    if (c->ws && !client_upgrade(c, silence_ms))
        return false;
    send_raw(c, p->proxy_hdr.b, p->proxy_hdr.len);
    if ((p->prefix & 2) && !client_negotiate(c, CODE_GSSENC, silence_ms))
        return false;
    if ((p->prefix & 1) && !client_negotiate(c, CODE_SSL, silence_ms))
        return false;
    client_send(c, p->startup.b, p->startup.len);
    if (p->auth == AUTH_RAW)
        send_tail(c);
    return true;
}

static void client_close(struct client *c)
{
    if (c->plan->rst) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
    c->fd = -1;
}

static void client_run(const struct plan *p)
{
    struct client *c = &cl;
    int64_t start = now_ms();
    int silence = p->delay_ms > MIN_SILENCE_MS ? p->delay_ms : MIN_SILENCE_MS;
    memset(c, 0, offsetof(struct client, first_bare));
    c->plan = p;
    c->ws = p->listener == L_WS;
    c->deadline = start + INPUT_MS;
    c->fd =
        p->listener == L_UNIX ? connect_unix() : connect_tcp(c->ws ? G.ws_port : G.port, p->src);
    if (c->fd < 0) {
        /* None to be had now (the daemon's liveness is checked apart): say so, not every time. */
        if (G.connect_failures++ % 100 == 0)
            fprintf(stderr, "fuzz_login: could not connect (%s), %u times so far\n",
                    strerror(errno), G.connect_failures);
        return;
    }
    if (p->end == END_HANG_UP)
        c->deadline = start + p->delay_ms;
    bool opened = client_open(c, silence);
    if (p->end == END_CLOSE)
        nap_us(1000L * p->delay_ms);
    else if (p->end == END_SHUT_WR && opened)
        shutdown(c->fd, SHUT_WR);
    if (p->end != END_CLOSE)
        client_converse(c, p->end == END_HANG_UP ? INPUT_MS : silence);
    client_close(c);
    if (G.verbose)
        fprintf(stderr, "fuzz_login: %s, %zu bytes back, %s after %lld ms\n",
                opened ? "opened" : "turned away", c->got, c->eof ? "closed by pgnear" : "left",
                (long long)(now_ms() - start));
}

/* ---- host health, as checks would have left it ---- */

static void set_health(const uint8_t *h)
{
    static const uint64_t lsns[4] = {0, 0x3000148, 0xFF00000000ull, UINT64_MAX};
    static const uint32_t timelines[4] = {0, 1, 2, 0xFFFFFFFFu};
    static const uint64_t system_ids[4] = {0, 7, 7, 9};
    bool same = h[8] & 0x20;
    for (int i = 0; i < NHOSTS; i++) {
        struct host_health *hh = &G.hosts[i]->runtime->health;
        uint8_t f = h[1 + (same ? 0 : i)];
        int shift = same ? 0 : 2 * i;
        __atomic_store_n(&hh->up, (f & 1) != 0, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->checked, (f & 2) != 0, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->role_known, (f & 4) != 0, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->in_recovery, (f & 8) != 0, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->read_only, (f & 16) != 0, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->lagging, (f & 32) != 0, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->lsn, lsns[f >> 6], __ATOMIC_RELAXED);
        __atomic_store_n(&hh->timeline, timelines[(h[5] >> shift) & 3], __ATOMIC_RELAXED);
        __atomic_store_n(&hh->system_id, system_ids[(h[6] >> shift) & 3], __ATOMIC_RELAXED);
        __atomic_store_n(&hh->login_saw_standby_ms, 0, __ATOMIC_RELAXED);
    }
}

/* ---- the daemon ---- */

static bool healthz(int ms)
{
    return fuzz_healthz(G.ws_port, ms);
}

/* PASSWORD's SCRAM keys, and the verifier pgnear checks them against. */
static void scram_keys(char *verifier, size_t cap)
{
    static const uint8_t salt[16] = {'p', 'g', 'n', 'e', 'a', 'r', '-', 'f',
                                     'u', 'z', 'z', '-', 's', 'a', 'l', 't'};
    fuzz_scram_keys("fuzz_login", PASSWORD, salt, sizeof(salt), 4096, G.client_key, G.stored_key,
                    verifier, cap);
}

static FILE *open_in_dir(const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", G.dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail("could not write %s: %s", path, strerror(errno));
    return f;
}

static void close_file(FILE *f, const char *path)
{
    if (ferror(f) || fclose(f) != 0)
        fail("could not write %s", path);
}

static const char *cities_file(void)
{
    const char *env = getenv("PGNEAR_FUZZ_CITIES");
    return env != NULL ? env : "";
}

static void write_settings(FILE *f, const char *auth_file, const int *ports)
{
    const char *workers = getenv("PGNEAR_FUZZ_WORKERS");
    const char *auth = getenv("PGNEAR_FUZZ_AUTH");
    fprintf(f, "[pgnear]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir = %s\n",
            G.port, G.dir);
    fprintf(f, "websocket_port = %d\nworkers = %s\n", G.ws_port, workers ? workers : "2");
    fprintf(f, "auth = %s\nauth_file = %s\n", auth ? auth : "scram", auth_file);
    fprintf(f, "auth_query = SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1\n");
    fprintf(f, "server_conninfo = user=pgnear password=fuzz connect_timeout=1\n");
    fprintf(f, "admin_db = %s\nproxy_protocol = optional\nclient_hints = on\n", ADMIN_DB);
    fprintf(f, "trusted_proxies = 127.0.0.1\ntrusted_http_proxies = 127.0.0.3\n"
               "geo_lat_long_header = X-Client-City-Lat-Long\n");
    fprintf(f, "peer_id = 1\npeers = 1@127.0.0.1:%d, 2@127.0.0.3:%d\n", G.port, ports[NHOSTS]);
    fprintf(f, "failover_wait = 200ms\nmin_lsn_wait = 100ms\nclient_login_timeout = 1s\n");
    fprintf(f, "server_connect_timeout = 200ms\nhealth_check_interval = 3600s\n");
    fprintf(f, "health_check_timeout = 200ms\nauth_failure_threshold = 0\n");
    fprintf(f, "websocket_handshake_timeout = 500ms\ncancel_forward_timeout = 100ms\n");
    fprintf(f, "logfile = %s\n", getenv("PGNEAR_FUZZ_LOG") ? "" : "/dev/null");
    if (cities_file()[0] != '\0')
        fprintf(f, "cities_file = %s\n", cities_file());
}

/* Three regions, four hosts on closed ports; [cities], and needs by user and database. */
static void write_regions(FILE *f, const int *ports)
{
    fprintf(f, "\n[region us-east]\nlocation = 39.04, -77.49\n");
    fprintf(f, "hosts = 127.0.0.1:%d, 127.0.0.1:%d\n", ports[0], ports[1]);
    fprintf(f, "\n[region eu-west]\nlocation = 53.35, -6.26\nhosts = 127.0.0.1:%d\n", ports[2]);
    fprintf(f, "\n[region ap-south]\nlocation = 19.07, 72.87\nhosts = 127.0.0.1:%d\n", ports[3]);
    fprintf(f, "\n[cities]\nseattle = us-east\ndublin = eu-west\nmumbai = ap-south\n");
    fprintf(f, "\n[user writer]\ntarget_session_attrs = read-write\n");
    fprintf(f, "\n[database reports]\ntarget_session_attrs = read-only\n");
}

static void write_config(char *path, size_t cap)
{
    char users[256], verifier[256];
    int ports[NHOSTS + 3]; /* the hosts', the other peer's, listen_port, websocket_port */
    for (int i = 0; i < NHOSTS + 3; i++)
        ports[i] = fuzz_pick_port("fuzz_login", ports, i);
    G.port = ports[NHOSTS + 1];
    G.ws_port = ports[NHOSTS + 2];
    scram_keys(verifier, sizeof(verifier));
    FILE *f = open_in_dir("users.txt", users, sizeof(users));
    fprintf(f, "\"app\" \"%s\"\n\"writer\" \"%s\"\n", verifier, verifier);
    close_file(f, users);
    f = open_in_dir("pgnear.ini", path, cap);
    write_settings(f, users, ports);
    write_regions(f, ports);
    close_file(f, path);
    snprintf(G.unix_path, sizeof(G.unix_path), "%s/.s.PGSQL.%d", G.dir, G.port);
}

static void load_and_start(const char *path)
{
    struct config *cfg = fuzz_daemon_start("fuzz_login", path);
    size_t n = 0;
    for (size_t r = 0; r < cfg->regions.count; r++)
        for (size_t h = 0; h < cfg->regions.items[r].nhosts && n < NHOSTS; h++)
            G.hosts[n++] = &cfg->regions.items[r].hosts[h];
    if (n != NHOSTS)
        fail("the configuration has %zu hosts, not %d", n, NHOSTS);
    G.cfg = cfg;
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
    signal(SIGPIPE, SIG_IGN); /* as pgnear's main does */
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    snprintf(G.dir, sizeof(G.dir), "/tmp/fuzz_login.XXXXXX");
    if (mkdtemp(G.dir) == NULL)
        fail("mkdtemp: %s", strerror(errno));
    atexit(remove_dir);
    G.verbose = getenv("PGNEAR_FUZZ_VERBOSE") != NULL;
    write_config(path, sizeof(path));
    load_and_start(path);
    /*
     * An answer to /healthz means the workers' loops run, so the daemon's
     * signal handlers are in: libFuzzer's own, installed after this
     * returns, replace those of SIGINT and SIGTERM.
     */
    int64_t until = now_ms() + 20000;
    while (!healthz(500))
        if (now_ms() > until)
            fail("pgnear did not start on port %d", G.port);
    for (int i = 0; i < NHOSTS; i++)
        if (__atomic_load_n(&G.hosts[i]->runtime, __ATOMIC_ACQUIRE) == NULL)
            fail("host %d has no registry entry", i);
    fprintf(stderr, "fuzz_login: pgnear on 127.0.0.1:%d, websocket_port %d, in %s\n", G.port,
            G.ws_port, G.dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct plan plan;
    struct cursor c = {data, size};
    uint8_t head[HEAD_LEN];
    for (int i = 0; i < HEAD_LEN; i++)
        head[i] = take_u8(&c);
    plan_input(&plan, head, &c);
    set_health(head);
    client_run(&plan);
    fuzz_check_alive("fuzz_login", G.ws_port, ALIVE_MS);
    return 0;
}
