/*
 * ws.c — a byte stream over the server side of a WebSocket (ws.h).
 *
 * wslay's frame layer reads and writes frames through two callbacks that
 * end in the socket (sock.h).  Around it: which frames a client may send
 * and what they mean, the control frames owed to the client (a pong, a
 * close, our pings), and the one rule of writing: a frame, once begun,
 * is finished before anything else goes out.
 */
#include "protocol/ws.h"

#include "protocol/utf8.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/bio.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

/* The payload of one outgoing data frame at most: bigger writes become several frames. */
#define WS_OUT_FRAME_MAX (256 * 1024)
/* A control frame's payload at most (RFC 6455 section 5.5). */
#define WS_CONTROL_MAX 125
/* One TLS record and a frame header: what goes to SSL_write at once. */
#define WS_TLS_BLOCK (16 * 1024 + 16)

/* The control frames owed to the client, in the order they go out: close last. */
enum ws_slot { WS_SLOT_PONG, WS_SLOT_PING, WS_SLOT_CLOSE, WS_SLOTS };

struct ws_control {
    bool queued;
    uint8_t opcode;
    uint8_t len;
    uint8_t payload[WS_CONTROL_MAX];
};

/*
 * What control frames and a failure need (some 700 bytes): made as a
 * control frame comes or is owed, or the stream fails; let go with the
 * frame state once nothing is owed (ws_rest), so an idle client holds none.
 */
struct ws_control_part {
    uint8_t in[WS_CONTROL_MAX]; /* the payload of the control frame being read */
    size_t in_len;
    struct ws_control slot[WS_SLOTS];
    char error[160];
};

struct ws_conn {
    struct sock lower; /* the socket, and its TLS for wss */
    wslay_frame_context_ptr frames;
    uint64_t max_frame;
    ssize_t lower_status; /* the socket's last refusal (a stream_status), 0 when none */
    uint8_t read_want;    /* what the last refused read waits for */
    bool failed;

    /* reading */
    bool in_frame;       /* a frame's payload is still coming */
    uint8_t in_opcode;   /* that frame's opcode */
    bool in_message;     /* a fragmented binary message goes on */
    bool maybe_buffered; /* a read stopped before wslay said it needed the socket */
    bool got_close;      /* the client's close frame came: the stream has ended */
    bool pong_seen;
    uint64_t in_left;       /* its payload bytes still to come */
    const uint8_t *held;    /* payload wslay returned that the caller had no room for */
    size_t held_len;        /* (it stays valid until wslay is called again) */
    uint64_t fed, consumed; /* bytes handed to wslay, and those its frames took so far */

    /* writing (ordered by size: an idle WebSocket client keeps this struct) */
    bool out_busy; /* a frame is partly sent: nothing else may go first */
    bool close_sent;
    uint8_t out_opcode;         /* the frame being sent */
    uint8_t stash_len;          /* of stash */
    int out_slot;               /* the control frame being sent, or -1 for data */
    uint64_t out_len, out_left; /* its payload, and what of it is still to go */
    uint8_t stash[16];          /* header bytes wslay counts as sent, still to go out */

    struct ws_control_part *ctl; /* NULL: none owed, nothing read, no failure */
};

/* The control part, made when missing; NULL when out of memory (the stream failed then). */
static struct ws_control_part *ws_ctl(struct ws_conn *ws)
{
    if (ws->ctl == NULL && (ws->ctl = calloc(1, sizeof(*ws->ctl))) == NULL)
        ws->failed = true;
    return ws->ctl;
}

static void ws_set_error(struct ws_conn *ws, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Why the stream failed, for ws_error (out of memory, said so without a control part). */
static void ws_set_error(struct ws_conn *ws, const char *fmt, ...)
{
    ws->failed = true;
    if (ws_ctl(ws) == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->ctl->error, sizeof(ws->ctl->error), fmt, ap);
    va_end(ap);
}

static bool ws_slot_queued(const struct ws_conn *ws, enum ws_slot slot)
{
    return ws->ctl != NULL && ws->ctl->slot[slot].queued;
}

/* ---- wslay's callbacks: the socket below ---- */

/*
 * wslay's recv callback: reads the socket below; a failure or EAGAIN is kept in
 * lower_status for the caller, wslay only sees -1.
 */
static ssize_t ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user_data)
{
    struct ws_conn *ws = user_data;
    int more;
    (void)flags;
    ssize_t n = sock_read(&ws->lower, buf, len, &more);
    if (n > 0) {
        ws->fed += (uint64_t)n;
        return n;
    }
    ws->lower_status = n;
    ws->read_want = ws->lower.read_want;
    return -1;
}

/* The stash, then data: with one system call, or one TLS record. */
static ssize_t ws_lower_write(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    if (ws->lower.ssl == NULL) {
        struct iovec iov[2] = {{ws->stash, ws->stash_len}, {(void *)data, len}};
        bool stash = ws->stash_len > 0;
        return sock_sendv(ws->lower.fd, stash ? iov : iov + 1, stash ? 2 : 1,
                          &ws->lower.write_want);
    }
    /* A retry after WANT_WRITE rebuilds the same block: OpenSSL needs the same bytes again. */
    uint8_t block[WS_TLS_BLOCK];
    size_t room = sizeof(block) - ws->stash_len, k = len < room ? len : room;
    memcpy(block, ws->stash, ws->stash_len);
    memcpy(block + ws->stash_len, data, k);
    return sock_write(&ws->lower, block, ws->stash_len + k);
}

/*
 * wslay sends a header (flagged MORE when payload follows) and then the
 * payload.  The header is held back and goes out with the payload, so a
 * frame is one write, not two.  What wslay counts as sent is only ever
 * payload that left with the whole stash before it.
 */
static ssize_t ws_send_cb(const uint8_t *data, size_t len, int flags, void *user_data)
{
    struct ws_conn *ws = user_data;
    if ((flags & WSLAY_MSG_MORE) && ws->stash_len == 0 && len <= sizeof(ws->stash)) {
        memcpy(ws->stash, data, len);
        ws->stash_len = (uint8_t)len;
        return (ssize_t)len;
    }
    ssize_t w = ws_lower_write(ws, data, len);
    if (w < 0) {
        ws->lower_status = w;
        return -1;
    }
    if ((size_t)w < ws->stash_len) {
        memmove(ws->stash, ws->stash + w, ws->stash_len - (size_t)w);
        ws->stash_len = (uint8_t)(ws->stash_len - (size_t)w);
        ws->lower_status = STREAM_AGAIN;
        return -1;
    }
    w -= (ssize_t)ws->stash_len;
    ws->stash_len = 0;
    if (w == 0) {
        ws->lower_status = STREAM_AGAIN;
        return -1;
    }
    return w;
}

/* Only a client masks; pgnear's frames never are, so this is never asked for. */
static int ws_genmask_cb(uint8_t *buf, size_t len, void *user_data)
{
    (void)user_data;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static const struct wslay_frame_callbacks ws_callbacks = {ws_send_cb, ws_recv_cb, ws_genmask_cb};

/*
 * wslay's frame state (some 4 KiB, its input block): made with the
 * connection, let go by ws_rest while nothing is under way, made again as
 * the next frame is read or sent.  0, or -1 when out of memory.
 */
static int ws_frames(struct ws_conn *ws)
{
    if (ws->frames != NULL)
        return 0;
    return wslay_frame_context_init(&ws->frames, &ws_callbacks, ws) == 0 ? 0 : -1;
}

struct ws_conn *ws_new(struct sock *below, uint64_t max_frame)
{
    struct ws_conn *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    if (ws_frames(ws) != 0) {
        free(ws);
        return NULL;
    }
    ws->lower = *below;
    ws->max_frame = max_frame;
    ws->read_want = STREAM_WANT_READ;
    ws->out_slot = -1;
    below->fd = -1;
    below->ssl = NULL;
    return ws;
}

SSL *ws_tls(const struct ws_conn *ws)
{
    return ws->lower.ssl;
}

/* ---- writing ---- */

/* A frame starts: until all of its payload has gone, no other frame may be sent (out_busy). */
static void ws_out_begin(struct ws_conn *ws, uint8_t opcode, int slot, uint64_t len)
{
    ws->out_busy = true;
    ws->out_slot = slot;
    ws->out_opcode = opcode;
    ws->out_len = ws->out_left = len;
}

/* Payload of the frame being sent: the count that went, or a stream_status. */
static ssize_t ws_out_send(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    struct wslay_frame_iocb f = {.fin = 1,
                                 .opcode = ws->out_opcode,
                                 .payload_length = ws->out_len,
                                 .data = data,
                                 .data_length = len};
    ws->lower_status = 0;
    if (ws_frames(ws) != 0) {
        ws_set_error(ws, "out of memory");
        return STREAM_ERROR;
    }
    ssize_t r = wslay_frame_send(ws->frames, &f);
    if (r == WSLAY_ERR_WANT_WRITE) {
        if (ws->lower_status == STREAM_AGAIN || ws->lower_status == 0)
            return STREAM_AGAIN;
        ws->failed = true;
        return STREAM_ERROR;
    }
    if (r < 0) {
        ws_set_error(ws, "could not build a WebSocket frame");
        return STREAM_ERROR;
    }
    ws->out_left -= (uint64_t)r;
    if (ws->out_left == 0)
        ws->out_busy = false;
    return r;
}

/*
 * The control frame to send next, in slot order (pong, ping, close); -1 when
 * none, or once the close has gone.
 */
static int ws_next_slot(const struct ws_conn *ws)
{
    if (ws->close_sent)
        return -1;
    for (int i = 0; i < WS_SLOTS; i++)
        if (ws_slot_queued(ws, (enum ws_slot)i))
            return i;
    return -1;
}

int ws_flush(struct ws_conn *ws)
{
    for (;;) {
        if (ws->out_busy && ws->out_slot < 0)
            return 0; /* a data frame first: its bytes are the caller's, its next write ends it */
        if (!ws->out_busy) {
            int slot = ws_next_slot(ws);
            if (slot < 0)
                return 0;
            ws_out_begin(ws, ws->ctl->slot[slot].opcode, slot, ws->ctl->slot[slot].len);
        }
        struct ws_control *c = &ws->ctl->slot[ws->out_slot];
        ssize_t r = ws_out_send(ws, c->payload + (c->len - ws->out_left), (size_t)ws->out_left);
        if (r < 0)
            return (int)r;
        if (!ws->out_busy) {
            c->queued = false;
            ws->close_sent = c->opcode == WSLAY_CONNECTION_CLOSE;
        }
    }
}

bool ws_has_output(const struct ws_conn *ws)
{
    return (ws->out_busy && ws->out_slot >= 0) || ws_next_slot(ws) >= 0;
}

ssize_t ws_write(struct ws_conn *ws, const void *p, size_t n)
{
    const uint8_t *data = p;
    size_t taken = 0;
    if (ws->failed || ws->close_sent || ws_slot_queued(ws, WS_SLOT_CLOSE))
        return STREAM_ERROR;
    while (taken < n) {
        if (!ws->out_busy || ws->out_slot >= 0) {
            int rc = ws_flush(ws);
            if (rc != 0)
                return taken > 0 ? (ssize_t)taken : rc;
            if (!ws->out_busy) {
                size_t len = n - taken < WS_OUT_FRAME_MAX ? n - taken : WS_OUT_FRAME_MAX;
                ws_out_begin(ws, WSLAY_BINARY_FRAME, -1, len);
            }
        }
        size_t len = n - taken < ws->out_left ? n - taken : (size_t)ws->out_left;
        ssize_t r = ws_out_send(ws, data + taken, len);
        if (r < 0)
            return taken > 0 ? (ssize_t)taken : r;
        taken += (size_t)r;
        if ((size_t)r < len)
            break; /* the socket is full */
    }
    return (ssize_t)taken;
}

/*
 * Queues a control frame in its slot, a newer one replacing one not yet
 * started; the payload is cut to a control frame's limit.
 */
static void ws_queue(struct ws_conn *ws, enum ws_slot slot, uint8_t opcode, const uint8_t *p,
                     size_t len)
{
    if (ws->out_busy && ws->out_slot == (int)slot)
        return; /* being sent: a pong for an older ping does as well (RFC 6455 5.5.3) */
    if (ws_ctl(ws) == NULL)
        return; /* out of memory: the stream failed */
    struct ws_control *c = &ws->ctl->slot[slot];
    c->queued = true;
    c->opcode = opcode;
    c->len = (uint8_t)(len < WS_CONTROL_MAX ? len : WS_CONTROL_MAX);
    memcpy(c->payload, p, c->len);
}

void ws_close(struct ws_conn *ws, uint16_t code, const char *reason)
{
    uint8_t body[WS_CONTROL_MAX];
    size_t rlen = reason ? strlen(reason) : 0;
    if (ws->close_sent || ws_slot_queued(ws, WS_SLOT_CLOSE))
        return;
    if (rlen > sizeof(body) - 2)
        rlen = sizeof(body) - 2;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)(code & 0xff);
    if (rlen > 0)
        memcpy(body + 2, reason, rlen);
    ws_queue(ws, WS_SLOT_CLOSE, WSLAY_CONNECTION_CLOSE, body, 2 + rlen);
    ws_flush(ws);
}

int ws_ping(struct ws_conn *ws)
{
    if (ws->failed || ws->close_sent)
        return -1;
    ws_queue(ws, WS_SLOT_PING, WSLAY_PING, (const uint8_t *)"pgnear", 6);
    return ws_flush(ws) == STREAM_ERROR ? -1 : 0;
}

/* A protocol violation: the close frame saying why goes out, the stream fails. */
static ssize_t ws_fail(struct ws_conn *ws, uint16_t code, const char *fmt, ...)
{
    if (ws_ctl(ws) == NULL)
        return STREAM_ERROR; /* out of memory: no close frame can be owed */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->ctl->error, sizeof(ws->ctl->error), fmt, ap);
    va_end(ap);
    ws_close(ws, code, ws->ctl->error);
    ws->failed = true;
    return STREAM_ERROR;
}

/* ---- reading ---- */

/* Control opcodes (close, ping, pong) are 8 and above (RFC 6455 5.5). */
static bool ws_is_control(uint8_t opcode)
{
    return opcode >= 8;
}

/* The first chunk of a frame: is it one a client may send now? */
static ssize_t ws_frame_start(struct ws_conn *ws, const struct wslay_frame_iocb *f)
{
    if (f->rsv != 0)
        return ws_fail(ws, WS_CLOSE_PROTOCOL, "WebSocket frame with reserved bits set");
    if (!f->mask)
        return ws_fail(ws, WS_CLOSE_PROTOCOL, "unmasked WebSocket frame from the client");
    switch (f->opcode) {
    case WSLAY_TEXT_FRAME:
        return ws_fail(ws, WS_CLOSE_UNSUPPORTED,
                       "WebSocket text frame: PostgreSQL travels in binary frames");
    case WSLAY_BINARY_FRAME:
        if (ws->in_message)
            return ws_fail(ws, WS_CLOSE_PROTOCOL, "WebSocket message begun inside another");
        break;
    case WSLAY_CONTINUATION_FRAME:
        if (!ws->in_message)
            return ws_fail(ws, WS_CLOSE_PROTOCOL, "WebSocket continuation frame outside a message");
        break;
    case WSLAY_PING:
    case WSLAY_PONG:
    case WSLAY_CONNECTION_CLOSE:
        if (ws_ctl(ws) == NULL)
            return STREAM_ERROR; /* out of memory: the stream failed */
        ws->ctl->in_len = 0;
        break;
    default:
        return ws_fail(ws, WS_CLOSE_PROTOCOL, "WebSocket frame with unknown opcode %u",
                       (unsigned)f->opcode);
    }
    if (f->payload_length > ws->max_frame)
        return ws_fail(ws, WS_CLOSE_TOO_BIG,
                       "WebSocket frame of %llu bytes is longer than websocket_max_frame",
                       (unsigned long long)f->payload_length);
    if (!ws_is_control(f->opcode))
        ws->in_message = !f->fin;
    ws->in_frame = true;
    ws->in_opcode = f->opcode;
    ws->in_left = f->payload_length;
    return 0;
}

/*
 * Codes a peer may send in a close frame (RFC 6455 7.4, and the IANA
 * registry's 1012-1014): never 1004-1006 or 1015, which only name what
 * happened locally.
 */
static bool ws_close_code_valid(uint16_t code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

/* The client closed: answer with its code (RFC 6455 5.5.1); the stream ends. */
static ssize_t ws_close_received(struct ws_conn *ws)
{
    uint16_t code = WS_CLOSE_NORMAL;
    const struct ws_control_part *ctl = ws->ctl; /* made as the frame began */
    if (ctl->in_len == 1)
        return ws_fail(ws, WS_CLOSE_PROTOCOL, "WebSocket close frame of one byte");
    if (ctl->in_len >= 2)
        code = (uint16_t)(ctl->in[0] << 8 | ctl->in[1]);
    if (!ws_close_code_valid(code))
        return ws_fail(ws, WS_CLOSE_PROTOCOL, "WebSocket close frame with code %u", (unsigned)code);
    if (ctl->in_len > 2 && utf8_invalid_at(ctl->in + 2, ctl->in_len - 2) != ctl->in_len - 2)
        return ws_fail(ws, WS_CLOSE_BAD_DATA, "WebSocket close reason that is not UTF-8");
    ws->got_close = true;
    ws_close(ws, code, NULL);
    return STREAM_EOF;
}

/* A whole control frame arrived. */
static ssize_t ws_control_done(struct ws_conn *ws)
{
    switch (ws->in_opcode) {
    case WSLAY_PING:
        ws_queue(ws, WS_SLOT_PONG, WSLAY_PONG, ws->ctl->in, ws->ctl->in_len);
        return ws_flush(ws) == STREAM_ERROR ? STREAM_ERROR : 0;
    case WSLAY_PONG:
        ws->pong_seen = true;
        return 0;
    default:
        return ws_close_received(ws);
    }
}

/* The bytes of a frame's header (wslay refuses lengths not in their shortest form). */
static uint64_t ws_header_len(const struct wslay_frame_iocb *f)
{
    uint64_t n = f->payload_length < 126 ? 2 : f->payload_length < 65536 ? 4 : 10;
    return n + (f->mask ? 4 : 0);
}

/* A chunk of a frame from wslay: payload is held for the caller, control bytes collected. */
static ssize_t ws_take(struct ws_conn *ws, const struct wslay_frame_iocb *f)
{
    if (!ws->in_frame) {
        ssize_t rc = ws_frame_start(ws, f);
        if (rc < 0)
            return rc;
        ws->consumed += ws_header_len(f);
    }
    ws->consumed += f->data_length;
    ws->in_left -= f->data_length;
    if (!ws_is_control(ws->in_opcode)) {
        ws->held = f->data;
        ws->held_len = f->data_length;
    } else {
        memcpy(ws->ctl->in + ws->ctl->in_len, f->data, f->data_length);
        ws->ctl->in_len += f->data_length;
    }
    if (ws->in_left > 0)
        return 0;
    ws->in_frame = false;
    return ws_is_control(ws->in_opcode) ? ws_control_done(ws) : 0;
}

/* wslay needs the socket: what the socket said, for a read that got nothing. */
static ssize_t ws_read_stopped(struct ws_conn *ws)
{
    ws->maybe_buffered = false;
    if (ws->lower_status == STREAM_EOF || ws->lower_status == STREAM_ERROR)
        return ws->lower_status;
    return STREAM_AGAIN;
}

ssize_t ws_read(struct ws_conn *ws, void *p, size_t max, int *more)
{
    uint8_t *out = p;
    size_t got = 0;
    *more = 0;
    if (ws->failed)
        return STREAM_ERROR;
    if (ws->got_close)
        return STREAM_EOF;
    while (got < max) {
        if (ws->held_len > 0) {
            size_t k = ws->held_len < max - got ? ws->held_len : max - got;
            memcpy(out + got, ws->held, k);
            ws->held += k;
            ws->held_len -= k;
            got += k;
            continue;
        }
        if (got > 0 && ws->fed == ws->consumed) {
            /* wslay holds nothing more: asking it would only read the socket to EAGAIN. */
            ws->maybe_buffered = false;
            *more = sock_pending(&ws->lower);
            return (ssize_t)got;
        }
        if (ws_frames(ws) != 0) {
            ws_set_error(ws, "out of memory");
            return got > 0 ? (ssize_t)got : STREAM_ERROR;
        }
        struct wslay_frame_iocb f;
        memset(&f, 0, sizeof(f));
        ws->lower_status = 0;
        ssize_t r = wslay_frame_recv(ws->frames, &f);
        if (r == WSLAY_ERR_WANT_READ) {
            ssize_t st = ws_read_stopped(ws);
            return got > 0 ? (ssize_t)got : st;
        }
        if (r < 0)
            return ws_fail(ws, WS_CLOSE_PROTOCOL, "malformed WebSocket frame");
        ssize_t rc = ws_take(ws, &f);
        if (rc < 0)
            return rc == STREAM_EOF && got > 0 ? (ssize_t)got : rc;
    }
    ws->maybe_buffered = true;
    *more = 1;
    return (ssize_t)got;
}

bool ws_rest(struct ws_conn *ws)
{
    /* wslay holds nothing: no byte fed that a frame has not taken, no frame half read or sent. */
    if (ws->in_frame || ws->held_len > 0 || ws->maybe_buffered || ws->fed != ws->consumed ||
        ws->out_busy || ws->stash_len > 0 || ws_has_output(ws))
        return false;
    if (ws->frames != NULL)
        wslay_frame_context_free(ws->frames);
    ws->frames = NULL;
    if (!ws->failed) { /* a failure's text stays for ws_error */
        free(ws->ctl);
        ws->ctl = NULL;
    }
    return true;
}

bool ws_has_pending(const struct ws_conn *ws)
{
    return ws->held_len > 0 || ws->maybe_buffered || sock_pending(&ws->lower);
}

uint8_t ws_read_want(const struct ws_conn *ws)
{
    return ws->read_want;
}

/* What the socket below waits for before the next write can go on (TLS may need a read). */
uint8_t ws_write_want(const struct ws_conn *ws)
{
    return ws->lower.write_want;
}

const char *ws_error(const struct ws_conn *ws)
{
    if (ws->ctl != NULL)
        return ws->ctl->error;
    return ws->failed ? "out of memory" : "";
}

bool ws_pong_seen(struct ws_conn *ws)
{
    bool seen = ws->pong_seen;
    ws->pong_seen = false;
    return seen;
}

int ws_free(struct ws_conn *ws)
{
    if (!ws->failed && !ws->got_close)
        ws_close(ws, WS_CLOSE_NORMAL, NULL);
    if (ws->frames != NULL)
        wslay_frame_context_free(ws->frames);
    free(ws->ctl);
    int fd = sock_take_fd(&ws->lower);
    free(ws);
    return fd;
}

/* ---- TLS inside the WebSocket: a BIO that reads and writes the stream ---- */

/*
 * The method table is made once and never changes after (OpenSSL wants a
 * BIO_METHOD that outlives every BIO using it).
 */
static BIO_METHOD *ws_bio_method;
static pthread_once_t ws_bio_once = PTHREAD_ONCE_INIT;

/* The BIO's write: TLS records go into WebSocket frames; EAGAIN becomes OpenSSL's retry. */
static int ws_bio_write(BIO *b, const char *buf, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = ws_write(BIO_get_data(b), buf, (size_t)len);
    if (n > 0)
        return (int)n;
    if (n == 0 || n == STREAM_AGAIN) {
        BIO_set_retry_write(b);
        return -1;
    }
    errno = EPIPE;
    return -1;
}

/*
 * The BIO's read: TLS records come out of WebSocket frames; the close of the
 * WebSocket reads as the peer's end.
 */
static int ws_bio_read(BIO *b, char *buf, int len)
{
    int more;
    BIO_clear_retry_flags(b);
    ssize_t n = ws_read(BIO_get_data(b), buf, (size_t)len, &more);
    if (n > 0)
        return (int)n;
    if (n == STREAM_AGAIN) {
        BIO_set_retry_read(b);
        return -1;
    }
    errno = n == STREAM_EOF ? 0 : EPROTO; /* sock_tls_status reads errno 0 as the peer hanging up */
    return n == STREAM_EOF ? 0 : -1;
}

/* Only flush is answered (nothing is buffered here); other controls are not supported. */
static long ws_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* A BIO of this method is ready at once; its ws is set after. */
static int ws_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* Makes the BIO method once (ws_bio_once); on failure it stays NULL and ws_bio_new fails. */
static void ws_bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pgnear WebSocket");
    if (m == NULL)
        return;
    if (BIO_meth_set_write(m, ws_bio_write) != 1 || BIO_meth_set_read(m, ws_bio_read) != 1 ||
        BIO_meth_set_ctrl(m, ws_bio_ctrl) != 1 || BIO_meth_set_create(m, ws_bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    ws_bio_method = m;
}

BIO *ws_bio_new(struct ws_conn *ws)
{
    pthread_once(&ws_bio_once, ws_bio_method_make);
    if (ws_bio_method == NULL)
        return NULL;
    BIO *b = BIO_new(ws_bio_method);
    if (b != NULL)
        BIO_set_data(b, ws);
    return b;
}
