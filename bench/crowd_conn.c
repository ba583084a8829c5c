/*
 * crowd_conn.c — one client connection of bench/crowd (crowd.h): the
 * startup message, the login (SCRAM-SHA-256 through pgnear's own client
 * side, protocol/scram_client.c, with the ClientKey derived once for the
 * whole run; a cleartext password; trust), `SELECT 1`, then idle (a
 * member), Terminate (a probe), or, for the key exchange, the server's
 * salt and iteration count read from its first SCRAM message and the
 * keys derived from them before the connection is closed.
 *
 * A connection is a bufferevent and, during a SCRAM exchange, a struct
 * scram_client; nothing else.  Every server message is read by its
 * length, which is checked before anything is pulled up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "bench/crowd.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum conn_state {
    CONN_LOGIN = 1, /* startup sent, until ReadyForQuery */
    CONN_QUERY,     /* `SELECT 1` sent, until ReadyForQuery */
    CONN_IDLE,      /* a member, done */
    CONN_CLOSED,
};

/* AuthenticationRequest codes (protocol-message-formats). */
enum {
    AUTH_OK = 0,
    AUTH_CLEARTEXT = 3,
    AUTH_MD5 = 5,
    AUTH_SASL = 10,
    AUTH_SASL_CONTINUE = 11,
    AUTH_SASL_FINAL = 12
};

/* What handling one message left: go on reading, or stop (the connection ended). */
enum { READ_ON = 0, READ_STOP = 1 };

double crowd_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *crowd_errno_name(int err, char *buf, size_t cap)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {
        {EMFILE, "EMFILE"},
        {ENFILE, "ENFILE"},
        {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {EADDRINUSE, "EADDRINUSE"},
        {ECONNREFUSED, "ECONNREFUSED"},
        {ECONNRESET, "ECONNRESET"},
        {ENOBUFS, "ENOBUFS"},
        {ENOMEM, "ENOMEM"},
        {ETIMEDOUT, "ETIMEDOUT"},
        {EPIPE, "EPIPE"},
        {EAGAIN, "EAGAIN"},
        {ENETUNREACH, "ENETUNREACH"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].err == err)
            return names[i].name;
    }
    snprintf(buf, cap, "E%d", err);
    return buf;
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Sends a message: type (0 for none, as the startup message), then len bytes of body. */
static void send_msg(struct crowd_conn *c, char type, const void *body, size_t len)
{
    uint8_t head[5];
    size_t n = 0;

    if (type != 0)
        head[n++] = (uint8_t)type;
    put32(head + n, (uint32_t)(len + 4));
    bufferevent_write(c->bev, head, n + 4);
    bufferevent_write(c->bev, body, len);
}

static void drop_scram(struct crowd_conn *c)
{
    if (c->scram != NULL) {
        scram_client_cleanup(c->scram);
        free(c->scram);
        c->scram = NULL;
    }
}

void crowd_conn_close(struct crowd_conn *c)
{
    drop_scram(c);
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    c->state = CONN_CLOSED;
}

/* The login or its query ended: done is told, and the connection kept or closed by kind. */
static int conn_finish(struct crowd_conn *c, const char *code, const char *text)
{
    int fd = c->bev != NULL ? bufferevent_getfd(c->bev) : -1;

    drop_scram(c);
    if (code == NULL && c->kind == CROWD_MEMBER) {
        c->state = CONN_IDLE;
        bufferevent_set_timeouts(c->bev, NULL, NULL);
        c->done(c, NULL, NULL);
        return READ_ON;
    }
    if (code == NULL && c->kind == CROWD_PROBE && fd >= 0) {
        static const uint8_t terminate[5] = {'X', 0, 0, 0, 4};

        (void)send(fd, terminate, sizeof(terminate), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    crowd_conn_close(c);
    c->done(c, code, text);
    return READ_STOP;
}

/* A member's idle connection ended: gone is told. */
static int conn_gone(struct crowd_conn *c, const char *code, const char *text)
{
    crowd_conn_close(c);
    if (c->gone != NULL)
        c->gone(c, code, text);
    return READ_STOP;
}

static int conn_fail(struct crowd_conn *c, const char *code, const char *text)
{
    return c->state == CONN_IDLE ? conn_gone(c, code, text) : conn_finish(c, code, text);
}

/* ErrorResponse: its SQLSTATE (C) and message (M) fields. */
static int on_error(struct crowd_conn *c, const uint8_t *p, size_t len)
{
    char code[CROWD_CODE_LEN] = "ERROR", text[CROWD_TEXT_LEN] = "";
    size_t i = 0;

    while (i < len && p[i] != 0) {
        uint8_t field = p[i++];
        const uint8_t *end = memchr(p + i, 0, len - i);
        size_t n = end != NULL ? (size_t)(end - (p + i)) : len - i;

        if (field == 'C')
            snprintf(code, sizeof(code), "%.*s", (int)n, (const char *)p + i);
        else if (field == 'M')
            snprintf(text, sizeof(text), "%.*s", (int)n, (const char *)p + i);
        i += n + 1;
    }
    return conn_fail(c, code, text);
}

/* SASLInitialResponse: the mechanism, then the client-first-message with its length. */
static void send_sasl_initial(struct crowd_conn *c, const char *first, size_t len)
{
    uint8_t body[sizeof(SCRAM_MECH) + 4 + 256];
    size_t n = sizeof(SCRAM_MECH);

    memcpy(body, SCRAM_MECH, n);
    put32(body + n, (uint32_t)len);
    memcpy(body + n + 4, first, len);
    send_msg(c, 'p', body, n + 4 + len);
}

/* Whether an AuthenticationSASL's list of mechanisms names SCRAM-SHA-256. */
static int offers_scram(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len && p[i] != 0) {
        const uint8_t *end = memchr(p + i, 0, len - i);
        size_t n = end != NULL ? (size_t)(end - (p + i)) : len - i;

        if (n == strlen(SCRAM_MECH) && memcmp(p + i, SCRAM_MECH, n) == 0)
            return 1;
        i += n + 1;
    }
    return 0;
}

/* The key exchange's client-first-message: "n,,n=,r=" and a nonce of our own. */
static int key_first(struct crowd_conn *c)
{
    uint8_t raw[SCRAM_NONCE_RAW_LEN];
    char msg[16 + SCRAM_NONCE_B64_LEN + 1] = "n,,n=,r=";

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return conn_finish(c, "SCRAM", "could not make a nonce");
    EVP_EncodeBlock((unsigned char *)msg + strlen(msg), raw, sizeof(raw));
    send_sasl_initial(c, msg, strlen(msg));
    return READ_ON;
}

/* AuthenticationSASL: the key exchange's first message, or the member's own exchange. */
static int on_sasl(struct crowd_conn *c, const uint8_t *p, size_t len)
{
    char first[128];
    size_t n = 0;

    if (!offers_scram(p, len))
        return conn_finish(c, "AUTH", "the server offers no SCRAM-SHA-256");
    if (c->kind == CROWD_KEY)
        return key_first(c);
    if (c->login->auth != CROWD_AUTH_SCRAM)
        return conn_finish(c, "AUTH", "SCRAM asked for after the key exchange found none");
    c->scram = malloc(sizeof(*c->scram));
    if (c->scram == NULL)
        return conn_finish(c, "ENOMEM", "out of memory");
    if (scram_client_init(c->scram, c->login->client_key, &c->login->verifier, NULL, 0) !=
            SCRAM_OK ||
        scram_client_first(c->scram, first, sizeof(first), &n) != SCRAM_OK)
        return conn_finish(c, "SCRAM", scram_client_errdetail(c->scram));
    send_sasl_initial(c, first, n);
    return READ_ON;
}

/* The key exchange's server-first-message: the salt and iterations, the one PBKDF2. */
static int key_derive(struct crowd_conn *c, const uint8_t *p, size_t len)
{
    uint8_t salt[SCRAM_MAX_SALT_LEN];
    size_t salt_len = 0;
    int iterations = 0;
    double t0 = crowd_now();

    if (scram_client_read_secret(p, len, salt, &salt_len, &iterations) != SCRAM_OK)
        return conn_finish(c, "SCRAM", "malformed server-first-message");
    if (scram_derive_keys(c->login->password, salt, salt_len, iterations, c->login->client_key,
                          &c->login->verifier) != SCRAM_OK)
        return conn_finish(c, "SCRAM", "the password cannot be used (ASCII only)");
    c->login->derive_ms = (crowd_now() - t0) * 1000.0;
    c->login->auth = CROWD_AUTH_SCRAM;
    return conn_finish(c, NULL, NULL);
}

/* AuthenticationSASLContinue and AuthenticationSASLFinal of a member's or probe's exchange. */
static int on_sasl_step(struct crowd_conn *c, uint32_t code, const uint8_t *p, size_t len)
{
    char final[256];
    size_t n = 0;

    if (c->kind == CROWD_KEY && code == AUTH_SASL_CONTINUE)
        return key_derive(c, p, len);
    if (c->scram == NULL)
        return conn_finish(c, "08P01", "a SCRAM message outside an exchange");
    if (code == AUTH_SASL_CONTINUE) {
        if (scram_client_handle_first(c->scram, p, len, final, sizeof(final), &n) != SCRAM_OK)
            return conn_finish(c, "SCRAM", scram_client_errdetail(c->scram));
        send_msg(c, 'p', final, n);
        return READ_ON;
    }
    if (scram_client_handle_final(c->scram, p, len) != SCRAM_OK)
        return conn_finish(c, "SCRAM", scram_client_errdetail(c->scram));
    drop_scram(c);
    return READ_ON;
}

static int on_auth(struct crowd_conn *c, const uint8_t *p, size_t len)
{
    uint32_t code;

    if (len < 4 || c->state != CONN_LOGIN)
        return conn_fail(c, "08P01", "unexpected authentication message");
    code = get32(p);
    switch (code) {
    case AUTH_OK:
        if (c->kind == CROWD_KEY && c->login->auth == CROWD_AUTH_UNKNOWN)
            c->login->auth = CROWD_AUTH_NONE;
        return c->kind == CROWD_KEY ? conn_finish(c, NULL, NULL) : READ_ON;
    case AUTH_CLEARTEXT:
        if (c->kind == CROWD_KEY) {
            c->login->auth = CROWD_AUTH_PASSWORD;
            return conn_finish(c, NULL, NULL);
        }
        send_msg(c, 'p', c->login->password, strlen(c->login->password) + 1);
        return READ_ON;
    case AUTH_SASL:
        return on_sasl(c, p + 4, len - 4);
    case AUTH_SASL_CONTINUE:
    case AUTH_SASL_FINAL:
        return on_sasl_step(c, code, p + 4, len - 4);
    case AUTH_MD5:
        return conn_finish(c, "AUTH", "md5 authentication is not supported");
    default:
        return conn_finish(c, "AUTH", "an authentication method not supported");
    }
}

/* ReadyForQuery: after the login, its query goes (`SELECT 1`); after it, the login is done. */
static int on_ready(struct crowd_conn *c)
{
    if (c->state == CONN_LOGIN) {
        c->state = CONN_QUERY;
        c->logged_in = crowd_now();
        send_msg(c, 'Q', c->login->query, strlen(c->login->query) + 1);
        return READ_ON;
    }
    if (c->state == CONN_QUERY)
        return c->rows == 1 ? conn_finish(c, NULL, NULL)
                            : conn_finish(c, "ROWS", "the query did not return one row");
    return READ_ON;
}

static int on_message(struct crowd_conn *c, uint8_t type, const uint8_t *p, size_t len)
{
    if (c->answered == 0)
        c->answered = crowd_now();
    switch (type) {
    case 'R':
        return on_auth(c, p, len);
    case 'E':
        return on_error(c, p, len);
    case 'Z':
        return on_ready(c);
    case 'D':
        c->rows++;
        return READ_ON;
    default: /* ParameterStatus, BackendKeyData, notices, RowDescription, CommandComplete */
        return READ_ON;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct crowd_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        uint8_t head[5];
        size_t have = evbuffer_get_length(in);
        uint32_t len;
        uint8_t *msg;
        int r;

        if (have < sizeof(head))
            return;
        evbuffer_copyout(in, head, sizeof(head));
        len = get32(head + 1);
        if (len < 4 || len > CROWD_MSG_MAX) {
            conn_fail(c, "08P01", "a server message of impossible length");
            return;
        }
        if (have < 1 + (size_t)len)
            return;
        msg = evbuffer_pullup(in, 1 + (ev_ssize_t)len);
        r = on_message(c, head[0], msg + 5, len - 4);
        if (r == READ_STOP)
            return;
        evbuffer_drain(in, 1 + (size_t)len);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct crowd_conn *c = arg;
    char name[16];

    (void)bev;
    if (what & BEV_EVENT_TIMEOUT)
        conn_fail(c, "TIMEOUT", "no answer within the login timeout");
    else if (what & BEV_EVENT_ERROR)
        conn_fail(c, crowd_errno_name(EVUTIL_SOCKET_ERROR(), name, sizeof(name)),
                  "the connection failed");
    else if (what & BEV_EVENT_EOF)
        conn_fail(c, "EOF", "the server closed the connection");
}

/* The startup message: protocol 3.0, user, database, application_name. */
static void send_startup(struct crowd_conn *c)
{
    char body[512];
    int n =
        snprintf(body + 4, sizeof(body) - 4, "user%c%s%cdatabase%c%s%capplication_name%ccrowd%c", 0,
                 c->login->user, 0, 0, c->login->database, 0, 0, 0);

    if (n < 0 || (size_t)n + 5 > sizeof(body))
        n = 0;
    put32((uint8_t *)body, 0x30000);
    body[4 + n] = 0;
    send_msg(c, 0, body, (size_t)n + 5);
}

static int open_socket(const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (src != NULL &&
        (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
         bind(fd, (const struct sockaddr *)src, sizeof(*src)) != 0)) {
        int err = errno;

        close(fd);
        return -err;
    }
    if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 && errno != EINPROGRESS) {
        int err = errno;

        close(fd);
        return -err;
    }
    return fd;
}

int crowd_conn_start(struct crowd_conn *c, struct event_base *base, const struct sockaddr_in *src)
{
    struct timeval tv;
    int fd;

    c->started = crowd_now();
    c->rows = 0;
    fd = open_socket(src, &c->login->server);
    if (fd < 0)
        return -fd;
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        return ENOMEM;
    }
    tv.tv_sec = (time_t)c->login->timeout_s;
    tv.tv_usec = (suseconds_t)((c->login->timeout_s - (double)tv.tv_sec) * 1e6);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_set_timeouts(c->bev, &tv, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = CONN_LOGIN;
    send_startup(c);
    return 0;
}

/* The key exchange's end: a flag for the loop, and why it failed. */
struct key_wait {
    int finished;
    char text[CROWD_TEXT_LEN];
};

static void key_done(struct crowd_conn *c, const char *code, const char *text)
{
    struct key_wait *w = c->owner;

    w->finished = 1;
    if (code != NULL)
        snprintf(w->text, sizeof(w->text), "%s: %s", code, text != NULL ? text : "");
}

int crowd_key_run(struct event_base *base, struct crowd_login *login, char *text, size_t cap)
{
    struct key_wait w = {0, ""};
    struct crowd_conn c = {.login = login, .kind = CROWD_KEY, .done = key_done, .owner = &w};
    char name[16];
    int err = crowd_conn_start(&c, base, NULL);

    if (err != 0) {
        snprintf(text, cap, "connect: %s", crowd_errno_name(err, name, sizeof(name)));
        return -1;
    }
    while (!w.finished && event_base_loop(base, EVLOOP_ONCE) == 0)
        ;
    crowd_conn_close(&c);
    snprintf(text, cap, "%s", w.text);
    return w.finished && w.text[0] == '\0' && login->auth != CROWD_AUTH_UNKNOWN ? 0 : -1;
}
