/*
 * ws_bench.c
 *    A small load client for the relay: N connections (one thread each,
 *    blocking sockets) log in with PostgreSQL's v3 protocol, then loop a
 *    simple Query and read to ReadyForQuery, for a duration or a number of
 *    transactions each.  The same client speaks plain TCP, a WebSocket
 *    (RFC 6455: HTTP/1.1 upgrade, masked client frames, binary frames
 *    carrying the PostgreSQL stream), a WebSocket over TLS (wss) or TCP
 *    with PostgreSQL's own TLS (an SSLRequest first), so that the paths
 *    through pgnear can be compared with the client's own cost held equal
 *    (bench/ws_bench.pl).
 *
 *    ws_bench --tcp HOST:PORT | --tls HOST:PORT | --ws HOST:PORT[/path]
 *             | --wss HOST:PORT[/path]
 *             [-c connections] [-T seconds | -t transactions]
 *             [-q query | --big | --upload bytes]
 *             [-U user] [-d database] [-P password] [--label name] [--think-ms ms]
 *             [--frame-size bytes [--fragment]]
 *
 *    Logins: trust (AuthenticationOk) or a cleartext password request
 *    (code 3, which pgnear asks WebSocket clients for); other methods are
 *    refused with a message.  Checking is strict: an ErrorResponse, a
 *    message of a type the exchange does not allow, a length that does not
 *    add up, a bad frame or a closed connection ends the run with exit
 *    status 1 and says which connection saw what.
 *
 *    --big: SELECT repeat('x', 1000000), whose row is checked byte by byte;
 *    --upload N: SELECT length('x…x'), a query of N bytes (what the
 *    client sends, for the other direction).
 *
 *    --frame-size N cuts what the client sends into frames of N bytes at
 *    most (messages of their own; with --fragment, one message's
 *    continuation frames): frame boundaries that are not message ones.
 *
 *    Output: a line for people and one "RESULT key=value ..." line
 *    (bytes are the PostgreSQL stream's, without frame or TLS overhead).  The
 *    clock starts when every connection has logged in.  wss and --tls do
 *    not check the server's certificate (a benchmark, on loopback).  --think-ms pauses
 *    each connection between transactions (so that a server's pings, from
 *    websocket_ping_interval, arrive and are answered; latency excludes it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define WS_GUID           "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define RAW_BUF_SIZE      (64 * 1024)
#define MAX_PG_MESSAGE    (256 * 1024 * 1024)
#define MAX_HTTP_HEAD     8192
#define BIG_QUERY         "SELECT repeat('x', 1000000)"
#define BIG_ROW_LENGTH    1000000 /* --big checks every byte of its one field */
#define ERROR_TEXT_LENGTH 512

enum transport { T_TCP, T_WS, T_WSS, T_TLS };

struct options {
    enum transport transport;
    char host[256];
    char port[16];
    char path[256];
    int connections;
    double seconds;    /* 0: run transactions instead */
    long transactions; /* per connection */
    const char *query;
    const char *user;
    const char *database;
    const char *password;
    const char *label;
    long think_us;     /* pause between transactions (lets server pings arrive) */
    bool big;          /* the query is BIG_QUERY: check the row's bytes too */
    char *upload;      /* --upload's query, built here */
    size_t frame_size; /* ws: frames of at most this many bytes (0: one frame a write) */
    bool fragment;     /* ws: ... as continuation frames of one message */
};

/* What the threads share: the options, the start barrier, the stop flag. */
struct run {
    const struct options *opt;
    SSL_CTX *ssl_ctx;
    pthread_barrier_t logged_in;
    struct timespec start;
    atomic_bool stop;
    atomic_bool failed;
};

/* A growable byte buffer: data[off .. len) is unread. */
struct buf {
    uint8_t *data;
    size_t off, len, cap;
};

struct conn {
    struct run *run;
    int id;
    int fd;
    SSL *ssl;
    bool ws;
    uint8_t raw[RAW_BUF_SIZE]; /* bytes from the socket not yet parsed as frames */
    size_t raw_off, raw_len;
    struct buf pg;  /* the PostgreSQL stream (frame payload for ws) */
    struct buf out; /* one frame or message being built */
    uint64_t rng;
    bool closing;   /* we sent our close frame: the server's answers it */
    bool got_close; /* the server's close frame arrived */
    /* results */
    long transactions;
    double latency_sum_s, latency_max_s, login_s;
    uint64_t pg_bytes_in, pg_bytes_out;
    char error[ERROR_TEXT_LENGTH];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Records the first failure of c (returns -1 for the caller to pass up). */
static int fail(struct conn *c, const char *fmt, ...)
{
    if (c->error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof c->error, fmt, ap);
        va_end(ap);
    }
    atomic_store(&c->run->failed, true);
    atomic_store(&c->run->stop, true);
    return -1;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ws_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* ---------- buffers ---------- */

static int buf_reserve(struct conn *c, struct buf *b, size_t more)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + more <= b->cap)
        return 0;
    if (b->off > 0) { /* slide the unread bytes down first */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap)
            return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return fail(c, "out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_put(struct conn *c, struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(c, b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t next_random(struct conn *c)
{
    /* xorshift64*: mask keys need not be cryptographic for a benchmark */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1DULL;
}

/* ---------- the socket (plain or TLS) ---------- */

static ssize_t sock_read(struct conn *c, void *p, size_t n)
{
    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, p, (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        return fail(c, "TLS read failed (SSL error %d, %s)", e,
                    ERR_reason_error_string(ERR_get_error()) ?: "connection reset");
    }
    for (;;) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK) /* only say_goodbye() sets a timeout */
            return fail(c, "no close frame from the server within 5 s of ours");
        if (errno != EINTR)
            return fail(c, "recv: %s", strerror(errno));
    }
}

static int sock_write_all(struct conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl != NULL) {
            int r = SSL_write(c->ssl, p, (int)n);
            if (r <= 0)
                return fail(c, "TLS write failed (SSL error %d)", SSL_get_error(c->ssl, r));
            w = r;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return fail(c, "send: %s", strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* More bytes from the socket into raw; 0 at end of stream. */
static ssize_t raw_fill(struct conn *c)
{
    if (c->raw_off > 0) {
        memmove(c->raw, c->raw + c->raw_off, c->raw_len - c->raw_off);
        c->raw_len -= c->raw_off;
        c->raw_off = 0;
    }
    if (c->raw_len == sizeof c->raw)
        return fail(c, "internal: raw buffer full");
    ssize_t r = sock_read(c, c->raw + c->raw_len, sizeof c->raw - c->raw_len);
    if (r > 0)
        c->raw_len += (size_t)r;
    return r;
}

static int tcp_connect(struct conn *c)
{
    const struct options *o = c->run->opt;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int e = getaddrinfo(o->host, o->port, &hints, &res);
    if (e != 0)
        return fail(c, "cannot resolve %s: %s", o->host, gai_strerror(e));
    c->fd = -1;
    for (struct addrinfo *a = res; a != NULL && c->fd < 0; a = a->ai_next) {
        c->fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (c->fd >= 0 && connect(c->fd, a->ai_addr, a->ai_addrlen) < 0) {
            close(c->fd);
            c->fd = -1;
        }
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return fail(c, "cannot connect to %s:%s: %s", o->host, o->port, strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

/* PostgreSQL's own TLS (--tls): an SSLRequest, which the server must accept with 'S'. */
static int ssl_request(struct conn *c)
{
    static const uint8_t request[8] = {0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F}; /* 80877103 */
    uint8_t answer;
    if (sock_write_all(c, request, sizeof request) < 0)
        return -1;
    ssize_t r = sock_read(c, &answer, 1);
    if (r < 0)
        return -1;
    if (r == 0)
        return fail(c, "server closed the connection after SSLRequest");
    if (answer != 'S')
        return fail(c, "server refused TLS (answered '%c' to SSLRequest)", answer);
    return 0;
}

/* TLS on the socket: wss, or --tls after its SSLRequest.  The certificate is not checked. */
static int start_tls(struct conn *c)
{
    const struct options *o = c->run->opt;
    if (c->run->ssl_ctx == NULL)
        return 0;
    if (o->transport == T_TLS && ssl_request(c) < 0)
        return -1;
    c->ssl = SSL_new(c->run->ssl_ctx);
    if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd) || !SSL_set_tlsext_host_name(c->ssl, o->host))
        return fail(c, "out of memory for TLS");
    if (SSL_connect(c->ssl) != 1)
        return fail(c, "TLS handshake failed: %s",
                    ERR_reason_error_string(ERR_get_error()) ?: "connection closed");
    return 0;
}

/* ---------- the WebSocket upgrade ---------- */

static void base64(const uint8_t *in, int n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, n);
}

static void expected_accept(const char *key, char *out)
{
    char joined[128];
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    snprintf(joined, sizeof joined, "%s%s", key, WS_GUID);
    EVP_Digest(joined, strlen(joined), digest, &len, EVP_sha1(), NULL);
    base64(digest, (int)len, out);
}

/* The value of header name in the response head (NUL-terminated), trimmed, into out. */
static bool header_value(const char *head, const char *name, char *out, size_t max)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
            continue;
        const char *v = line + nlen + 1, *end = strstr(v, "\r\n");
        while (*v == ' ' || *v == '\t')
            v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        size_t n = (size_t)(end - v) < max - 1 ? (size_t)(end - v) : max - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Reads the response head into raw; bytes after it stay there (frames). */
static int read_http_head(struct conn *c, char *head)
{
    for (;;) {
        char *end = memmem(c->raw, c->raw_len, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t n = (size_t)(end - (char *)c->raw) + 4;
            memcpy(head, c->raw, n);
            head[n] = '\0';
            c->raw_off = n;
            return 0;
        }
        if (c->raw_len >= MAX_HTTP_HEAD)
            return fail(c, "HTTP response head longer than %d bytes", MAX_HTTP_HEAD);
        ssize_t r = raw_fill(c);
        if (r == 0)
            return fail(c, "connection closed during the WebSocket upgrade");
        if (r < 0)
            return -1;
    }
}

static int ws_upgrade(struct conn *c)
{
    const struct options *o = c->run->opt;
    uint8_t nonce[16];
    char key[32], accept_want[64], accept_got[128], request[1024], head[MAX_HTTP_HEAD + 8];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = next_random(c);
        memcpy(nonce + i, &r, 8);
    }
    base64(nonce, 16, key);
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nUser-Agent: ws_bench\r\n\r\n",
                     o->path, o->host, o->port, key);
    if (sock_write_all(c, (uint8_t *)request, (size_t)n) < 0 || read_http_head(c, head) < 0)
        return -1;
    if (strncmp(head, "HTTP/1.1 101 ", 13) != 0) {
        head[strcspn(head, "\r\n")] = '\0';
        return fail(c, "WebSocket upgrade refused: \"%s\"", head);
    }
    expected_accept(key, accept_want);
    if (!header_value(head, "Sec-WebSocket-Accept", accept_got, sizeof accept_got))
        return fail(c, "101 response without Sec-WebSocket-Accept");
    if (strcmp(accept_got, accept_want) != 0)
        return fail(c, "Sec-WebSocket-Accept is \"%s\", expected \"%s\"", accept_got, accept_want);
    return 0;
}

/* ---------- WebSocket frames ---------- */

/* One masked frame of opcode holding p[0..n), in one write; fin: the message's last. */
static int ws_send_fragment(struct conn *c, int opcode, bool fin, const uint8_t *p, size_t n)
{
    uint8_t head[14];
    size_t h = 2;
    head[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        head[1] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        head[1] = 0x80 | 126;
        head[2] = (uint8_t)(n >> 8);
        head[3] = (uint8_t)n;
        h = 4;
    } else {
        head[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            head[2 + i] = (uint8_t)(n >> (56 - 8 * i));
        h = 10;
    }
    uint32_t mask = (uint32_t)next_random(c);
    memcpy(head + h, &mask, 4);
    const uint8_t *m = head + h;
    h += 4;
    c->out.off = c->out.len = 0;
    if (buf_reserve(c, &c->out, h + n) < 0)
        return -1;
    memcpy(c->out.data, head, h);
    for (size_t i = 0; i < n; i++)
        c->out.data[h + i] = p[i] ^ m[i & 3];
    c->out.len = h + n;
    return sock_write_all(c, c->out.data, c->out.len);
}

static int ws_send_frame(struct conn *c, int opcode, const uint8_t *p, size_t n)
{
    return ws_send_fragment(c, opcode, true, p, n);
}

/*
 * Sends PostgreSQL bytes: as they are, or in one binary frame; with
 * --frame-size, in frames of that many bytes at most (each a message of
 * its own, or with --fragment the continuation frames of one message).
 */
static int pg_send(struct conn *c, const uint8_t *p, size_t n)
{
    const struct options *o = c->run->opt;
    c->pg_bytes_out += n;
    if (!c->ws)
        return sock_write_all(c, p, n);
    if (o->frame_size == 0)
        return ws_send_frame(c, 0x2, p, n);
    for (size_t at = 0; at < n; at += o->frame_size) {
        size_t k = n - at < o->frame_size ? n - at : o->frame_size;
        bool first = at == 0, last = at + k == n;
        int opcode = o->fragment && !first ? 0x0 : 0x2;
        if (ws_send_fragment(c, opcode, !o->fragment || last, p + at, k) < 0)
            return -1;
    }
    return 0;
}

/* Waits until raw holds need bytes from raw_off. */
static int raw_need(struct conn *c, size_t need)
{
    while (c->raw_len - c->raw_off < need) {
        ssize_t r = raw_fill(c);
        if (r == 0)
            return fail(c, "server closed the connection without a close frame");
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Copies len payload bytes (streaming through raw) into dst, or drops them when dst is NULL. */
static int ws_take_payload(struct conn *c, struct buf *dst, uint64_t len)
{
    while (len > 0) {
        if (c->raw_off == c->raw_len && raw_need(c, 1) < 0)
            return -1;
        size_t n = c->raw_len - c->raw_off;
        if (n > len)
            n = (size_t)len;
        if (dst != NULL && buf_put(c, dst, c->raw + c->raw_off, n) < 0)
            return -1;
        c->raw_off += n;
        len -= n;
    }
    return 0;
}

static int ws_control_frame(struct conn *c, int opcode, uint64_t len)
{
    struct buf payload = {0};
    if (len > 125)
        return fail(c, "control frame (opcode %d) of %llu bytes", opcode, (unsigned long long)len);
    if (ws_take_payload(c, &payload, len) < 0)
        return -1;
    int rc = 0;
    if (opcode == 0x9) /* ping: pong with the same payload */
        rc = ws_send_frame(c, 0xA, payload.data, payload.len);
    else if (opcode == 0x8 && c->closing)
        c->got_close = true;
    else if (opcode == 0x8) {
        int code = payload.len >= 2 ? payload.data[0] << 8 | payload.data[1] : 0;
        rc = fail(c, "server sent a close frame (code %d%s%.*s) mid-exchange", code,
                  payload.len > 2 ? ": " : "", (int)(payload.len > 2 ? payload.len - 2 : 0),
                  payload.len > 2 ? (char *)payload.data + 2 : "");
    }
    free(payload.data);
    return rc;
}

/* Reads one server frame; binary and continuation payload goes to the pg buffer. */
static int ws_read_frame(struct conn *c)
{
    if (raw_need(c, 2) < 0)
        return -1;
    const uint8_t *h = c->raw + c->raw_off;
    int opcode = h[0] & 0x0F;
    if (h[0] & 0x70)
        return fail(c, "server frame with RSV bits set (0x%02x)", h[0]);
    if (h[1] & 0x80)
        return fail(c, "server frame is masked (a server must not mask)");
    size_t hlen = (h[1] & 0x7F) == 126 ? 4 : (h[1] & 0x7F) == 127 ? 10 : 2;
    if (raw_need(c, hlen) < 0)
        return -1;
    h = c->raw + c->raw_off;
    uint64_t len = h[1] & 0x7F;
    if (hlen == 4)
        len = (uint64_t)h[2] << 8 | h[3];
    else if (hlen == 10)
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
    if (len > MAX_PG_MESSAGE)
        return fail(c, "server frame of %llu bytes", (unsigned long long)len);
    c->raw_off += hlen;
    if (opcode == 0x0 || opcode == 0x2)
        return ws_take_payload(c, &c->pg, len);
    if (opcode >= 0x8 && opcode <= 0xA)
        return ws_control_frame(c, opcode, len);
    return fail(c, "server frame with opcode %d (only binary frames carry the stream)", opcode);
}

/* More bytes of the PostgreSQL stream into c->pg. */
static int pg_fill(struct conn *c)
{
    if (c->ws)
        return ws_read_frame(c);
    if (buf_reserve(c, &c->pg, RAW_BUF_SIZE) < 0)
        return -1;
    ssize_t r = sock_read(c, c->pg.data + c->pg.len, c->pg.cap - c->pg.len);
    if (r == 0)
        return fail(c, "server closed the connection");
    if (r > 0)
        c->pg.len += (size_t)r;
    return r < 0 ? -1 : 0;
}

/* ---------- PostgreSQL messages ---------- */

struct pg_msg {
    char type;
    const uint8_t *body;
    uint32_t len; /* of body */
};

/* The next whole message; it stays valid until the next call. */
static int pg_next(struct conn *c, struct pg_msg *m)
{
    for (;;) {
        size_t have = c->pg.len - c->pg.off;
        if (have >= 5) {
            const uint8_t *p = c->pg.data + c->pg.off;
            uint32_t len = get_u32(p + 1);
            if (len < 4 || len > MAX_PG_MESSAGE)
                return fail(c, "malformed message: type 0x%02x with length %u", p[0], len);
            if (have >= (size_t)len + 1) {
                m->type = (char)p[0];
                m->body = p + 5;
                m->len = len - 4;
                c->pg.off += (size_t)len + 1;
                c->pg_bytes_in += (size_t)len + 1;
                return 0;
            }
            if (buf_reserve(c, &c->pg, (size_t)len + 1 - have) < 0)
                return -1;
        }
        if (pg_fill(c) < 0)
            return -1;
    }
}

/* An ErrorResponse's severity, SQLSTATE and message, as a failure. */
static int pg_error(struct conn *c, const struct pg_msg *m)
{
    const char *sev = "?", *code = "?", *msg = "?";
    for (uint32_t i = 0; i < m->len && m->body[i] != 0;) {
        const char *v = (const char *)m->body + i + 1;
        size_t vlen = strnlen(v, m->len - i - 1);
        if (i + 1 + vlen >= m->len)
            return fail(c, "malformed ErrorResponse");
        if (m->body[i] == 'S')
            sev = v;
        else if (m->body[i] == 'C')
            code = v;
        else if (m->body[i] == 'M')
            msg = v;
        i += 1 + (uint32_t)vlen + 1;
    }
    return fail(c, "server error: %s %s: %s", sev, code, msg);
}

/* A DataRow's fields must fill it exactly. */
static int check_data_row(struct conn *c, const struct pg_msg *m)
{
    if (m->len < 2)
        return fail(c, "malformed DataRow (%u bytes)", m->len);
    unsigned fields = (unsigned)m->body[0] << 8 | m->body[1];
    size_t at = 2;
    for (unsigned i = 0; i < fields; i++) {
        if (at + 4 > m->len)
            return fail(c, "malformed DataRow: field %u runs past the message", i);
        int32_t flen = (int32_t)get_u32(m->body + at);
        at += 4;
        if (flen < -1 || (flen > 0 && (size_t)flen > m->len - at))
            return fail(c, "malformed DataRow: field %u has length %d", i, flen);
        if (flen > 0)
            at += (size_t)flen;
    }
    if (at != m->len)
        return fail(c, "malformed DataRow: %zu bytes after its %u fields", m->len - at, fields);
    return 0;
}

/* --big's row: one field of BIG_ROW_LENGTH 'x' (check_data_row() saw the framing). */
static int check_big_row(struct conn *c, const struct pg_msg *m)
{
    static const uint8_t xs[4096] = {[0 ... 4095] = 'x'};
    if (m->len != 2 + 4 + BIG_ROW_LENGTH || m->body[0] != 0 || m->body[1] != 1)
        return fail(c, "--big: a DataRow of %u bytes (expected %d: one field of %d bytes)", m->len,
                    2 + 4 + BIG_ROW_LENGTH, BIG_ROW_LENGTH);
    for (size_t at = 6; at < m->len; at += sizeof xs) {
        size_t n = m->len - at < sizeof xs ? m->len - at : sizeof xs;
        if (memcmp(m->body + at, xs, n) != 0)
            return fail(c, "--big: wrong bytes in the row near offset %zu", at - 6);
    }
    return 0;
}

static int send_startup(struct conn *c)
{
    const struct options *o = c->run->opt;
    uint8_t msg[1024];
    size_t n = 8;
    const char *pairs[] = {"user",    o->user, "database", o->database, "application_name",
                           "ws_bench"};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t l = strlen(pairs[i]) + 1;
        if (n + l + 1 > sizeof msg)
            return fail(c, "startup parameters too long");
        memcpy(msg + n, pairs[i], l);
        n += l;
    }
    msg[n++] = 0;
    put_u32(msg, (uint32_t)n);
    put_u32(msg + 4, 196608); /* protocol 3.0 */
    return pg_send(c, msg, n);
}

static int send_password(struct conn *c)
{
    const char *pw = c->run->opt->password;
    if (pw == NULL)
        return fail(c, "the server asks for a password: give -P or PGPASSWORD");
    size_t n = strlen(pw) + 1 + 5;
    uint8_t *msg = malloc(n);
    if (msg == NULL)
        return fail(c, "out of memory");
    msg[0] = 'p';
    put_u32(msg + 1, (uint32_t)n - 1);
    memcpy(msg + 5, pw, n - 5);
    int rc = pg_send(c, msg, n);
    free(msg);
    return rc;
}

static int on_authentication(struct conn *c, const struct pg_msg *m)
{
    if (m->len < 4)
        return fail(c, "malformed Authentication message");
    uint32_t code = get_u32(m->body);
    if (code == 0)
        return m->len == 4 ? 0 : fail(c, "malformed AuthenticationOk");
    if (code == 3)
        return send_password(c);
    return fail(c,
                "authentication method %u is not supported by ws_bench (trust or a "
                "cleartext password only)",
                code);
}

/* StartupMessage through ReadyForQuery. */
static int login(struct conn *c)
{
    struct pg_msg m;
    if (send_startup(c) < 0)
        return -1;
    bool authenticated = false;
    for (;;) {
        if (pg_next(c, &m) < 0)
            return -1;
        switch (m.type) {
        case 'R':
            if (on_authentication(c, &m) < 0)
                return -1;
            authenticated = authenticated || get_u32(m.body) == 0;
            break;
        case 'S': /* ParameterStatus */
        case 'K': /* BackendKeyData */
        case 'N': /* NoticeResponse */
            if (!authenticated)
                return fail(c, "message '%c' before AuthenticationOk", m.type);
            break;
        case 'E':
            return pg_error(c, &m);
        case 'Z':
            return authenticated ? 0 : fail(c, "ReadyForQuery before AuthenticationOk");
        default:
            return fail(c, "unexpected message '%c' during login", m.type);
        }
    }
}

/* One simple Query through its ReadyForQuery. */
static int transaction(struct conn *c, const uint8_t *query_msg, size_t query_len)
{
    struct pg_msg m;
    bool completed = false;
    if (pg_send(c, query_msg, query_len) < 0)
        return -1;
    for (;;) {
        if (pg_next(c, &m) < 0)
            return -1;
        switch (m.type) {
        case 'D':
            if (check_data_row(c, &m) < 0 || (c->run->opt->big && check_big_row(c, &m) < 0))
                return -1;
            break;
        case 'C': /* CommandComplete */
        case 'I': /* EmptyQueryResponse */
            completed = true;
            break;
        case 'T': /* RowDescription */
        case 'N':
        case 'S':
            break;
        case 'E':
            return pg_error(c, &m);
        case 'Z':
            if (m.len != 1 || m.body[0] != 'I')
                return fail(c, "ReadyForQuery with status '%c' (expected idle)",
                            m.len == 1 ? m.body[0] : '?');
            return completed ? 0 : fail(c, "ReadyForQuery without CommandComplete");
        default:
            return fail(c, "unexpected message '%c' in a query's answer", m.type);
        }
    }
}

static int make_query_message(struct conn *c, struct buf *msg)
{
    const char *q = c->run->opt->query;
    size_t n = strlen(q) + 1 + 5;
    if (buf_reserve(c, msg, n) < 0)
        return -1;
    msg->data[0] = 'Q';
    put_u32(msg->data + 1, (uint32_t)n - 1);
    memcpy(msg->data + 5, q, n - 5);
    msg->len = n;
    return 0;
}

/* Reads what is left until the server closes: no unread bytes at close(), so no RST. */
static void drain_quietly(struct conn *c)
{
    uint8_t scratch[4096];
    if (c->ssl != NULL) {
        while (SSL_read(c->ssl, scratch, sizeof scratch) > 0)
            continue;
        return;
    }
    shutdown(c->fd, SHUT_WR);
    while (recv(c->fd, scratch, sizeof scratch, 0) > 0)
        continue;
}

/*
 * Terminate, then (ws) a close frame 1000, which the server must answer with
 * its own close frame (RFC 6455 section 5.5.1): a failure if it does not.
 */
static void say_goodbye(struct conn *c)
{
    static const uint8_t terminate[5] = {'X', 0, 0, 0, 4};
    static const uint8_t normal[2] = {0x03, 0xE8};
    struct timeval limit = {.tv_sec = 5};
    if (c->fd < 0 || pg_send(c, terminate, sizeof terminate) < 0)
        return;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (c->ws) {
        if (ws_send_frame(c, 0x8, normal, sizeof normal) < 0)
            return;
        c->closing = true;
        while (!c->got_close)
            if (ws_read_frame(c) < 0)
                return;
    }
    drain_quietly(c);
}

static void run_transactions(struct conn *c, const struct buf *q)
{
    const struct options *o = c->run->opt;
    double end = o->seconds > 0 ? now_s() + o->seconds : 0;
    while (!atomic_load(&c->run->stop)) {
        if (o->seconds > 0 ? now_s() >= end : c->transactions >= o->transactions)
            break;
        double t0 = now_s();
        if (transaction(c, q->data, q->len) < 0)
            return;
        double dt = now_s() - t0;
        c->transactions++;
        c->latency_sum_s += dt;
        if (dt > c->latency_max_s)
            c->latency_max_s = dt;
        if (o->think_us > 0)
            usleep((useconds_t)o->think_us);
    }
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct buf q = {0};
    double t0 = now_s();
    bool ok = tcp_connect(c) == 0 && start_tls(c) == 0 && (!c->ws || ws_upgrade(c) == 0) &&
              login(c) == 0 && make_query_message(c, &q) == 0;
    c->login_s = now_s() - t0;
    /* everyone waits here, failed or not, so that the clock starts together */
    if (pthread_barrier_wait(&c->run->logged_in) == PTHREAD_BARRIER_SERIAL_THREAD)
        clock_gettime(CLOCK_MONOTONIC, &c->run->start);
    if (ok)
        run_transactions(c, &q);
    if (c->error[0] == '\0')
        say_goodbye(c);
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(q.data);
    return NULL;
}

/* ---------- options and the report ---------- */

static void usage(void)
{
    fputs("usage: ws_bench --tcp HOST:PORT | --tls HOST:PORT | --ws HOST:PORT[/path]\n"
          "                | --wss HOST:PORT[/path]\n"
          "                [-c connections] [-T seconds | -t transactions]\n"
          "                [-q query | --big | --upload bytes] [-U user] [-d database]\n"
          "                [-P password] [--label name] [--think-ms ms]\n"
          "                [--frame-size bytes [--fragment]]\n",
          stderr);
    exit(2);
}

static void parse_target(struct options *o, enum transport t, const char *arg)
{
    const char *slash = strchr(arg, '/');
    const char *colon = NULL;
    for (const char *p = arg; *p != '\0' && p != slash; p++)
        if (*p == ':')
            colon = p;
    if (colon == NULL)
        die("target \"%s\" needs HOST:PORT", arg);
    o->transport = t;
    snprintf(o->host, sizeof o->host, "%.*s", (int)(colon - arg), arg);
    if (o->host[0] == '[') { /* [::1]:port */
        memmove(o->host, o->host + 1, strlen(o->host));
        o->host[strcspn(o->host, "]")] = '\0';
    }
    snprintf(o->port, sizeof o->port, "%.*s",
             (int)(slash ? slash - colon - 1 : (long)strlen(colon + 1)), colon + 1);
    snprintf(o->path, sizeof o->path, "%s", slash ? slash : "/");
}

/* SELECT length('x…x'), n x's: a query of about n bytes, the client-to-server direction. */
static char *upload_query(long n)
{
    if (n < 32 || n > MAX_PG_MESSAGE / 2)
        die("--upload takes a size from 32 to %d bytes", MAX_PG_MESSAGE / 2);
    char *q = malloc((size_t)n + 1);
    if (q == NULL)
        die("out of memory");
    size_t head = (size_t)snprintf(q, (size_t)n + 1, "SELECT length('");
    memset(q + head, 'x', (size_t)n - head - 2);
    memcpy(q + n - 2, "')", 3);
    return q;
}

/* The short options: false when ch is none of them. */
static bool apply_short_option(struct options *o, int ch, char *arg)
{
    switch (ch) {
    case 'c':
        o->connections = atoi(arg);
        return true;
    case 'T':
        o->seconds = atof(arg);
        o->transactions = 0;
        return true;
    case 't':
        o->transactions = atol(arg);
        o->seconds = 0;
        return true;
    case 'q':
        o->query = arg;
        return true;
    case 'U':
        o->user = arg;
        return true;
    case 'd':
        o->database = arg;
        return true;
    case 'P':
        o->password = arg;
        return true;
    }
    return false;
}

enum long_option {
    OPT_TCP = 1, /* the first four in enum transport's order */
    OPT_WS,
    OPT_WSS,
    OPT_TLS,
    OPT_BIG,
    OPT_UPLOAD,
    OPT_LABEL,
    OPT_THINK,
    OPT_FRAME_SIZE,
    OPT_FRAGMENT
};

/* One option of getopt_long's: false when it is not one of ours. */
static bool apply_option(struct options *o, int ch, char *arg, bool *target)
{
    switch (ch) {
    case OPT_TCP:
    case OPT_WS:
    case OPT_WSS:
    case OPT_TLS:
        parse_target(o, (enum transport)(ch - OPT_TCP), arg);
        *target = true;
        return true;
    case OPT_BIG:
        o->query = BIG_QUERY;
        o->big = true;
        return true;
    case OPT_UPLOAD:
        o->query = o->upload = upload_query(atol(arg));
        return true;
    case OPT_LABEL:
        o->label = arg;
        return true;
    case OPT_THINK:
        o->think_us = (long)(atof(arg) * 1000);
        return true;
    case OPT_FRAME_SIZE:
        o->frame_size = (size_t)atol(arg);
        return true;
    case OPT_FRAGMENT:
        o->fragment = true;
        return true;
    }
    return apply_short_option(o, ch, arg);
}

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {{"tcp", required_argument, NULL, OPT_TCP},
                                          {"ws", required_argument, NULL, OPT_WS},
                                          {"wss", required_argument, NULL, OPT_WSS},
                                          {"tls", required_argument, NULL, OPT_TLS},
                                          {"big", no_argument, NULL, OPT_BIG},
                                          {"upload", required_argument, NULL, OPT_UPLOAD},
                                          {"label", required_argument, NULL, OPT_LABEL},
                                          {"think-ms", required_argument, NULL, OPT_THINK},
                                          {"frame-size", required_argument, NULL, OPT_FRAME_SIZE},
                                          {"fragment", no_argument, NULL, OPT_FRAGMENT},
                                          {NULL, 0, NULL, 0}};
    bool target = false;
    int ch;
    *o = (struct options){.connections = 1,
                          .seconds = 5,
                          .query = "SELECT 1",
                          .user = "app",
                          .password = getenv("PGPASSWORD"),
                          .label = ""};
    while ((ch = getopt_long(argc, argv, "c:T:t:q:U:d:P:", longs, NULL)) != -1)
        if (!apply_option(o, ch, optarg, &target))
            usage();
    if (o->database == NULL) /* as libpq: the user's name */
        o->database = o->user;
    if (o->fragment && o->frame_size == 0)
        die("--fragment needs --frame-size");
    if (!target || optind != argc || o->connections < 1 || o->connections > 10000 ||
        (o->seconds <= 0 && o->transactions <= 0))
        usage();
}

static const char *transport_name(enum transport t)
{
    static const char *const names[] = {"tcp", "ws", "wss", "tls"};
    return names[t];
}

/* The upgrade path, for WebSocket targets only. */
static const char *ws_path_shown(const struct options *o)
{
    return o->transport == T_WS || o->transport == T_WSS ? o->path : "";
}

static int report(const struct run *run, const struct conn *conns, double elapsed)
{
    const struct options *o = run->opt;
    long tx = 0;
    double lat = 0, lat_max = 0, login = 0;
    uint64_t in = 0, out = 0;
    int failures = 0;
    for (int i = 0; i < o->connections; i++) {
        const struct conn *c = &conns[i];
        if (c->error[0] != '\0') {
            fprintf(stderr, "ws_bench: connection %d: %s\n", i, c->error);
            failures++;
        }
        tx += c->transactions;
        lat += c->latency_sum_s;
        lat_max = c->latency_max_s > lat_max ? c->latency_max_s : lat_max;
        login += c->login_s;
        in += c->pg_bytes_in;
        out += c->pg_bytes_out;
    }
    double tps = tx / elapsed, mean_ms = tx ? lat / tx * 1e3 : 0;
    printf("ws_bench: %s %s:%s%s, %d connections, %.2f s: %ld transactions, %.1f tps, "
           "mean latency %.3f ms (max %.3f), %.2f MB/s received, %.2f MB/s sent, "
           "mean login %.2f ms%s\n",
           transport_name(o->transport), o->host, o->port, ws_path_shown(o), o->connections,
           elapsed, tx, tps, mean_ms, lat_max * 1e3, in / elapsed / 1e6, out / elapsed / 1e6,
           login / o->connections * 1e3, failures ? ", FAILED" : "");
    printf("RESULT label=%s transport=%s connections=%d seconds=%.3f transactions=%ld tps=%.1f "
           "latency_ms=%.4f bytes_in=%llu bytes_out=%llu bytes_per_s=%.0f failures=%d\n",
           /* bytes_per_s: both directions of the PostgreSQL stream */
           o->label[0] ? o->label : transport_name(o->transport), transport_name(o->transport),
           o->connections, elapsed, tx, tps, mean_ms, (unsigned long long)in,
           (unsigned long long)out, (in + out) / elapsed, failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct options opt;
    struct run run = {.opt = &opt};
    parse_options(argc, argv, &opt);
    if (opt.transport == T_WSS || opt.transport == T_TLS) {
        run.ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (run.ssl_ctx == NULL)
            die("cannot make a TLS context");
        SSL_CTX_set_verify(run.ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
    struct conn *conns = calloc((size_t)opt.connections, sizeof *conns);
    pthread_t *threads = calloc((size_t)opt.connections, sizeof *threads);
    if (conns == NULL || threads == NULL)
        die("out of memory");
    pthread_barrier_init(&run.logged_in, NULL, (unsigned)opt.connections);
    for (int i = 0; i < opt.connections; i++) {
        conns[i] = (struct conn){
            .run = &run, .id = i, .fd = -1, .ws = opt.transport == T_WS || opt.transport == T_WSS};
        if (getrandom(&conns[i].rng, sizeof conns[i].rng, 0) != sizeof conns[i].rng ||
            conns[i].rng == 0)
            conns[i].rng = 0x9E3779B97F4A7C15ULL + (uint64_t)i;
        if (pthread_create(&threads[i], NULL, conn_main, &conns[i]) != 0)
            die("cannot start thread %d", i);
    }
    for (int i = 0; i < opt.connections; i++)
        pthread_join(threads[i], NULL);
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double elapsed = (end.tv_sec - run.start.tv_sec) + (end.tv_nsec - run.start.tv_nsec) / 1e9;
    int rc = report(&run, conns, elapsed);
    for (int i = 0; i < opt.connections; i++) {
        free(conns[i].pg.data);
        free(conns[i].out.data);
    }
    free(conns);
    free(threads);
    SSL_CTX_free(run.ssl_ctx);
    free(opt.upload);
    return rc;
}
