/*
 * test_prepared.c
 *    Unit tests for protocol/prepared.h (cmocka, TAP output): prepared
 *    statements kept working under transaction pooling.
 *
 *    A small model of a PostgreSQL backend answers the extended and
 *    simple protocol in order: its named and unnamed statements, the
 *    unnamed portal, an implicit transaction per batch that an error rolls
 *    back, skipping to Sync after an error, ErrorResponses as PostgreSQL
 *    words them.  Texts mean: "SELECT n" one row n; "BAD" fails at Parse;
 *    "ERR" fails at Execute; "INSERT cK" adds a row to client K's table,
 *    "COUNT cK" reads its count; "DEALLOCATE ALL", "DISCARD ALL"; "SELECT
 *    gone" fails at Parse and Bind once the table is dropped (DDL); "SELECT
 *    shape" is planned for the result type of its time, and a statement of
 *    it fails at Bind and Describe with 0A000 once the type changed.
 *
 *    Each test is a world: clients, each with a direct connection to a
 *    backend of its own (what PostgreSQL itself answers) and a prep_client
 *    that runs on the world's server connections (prep_server, a backend
 *    each, sharing one database), given to clients between transactions
 *    as a transaction pool does.  What every client receives through
 *    pgnear must be byte for byte what its direct connection answered.
 *    The fixed cases are the known bug classes; then random scripts with
 *    random interleavings of sends, reads and answers, each client message
 *    presented one of the relay's three ways at random (copied, moved from
 *    an input, or offered to prep_client_take_whole and moved as it came),
 *    each server answer one of its three.
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
#include "protocol/prep_int.h"
#include "protocol/prepared.h"
#include "protocol/tx_track.h"

/* ---- the backend model ---- */

#define MAX_STMTS 1024
#define NCLIENTS  3

struct db {
    int rows[NCLIENTS];
    bool dropped; /* "SELECT gone" no longer plans */
    int shape;    /* the result type of "SELECT shape" now */
};

struct bstmt {
    char *name, *text;
    uint16_t ntypes;
    int shape; /* the result type when it was planned */
};

struct backend {
    struct db *db;
    struct bstmt named[MAX_STMTS];
    int nnamed;
    char *unnamed;
    uint16_t unnamed_types;
    int unnamed_shape;
    char *portal; /* the unnamed portal's statement text */
    int pending[NCLIENTS];
    bool skipping;
    struct evbuffer *out;
};

static void put(struct evbuffer *out, uint8_t type, const void *body, size_t len)
{
    uint8_t h[5] = {type};
    pkt_store_be32(h + 1, (uint32_t)(len + 4));
    evbuffer_add(out, h, 5);
    evbuffer_add(out, body, len);
}

/* An ErrorResponse as pgnear builds its own: S, V, C, M, and R when routine is not NULL. */
static void be_error_at(struct backend *b, const char *code, const char *msg, const char *routine)
{
    char body[600];
    int n = snprintf(body, sizeof(body), "SERROR%cVERROR%cC%s%cM%s%c", 0, 0, code, 0, msg, 0);
    if (routine != NULL)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "R%s%c", routine, 0);
    body[n] = 0;
    put(b->out, 'E', body, (size_t)n + 1);
    b->skipping = true;
    memset(b->pending, 0, sizeof(b->pending));
}

__attribute__((format(printf, 3, 4))) static void be_error(struct backend *b, const char *code,
                                                           const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    be_error_at(b, code, msg, NULL);
}

/* A statement planned for another result type than its text has now: PostgreSQL's 0A000. */
static bool be_stale(struct backend *b, const char *text, int shape)
{
    if (strstr(text, "shape") == NULL || shape == b->db->shape)
        return false;
    be_error_at(b, "0A000", "cached plan must not change result type", "RevalidateCachedQuery");
    return true;
}

static struct bstmt *be_find(struct backend *b, const char *name)
{
    for (int i = 0; i < b->nnamed; i++)
        if (strcmp(b->named[i].name, name) == 0)
            return &b->named[i];
    return NULL;
}

static void be_forget_named(struct backend *b)
{
    for (int i = 0; i < b->nnamed; i++) {
        free(b->named[i].name);
        free(b->named[i].text);
    }
    b->nnamed = 0;
}

static void be_close_named(struct backend *b, const char *name)
{
    struct bstmt *st = be_find(b, name);
    if (st == NULL)
        return;
    free(st->name);
    free(st->text);
    *st = b->named[--b->nnamed];
}

static int client_of(const char *text)
{
    const char *c = strstr(text, " c");
    return c != NULL ? (c[2] - '0') % NCLIENTS : 0;
}

static void be_row(struct backend *b, const char *value)
{
    uint8_t body[64];
    size_t n = strlen(value);
    body[0] = 0;
    body[1] = 1;
    pkt_store_be32(body + 2, (uint32_t)n);
    memcpy(body + 6, value, n);
    put(b->out, 'D', body, 6 + n);
}

static void be_tag(struct backend *b, const char *tag)
{
    put(b->out, 'C', tag, strlen(tag) + 1);
}

/* Runs a statement's text (Execute, or a Query's). */
static void be_run(struct backend *b, const char *text)
{
    char v[32];
    if (strcmp(text, "ERR") == 0) {
        be_error(b, "22012", "division by %s", "zero");
    } else if (strncmp(text, "INSERT", 6) == 0) {
        b->pending[client_of(text)]++;
        be_tag(b, "INSERT 0 1");
    } else if (strncmp(text, "COUNT", 5) == 0) {
        int k = client_of(text);
        snprintf(v, sizeof(v), "%d", b->db->rows[k] + b->pending[k]);
        be_row(b, v);
        be_tag(b, "SELECT 1");
    } else if (strcmp(text, "DEALLOCATE ALL") == 0 || strcmp(text, "DISCARD ALL") == 0) {
        be_forget_named(b);
        be_tag(b, text);
    } else {
        be_row(b, strncmp(text, "SELECT ", 7) == 0 ? text + 7 : text);
        be_tag(b, "SELECT 1");
    }
}

static void be_commit(struct backend *b)
{
    for (int k = 0; k < NCLIENTS; k++)
        b->db->rows[k] += b->pending[k];
    memset(b->pending, 0, sizeof(b->pending));
}

static bool be_plans(struct backend *b, const char *text)
{
    if (strncmp(text, "BAD", 3) == 0) {
        be_error(b, "42601", "syntax error at or near \"%s\"", "BAD");
        return false;
    }
    if (b->db->dropped && strstr(text, "gone") != NULL) {
        be_error(b, "42P01", "relation \"%s\" does not exist", "gone");
        return false;
    }
    return true;
}

static void be_parse(struct backend *b, struct pktreader *r)
{
    const char *name = pkt_get_cstr(r), *text = pkt_get_cstr(r);
    uint16_t ntypes = pkt_get_u16(r);
    assert_false(r->failed);
    if (name[0] == '\0') { /* the unnamed statement goes first, whatever follows */
        free(b->unnamed);
        b->unnamed = NULL;
    }
    if (!be_plans(b, text))
        return;
    if (name[0] == '\0') {
        b->unnamed = strdup(text);
        b->unnamed_types = ntypes;
        b->unnamed_shape = b->db->shape;
    } else if (be_find(b, name) != NULL) {
        be_error(b, "42P05", "prepared statement \"%s\" already exists", name);
        return;
    } else {
        assert_true(b->nnamed < MAX_STMTS);
        b->named[b->nnamed++] = (struct bstmt){strdup(name), strdup(text), ntypes, b->db->shape};
    }
    put(b->out, '1', NULL, 0);
}

/*
 * The statement of name, or NULL after the error (none such, or its plan
 * stale); types its parameter count.
 */
static const char *be_stmt(struct backend *b, const char *name, uint16_t *types)
{
    if (name[0] == '\0') {
        if (b->unnamed == NULL)
            be_error(b, "26000", "unnamed prepared statement does not exist");
        *types = b->unnamed_types;
        return b->unnamed != NULL && be_stale(b, b->unnamed, b->unnamed_shape) ? NULL : b->unnamed;
    }
    struct bstmt *st = be_find(b, name);
    if (st == NULL) {
        be_error(b, "26000", "prepared statement \"%s\" does not exist", name);
        return NULL;
    }
    *types = st->ntypes;
    return be_stale(b, st->text, st->shape) ? NULL : st->text;
}

static void be_bind(struct backend *b, struct pktreader *r)
{
    const char *portal = pkt_get_cstr(r), *name = pkt_get_cstr(r);
    uint16_t types;
    assert_false(r->failed);
    assert_string_equal(portal, "");
    const char *text = be_stmt(b, name, &types);
    if (text == NULL || !be_plans(b, text))
        return;
    free(b->portal);
    b->portal = strdup(text);
    put(b->out, '2', NULL, 0);
}

static void be_describe(struct backend *b, struct pktreader *r)
{
    uint8_t kind = pkt_get_u8(r);
    const char *name = pkt_get_cstr(r);
    uint16_t types;
    assert_false(r->failed);
    if (kind == 'S') {
        const char *text = be_stmt(b, name, &types);
        if (text == NULL)
            return;
        uint8_t body[2] = {(uint8_t)(types >> 8), (uint8_t)types}, oid[4] = {0, 0, 0, 23};
        struct evbuffer *t = evbuffer_new();
        evbuffer_add(t, body, 2);
        for (uint16_t i = 0; i < types; i++)
            evbuffer_add(t, oid, 4);
        put(b->out, 't', evbuffer_pullup(t, -1), evbuffer_get_length(t));
        evbuffer_free(t);
        if (strstr(text, "shape") != NULL) { /* one column "shape", its type the plan's */
            uint8_t row[2 + 6 + 18] = {0, 1, 's', 'h', 'a', 'p', 'e', 0};
            pkt_store_be32(row + 8 + 6, 23 + (uint32_t)b->db->shape);
            put(b->out, 'T', row, sizeof(row));
            return;
        }
    } else if (b->portal == NULL) {
        be_error(b, "34000", "portal \"%s\" does not exist", name);
        return;
    }
    put(b->out, 'n', NULL, 0);
}

static void be_close(struct backend *b, struct pktreader *r)
{
    uint8_t kind = pkt_get_u8(r);
    const char *name = pkt_get_cstr(r);
    assert_false(r->failed);
    if (kind == 'S' && name[0] == '\0') {
        free(b->unnamed);
        b->unnamed = NULL;
    } else if (kind == 'S') {
        be_close_named(b, name);
    } else {
        free(b->portal);
        b->portal = NULL;
    }
    put(b->out, '3', NULL, 0);
}

static void be_message(struct backend *b, uint8_t type, const uint8_t *body, size_t len)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    if (b->skipping && type != 'S')
        return;
    switch (type) {
    case 'P':
        be_parse(b, &r);
        break;
    case 'B':
        be_bind(b, &r);
        break;
    case 'D':
        be_describe(b, &r);
        break;
    case 'C':
        be_close(b, &r);
        break;
    case 'E':
        if (b->portal == NULL)
            be_error(b, "34000", "portal \"%s\" does not exist", "");
        else
            be_run(b, b->portal);
        break;
    case 'S':
        if (!b->skipping)
            be_commit(b);
        b->skipping = false;
        free(b->portal);
        b->portal = NULL;
        put(b->out, 'Z', "I", 1);
        break;
    case 'Q':
        free(b->unnamed);
        b->unnamed = NULL;
        be_run(b, (const char *)body);
        if (!b->skipping)
            be_commit(b);
        b->skipping = false;
        put(b->out, 'Z', "I", 1);
        break;
    case 'H':
        break;
    default:
        fail_msg("backend: message '%c'", type);
    }
}

static void be_init(struct backend *b, struct db *db)
{
    memset(b, 0, sizeof(*b));
    b->db = db;
    b->out = evbuffer_new();
}

static void be_free(struct backend *b)
{
    be_forget_named(b);
    free(b->unnamed);
    free(b->portal);
    evbuffer_free(b->out);
}

/* Takes one whole message off buf: 1, or 0 when none is there yet. */
static int take_msg(struct evbuffer *buf, uint8_t *type, uint8_t **body, size_t *len)
{
    size_t have = evbuffer_get_length(buf);
    if (have < 5)
        return 0;
    uint8_t h[5];
    evbuffer_copyout(buf, h, 5);
    uint32_t n = pkt_be32(h + 1);
    assert_true(n >= 4);
    if (have < 1 + (size_t)n)
        return 0;
    evbuffer_drain(buf, 5);
    *type = h[0];
    *len = n - 4;
    *body = malloc(*len + 1);
    evbuffer_remove(buf, *body, *len);
    (*body)[*len] = 0;
    return 1;
}

/* ---- the world: clients, their direct connections, pgnear, server connections ---- */

struct wmsg {
    uint8_t type;
    uint8_t *body;
    size_t len;
};

struct wclient {
    struct prep_client *pc;
    struct wmsg *script;
    size_t n, cap, sent;
    int server;            /* the server connection it runs on; -1: none */
    int want_server;       /* fixed tests: the one it must take; -1: any */
    struct evbuffer *got;  /* what pgnear gave it */
    struct backend direct; /* its own backend: what PostgreSQL answers */
    struct db direct_db;
    bool gone, waiting;
};

struct wserver {
    struct prep_server *ps;
    struct tx_track tx; /* told of every message as txn_prep.c tells it */
    struct backend be;
    struct evbuffer *in;
    int client;
};

struct world {
    struct prep_registry *reg;
    struct wclient c[NCLIENTS];
    struct wserver s[2];
    int nclients, nservers;
    struct db db;
    uint64_t rng;
    bool random_release;
    uint64_t passed_whole; /* answers moved on as the relay's runs move them */
    uint64_t taken_whole;  /* ... of them, followed by prep_server_take_whole */
    uint64_t client_taken; /* client messages moved on as they came (prep_client_take_whole) */
};

static void world_init(struct world *w, int nclients, int nservers, unsigned capacity)
{
    memset(w, 0, sizeof(*w));
    w->reg = prep_registry_new(7);
    assert_non_null(w->reg);
    w->nclients = nclients;
    w->nservers = nservers;
    for (int i = 0; i < nclients; i++) {
        struct wclient *c = &w->c[i];
        c->pc = prep_client_new(w->reg, 1);
        assert_non_null(c->pc);
        c->server = c->want_server = -1;
        c->got = evbuffer_new();
        be_init(&c->direct, &c->direct_db);
    }
    for (int j = 0; j < nservers; j++) {
        tx_track_init(&w->s[j].tx, 'I');
        w->s[j].ps = prep_server_new(w->reg, capacity, &w->s[j].tx);
        assert_non_null(w->s[j].ps);
        be_init(&w->s[j].be, &w->db);
        w->s[j].in = evbuffer_new();
        w->s[j].client = -1;
    }
}

static void world_free(struct world *w)
{
    for (int i = 0; i < w->nclients; i++) {
        struct wclient *c = &w->c[i];
        if (!c->gone)
            prep_client_free(c->pc);
        for (size_t k = 0; k < c->n; k++)
            free(c->script[k].body);
        free(c->script);
        evbuffer_free(c->got);
        be_free(&c->direct);
    }
    for (int j = 0; j < w->nservers; j++) {
        prep_server_free(w->s[j].ps);
        be_free(&w->s[j].be);
        evbuffer_free(w->s[j].in);
    }
    struct prep_stats st;
    prep_registry_stats(w->reg, &st);
    assert_int_equal(st.statements, 0); /* every reference given back */
    prep_registry_free(w->reg);
}

/* Client i sends a message: its direct connection answers it now, pgnear when pumped. */
static void send_msg(struct world *w, int i, uint8_t type, const void *body, size_t len)
{
    struct wclient *c = &w->c[i];
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->script = realloc(c->script, c->cap * sizeof(*c->script));
        assert_non_null(c->script);
    }
    uint8_t *copy = malloc(len + 1);
    memcpy(copy, body, len);
    copy[len] = 0;
    c->script[c->n++] = (struct wmsg){type, copy, len};
    be_message(&c->direct, type, copy, len);
}

static void send_parse(struct world *w, int i, const char *name, const char *text, int ntypes)
{
    uint8_t body[512];
    size_t off = 0, n = strlen(name) + 1, t = strlen(text) + 1;
    assert_true(n + t + 2 + 4 * ntypes <= sizeof(body));
    memcpy(body, name, n);
    memcpy(body + n, text, t);
    off = n + t;
    body[off++] = 0;
    body[off++] = (uint8_t)ntypes;
    for (int k = 0; k < ntypes; k++, off += 4)
        pkt_store_be32(body + off, 23);
    send_msg(w, i, 'P', body, off);
}

static void send_bind(struct world *w, int i, const char *name)
{
    uint8_t body[512];
    size_t n = strlen(name) + 1;
    assert_true(n + 7 <= sizeof(body));
    body[0] = 0; /* the unnamed portal */
    memcpy(body + 1, name, n);
    memset(body + 1 + n, 0, 6);
    send_msg(w, i, 'B', body, 1 + n + 6);
}

static void send_target(struct world *w, int i, uint8_t type, uint8_t kind, const char *name)
{
    uint8_t body[512];
    size_t n = strlen(name) + 1;
    assert_true(n + 1 <= sizeof(body));
    body[0] = kind;
    memcpy(body + 1, name, n);
    send_msg(w, i, type, body, 1 + n);
}

static void send_execute(struct world *w, int i)
{
    send_msg(w, i, 'E', "\0\0\0\0", 5);
}

static void send_sync(struct world *w, int i)
{
    send_msg(w, i, 'S', "", 0);
}

static void send_query(struct world *w, int i, const char *text)
{
    send_msg(w, i, 'Q', text, strlen(text) + 1);
}

/* Parse, Bind, Execute of name. */
static void send_pbe(struct world *w, int i, const char *name, const char *text)
{
    send_parse(w, i, name, text, 0);
    send_bind(w, i, name);
    send_execute(w, i);
}

static uint32_t world_rand(struct world *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (uint32_t)(w->rng >> 11);
}

/* A server connection no one runs on, with nothing owed either way. */
static bool server_free(const struct world *w, int j)
{
    const struct wserver *s = &w->s[j];
    return s->client < 0 && prep_server_idle(s->ps) && evbuffer_get_length(s->in) == 0 &&
           evbuffer_get_length(s->be.out) == 0;
}

/*
 * The message presented as the relay does, from the head of an input
 * buffer behind another message's bytes (not moved with it): a Query goes
 * out of it, anything else stays.
 */
static int client_message_from(struct wclient *c, struct wserver *s, const struct wmsg *m)
{
    struct evbuffer *in = evbuffer_new();
    assert_non_null(in);
    assert_int_equal(pkt_add_msg(in, (char)m->type, m->body, m->len), 0);
    assert_int_equal(evbuffer_add(in, "Z\0\0\0\5I", 6), 0);
    const uint8_t *head = evbuffer_pullup(in, 5 + (ssize_t)m->len);
    bool moved = false;
    int rc = prep_client_message_from(c->pc, s->ps, m->type, head + 5, m->len, in, &moved, s->in,
                                      c->got);
    if (rc != PREP_WAIT)
        assert_int_equal(moved, m->type == 'Q' && rc == PREP_OK);
    assert_int_equal(evbuffer_get_length(in), 6 + (moved ? 0 : 5 + m->len));
    evbuffer_free(in);
    return rc;
}

/* Client i presents its next message to pgnear: true when it was taken. */
static bool step_client(struct world *w, int i)
{
    struct wclient *c = &w->c[i];
    if (c->gone || c->sent == c->n)
        return false;
    if (c->server < 0) {
        for (int j = 0; j < w->nservers && c->server < 0; j++) {
            if ((c->want_server < 0 || c->want_server == j) && server_free(w, j)) {
                c->server = j;
                w->s[j].client = i;
            }
        }
        if (c->server < 0)
            return false;
    }
    struct wserver *s = &w->s[c->server];
    struct wmsg *m = &c->script[c->sent];
    int rc, way = (int)(world_rand(w) % 3);
    if (way == 2 && prep_client_take_whole(c->pc, s->ps, m->type, m->body, m->len, c->got)) {
        /* as transaction pooling's run moves it: the caller appends it as it came */
        assert_int_equal(pkt_add_msg(s->in, (char)m->type, m->body, m->len), 0);
        w->client_taken++;
        rc = PREP_OK;
    } else if (way == 1) {
        rc = client_message_from(c, s, m);
    } else {
        rc = prep_client_message(c->pc, s->ps, m->type, m->body, m->len, s->in, c->got);
    }
    c->waiting = rc == PREP_WAIT;
    if (rc == PREP_WAIT)
        return false;
    assert_int_equal(rc, PREP_OK);
    tx_track_client(&s->tx, m->type);
    c->sent++;
    return true;
}

/* Server connection j reads one message of what it was sent. */
static bool step_read(struct world *w, int j)
{
    uint8_t type, *body;
    size_t len;
    if (!take_msg(w->s[j].in, &type, &body, &len))
        return false;
    be_message(&w->s[j].be, type, body, len);
    free(body);
    return true;
}

/* One message of server connection j's answers reaches pgnear. */
static bool step_answer(struct world *w, int j)
{
    struct wserver *s = &w->s[j];
    uint8_t type, *body;
    size_t len;
    if (!take_msg(s->be.out, &type, &body, &len))
        return false;
    struct evbuffer *to = s->client >= 0 ? w->c[s->client].got : NULL;
    bool async = type == 'S' || type == 'N' || type == 'A';
    if (async || !prep_server_answers_own(s->ps)) /* pgnear's own answers are not told */
        tx_track_server(&s->tx, type, pkt_ready_status((char)type, body, len));
    int rc;
    uint32_t way = to != NULL ? world_rand(w) % 3 : 0;
    if ((way == 1 && prep_server_passes_whole(s->ps, type, body, len)) ||
        (way == 2 && prep_server_take_whole(s->ps, type, body, len))) {
        rc = pkt_add_msg(to, (char)type, body, len) == 0 ? PREP_OK : PREP_OOM; /* the relay's run */
        w->passed_whole++;
        w->taken_whole += way == 2;
    } else
        rc = prep_server_message(s->ps, type, body, len, to);
    free(body);
    assert_int_equal(rc, PREP_OK);
    return true;
}

/* Between transactions a client gives its server connection back (the pool's rule). */
static bool step_release(struct world *w, int i)
{
    struct wclient *c = &w->c[i];
    if (c->server < 0)
        return false;
    struct wserver *s = &w->s[c->server];
    uint8_t last = c->sent > 0 ? c->script[c->sent - 1].type : 'S';
    if ((last != 'S' && last != 'Q') || !prep_server_idle(s->ps) || evbuffer_get_length(s->in) ||
        evbuffer_get_length(s->be.out))
        return false;
    s->client = -1;
    c->server = -1;
    return true;
}

/* The client leaves, maybe mid-batch: pgnear ends the batch it left open. */
static void client_leaves(struct world *w, int i)
{
    struct wclient *c = &w->c[i];
    prep_client_free(c->pc);
    c->gone = true;
    if (c->server >= 0) {
        struct wserver *s = &w->s[c->server];
        assert_int_equal(prep_server_finish_batch(s->ps, s->in), PREP_OK);
        s->client = -1;
        c->server = -1;
    }
}

/* Everything runs until nothing moves; clients give their servers back when they may. */
static void pump(struct world *w)
{
    bool moved = true;
    while (moved) {
        moved = false;
        for (int i = 0; i < w->nclients; i++)
            while (step_client(w, i))
                moved = true;
        for (int j = 0; j < w->nservers; j++) {
            while (step_read(w, j))
                moved = true;
            while (step_answer(w, j))
                moved = true;
        }
        for (int i = 0; i < w->nclients; i++)
            moved |= step_release(w, i);
    }
    for (int i = 0; i < w->nclients; i++)
        assert_true(w->c[i].gone || w->c[i].sent == w->c[i].n); /* no one waits forever */
}

/* A buffer of messages as text, for a failure's report: types, SQLSTATEs, values. */
static void render(const uint8_t *p, size_t len, char *text, size_t cap)
{
    size_t off = 0;
    while (len >= 5 && off + 16 < cap) {
        uint32_t n = pkt_be32(p + 1);
        const char *code = p[0] == 'E' ? pkt_report_field(p + 5, n - 4, 'C') : NULL;
        off += (size_t)snprintf(text + off, cap - off, " %c%s", p[0], code ? code : "");
        if (p[0] == 'P' || p[0] == 'B' || p[0] == 'Q' || p[0] == 'D' || p[0] == 'C')
            off +=
                (size_t)snprintf(text + off, cap - off, "(%.*s)", (int)(n - 4 > 20 ? 20 : n - 4),
                                 (const char *)p + 5 + (p[0] == 'B' || p[0] == 'D' || p[0] == 'C'));
        p += 1 + n;
        len -= 1 + n;
    }
    text[off] = 0;
}

static void report(struct world *w, int i)
{
    static char text[1 << 16];
    struct wclient *c = &w->c[i];
    struct evbuffer *script = evbuffer_new();
    for (size_t k = 0; k < c->n; k++)
        put(script, c->script[k].type, c->script[k].body, c->script[k].len);
    render(evbuffer_pullup(script, -1), evbuffer_get_length(script), text, sizeof(text));
    fprintf(stderr, "# script:%s\n", text);
    evbuffer_free(script);
    render(evbuffer_pullup(c->got, -1), evbuffer_get_length(c->got), text, sizeof(text));
    fprintf(stderr, "# pgnear:%s\n", text);
    render(evbuffer_pullup(c->direct.out, -1), evbuffer_get_length(c->direct.out), text,
           sizeof(text));
    fprintf(stderr, "# direct:%s\n", text);
}

/* Client i received exactly what its direct connection answered. */
static void same_as_direct(struct world *w, int i)
{
    struct wclient *c = &w->c[i];
    size_t got = evbuffer_get_length(c->got), want = evbuffer_get_length(c->direct.out);
    const uint8_t *g = evbuffer_pullup(c->got, -1), *d = evbuffer_pullup(c->direct.out, -1);
    size_t k = 0;
    while (k < got && k < want && g[k] == d[k])
        k++;
    if (k != got || k != want) {
        report(w, i);
        fail_msg("client %d: %zu bytes through pgnear, %zu direct, same up to %zu", i, got, want,
                 k);
    }
}

/*
 * What client i received, as text: one letter a message, an ErrorResponse's
 * SQLSTATE after its 'E', a DataRow's value after its 'D'.  The buffer is
 * emptied; so is its direct connection's, once compared.
 */
static const char *received(struct world *w, int i)
{
    static char text[4096];
    struct wclient *c = &w->c[i];
    same_as_direct(w, i);
    evbuffer_drain(c->direct.out, evbuffer_get_length(c->direct.out));
    size_t off = 0;
    uint8_t type, *body;
    size_t len;
    while (take_msg(c->got, &type, &body, &len)) {
        assert_true(off + 16 < sizeof(text));
        text[off++] = (char)type;
        const char *code = type == 'E' ? pkt_report_field(body, len, 'C') : NULL;
        if (code != NULL)
            off += (size_t)snprintf(text + off, 6, "%s", code);
        if (type == 'D' && len > 6)
            off += (size_t)snprintf(text + off, 8, "%.*s", (int)(len - 6), body + 6);
        free(body);
    }
    text[off] = 0;
    return text;
}

static uint64_t stat_of(struct world *w, int j, int which)
{
    struct prep_stats st;
    if (j < 0)
        prep_registry_stats(w->reg, &st);
    else
        prep_server_stats(w->s[j].ps, &st);
    uint64_t v[] = {st.statements, st.parses_sent, st.parses_skipped, st.evictions,
                    st.waits,      st.retired,     st.plan_checks,    st.verifies};
    return v[which];
}
#define STATEMENTS 0
#define SENT       1
#define SKIPPED    2
#define EVICTIONS  3
#define WAITS      4
#define RETIRED    5
#define CHECKS     6
#define VERIFIES   7

/* ---- the bug classes, one case each ---- */

/*
 * Parse of a cached text answered by pgnear, its Bind queued, then a
 * Parse that needs room: the statement the Bind needs is not the one
 * closed (with capacity 1 the cache goes over and comes back at a Sync).
 */
static void test_pipeline_eviction(void **state)
{
    (void)state;
    for (unsigned capacity = 1; capacity <= 2; capacity++) {
        struct world w;
        world_init(&w, 2, 1, capacity);
        send_parse(&w, 0, "a", "SELECT 1", 0);
        if (capacity == 2)
            send_parse(&w, 0, "b", "SELECT 2", 0);
        send_sync(&w, 0);
        pump(&w);
        assert_string_equal(received(&w, 0), capacity == 2 ? "11Z" : "1Z");
        const char *a = prep_client_lookup(w.c[0].pc, "a");
        send_parse(&w, 1, "x", "SELECT 1", 0); /* cached: answered by pgnear */
        send_bind(&w, 1, "x");
        send_parse(&w, 1, "y", "SELECT 3", 0); /* needs room */
        send_execute(&w, 1);
        send_bind(&w, 1, "y");
        send_execute(&w, 1);
        send_sync(&w, 1);
        pump(&w);
        assert_string_equal(received(&w, 1), "121D1C2D3CZ");
        assert_non_null(be_find(&w.s[0].be, a));
        assert_int_equal(stat_of(&w, 0, SKIPPED), 1);
        assert_int_equal(stat_of(&w, 0, EVICTIONS), capacity == 2 ? 1 : 0);
        assert_int_equal(stat_of(&w, 0, STATEMENTS), 2);
        send_sync(&w, 1); /* nothing in use now: back to capacity */
        pump(&w);
        assert_string_equal(received(&w, 1), "Z");
        assert_int_equal(stat_of(&w, 0, STATEMENTS), capacity);
        assert_int_equal(w.s[0].be.nnamed, (int)capacity);
        world_free(&w);
    }
}

/*
 * A client leaves before its Sync.  A Parse the server skipped (an error
 * came before it) never puts its statement in the cache; one the server
 * ran does, once its ParseComplete came, and serves the next client.
 */
static void test_client_leaves_before_sync(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 3, 1, 10);
    send_pbe(&w, 0, "e", "ERR");
    send_parse(&w, 0, "a", "SELECT 5", 0);
    while (step_client(&w, 0))
        ;
    client_leaves(&w, 0);
    pump(&w);
    assert_int_equal(stat_of(&w, 0, STATEMENTS), 1); /* "ERR" parsed, "SELECT 5" skipped */
    send_pbe(&w, 1, "b", "SELECT 5");
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 1), "12D5CZ");
    assert_int_equal(stat_of(&w, 0, SENT), 3);
    assert_int_equal(stat_of(&w, 0, SKIPPED), 0);

    send_parse(&w, 2, "c", "SELECT 6", 0);
    send_bind(&w, 2, "c");
    while (step_client(&w, 2))
        ;
    while (step_read(&w, 0))
        ;
    client_leaves(&w, 2); /* its answers are on their way */
    pump(&w);
    assert_true(prep_server_idle(w.s[0].ps));
    send_parse(&w, 1, "c", "SELECT 6", 0);
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 1), "1Z");
    assert_int_equal(stat_of(&w, 0, SKIPPED), 1);
    world_free(&w);
}

/* Two clients, one server connection (pool_size 1), one name for two texts. */
static void test_name_collision(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 2, 1, 10);
    send_parse(&w, 0, "q", "SELECT 1", 0);
    send_sync(&w, 0);
    send_parse(&w, 1, "q", "SELECT 2", 0);
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 0), "1Z");
    assert_string_equal(received(&w, 1), "1Z");
    for (int round = 0; round < 2; round++) {
        send_bind(&w, 1, "q");
        send_execute(&w, 1);
        send_sync(&w, 1);
        send_bind(&w, 0, "q");
        send_execute(&w, 0);
        send_sync(&w, 0);
    }
    pump(&w);
    assert_string_equal(received(&w, 0), "2D1CZ2D1CZ");
    assert_string_equal(received(&w, 1), "2D2CZ2D2CZ");
    assert_int_equal(stat_of(&w, -1, STATEMENTS), 2);
    assert_string_not_equal(prep_client_lookup(w.c[0].pc, "q"), prep_client_lookup(w.c[1].pc, "q"));
    world_free(&w);
}

/* DISCARD ALL, DEALLOCATE ALL: every name goes, and the server's cache. */
static void test_discard_all(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 1, 1, 10);
    send_parse(&w, 0, "a", "SELECT 1", 0);
    send_sync(&w, 0);
    send_query(&w, 0, "DISCARD ALL");
    send_bind(&w, 0, "a");
    send_execute(&w, 0);
    send_sync(&w, 0);
    send_pbe(&w, 0, "a", "SELECT 2");
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "1ZCZE26000Z12D2CZ");
    /* in one batch: the Bind behind the Execute waits for its CommandComplete */
    send_pbe(&w, 0, "d", "DEALLOCATE ALL");
    send_bind(&w, 0, "a");
    send_execute(&w, 0);
    send_sync(&w, 0);
    send_parse(&w, 0, "a", "SELECT 3", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "12CE26000Z1Z");
    assert_true(stat_of(&w, 0, WAITS) > 0);
    assert_int_equal(prep_client_count(w.c[0].pc), 1);
    assert_int_equal(stat_of(&w, 0, STATEMENTS), 1);
    world_free(&w);
}

/* A name taken: 42P05, and the batch's implicit transaction rolls back. */
static void test_duplicate_name(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 1, 1, 10);
    send_parse(&w, 0, "a", "SELECT 1", 0);
    send_sync(&w, 0);
    send_pbe(&w, 0, "i", "INSERT c0");
    send_parse(&w, 0, "a", "SELECT 2", 0);
    send_bind(&w, 0, "a");
    send_execute(&w, 0);
    send_sync(&w, 0);
    send_query(&w, 0, "COUNT c0");
    pump(&w);
    assert_string_equal(received(&w, 0), "1Z12CE42P05ZD0CZ");
    /* statements are not transactional: i stays, and a is still the first text */
    send_bind(&w, 0, "i");
    send_execute(&w, 0);
    send_bind(&w, 0, "a");
    send_execute(&w, 0);
    send_sync(&w, 0);
    send_query(&w, 0, "COUNT c0");
    pump(&w);
    assert_string_equal(received(&w, 0), "2C2D1CZD1CZ");
    world_free(&w);
}

/* Unknown names: the server's own 26000 (a PGNEAR_ name: pgnear's, worded the same). */
static void test_unknown_name(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 1, 1, 10);
    send_bind(&w, 0, "nope");
    send_execute(&w, 0);
    send_sync(&w, 0);
    send_target(&w, 0, 'D', 'S', "nope");
    send_sync(&w, 0);
    send_bind(&w, 0, "");
    send_sync(&w, 0);
    send_parse(&w, 0, "p", "SELECT 1", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "E26000ZE26000ZE26000Z1Z");
    send_pbe(&w, 0, "i", "INSERT c0");
    send_bind(&w, 0, prep_client_lookup(w.c[0].pc, "p"));
    send_execute(&w, 0);
    send_sync(&w, 0);
    send_query(&w, 0, "COUNT c0");
    pump(&w);
    assert_string_equal(received(&w, 0), "12CE26000ZD0CZ");
    send_target(&w, 0, 'C', 'S', "nope"); /* closing what is not there is no error */
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "3Z");
    world_free(&w);
}

/* After DDL a Parse pgnear sends again fails: the client sees that error, as its Bind's. */
static void test_injected_parse_fails(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 1, 2, 10);
    w.c[0].want_server = 0;
    send_parse(&w, 0, "g", "SELECT gone", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "1Z");
    w.db.dropped = w.c[0].direct_db.dropped = true;
    w.c[0].want_server = 1;
    send_bind(&w, 0, "g");
    send_execute(&w, 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "E42P01Z");
    assert_int_equal(stat_of(&w, 1, STATEMENTS), 0);
    w.db.dropped = w.c[0].direct_db.dropped = false;
    send_bind(&w, 0, "g");
    send_execute(&w, 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "2DgoneCZ");
    world_free(&w);
}

/* The result type of "SELECT shape" changes for everyone (direct connections too). */
static void change_shape(struct world *w)
{
    w->db.shape++;
    for (int i = 0; i < w->nclients; i++)
        w->c[i].direct_db.shape++;
}

static void bind_execute_sync(struct world *w, int i, const char *name)
{
    send_bind(w, i, name);
    send_execute(w, i);
    send_sync(w, i);
    pump(w);
}

/*
 * A statement whose result type changed (a column altered, a table made
 * again): its name fails with 0A000 on every server, the server's that
 * planned it and pgnear's own elsewhere, as PostgreSQL refuses it for
 * good; a new Parse of the same text, by any client, plans afresh instead
 * of being answered from a cache of the stale plan.
 */
static void test_result_type_changed(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 2, 2, 10);
    w.c[0].want_server = w.c[1].want_server = 0;
    send_parse(&w, 0, "s1", "SELECT shape", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "1Z");
    change_shape(&w);
    /*
     * Another client parses the text now: pgnear answers from the server's
     * statement, then asks the server before the name's first use, finds
     * the plan stale, and parses the text afresh: what PostgreSQL gives.
     */
    send_parse(&w, 1, "early", "SELECT shape", 0);
    bind_execute_sync(&w, 1, "early");
    assert_string_equal(received(&w, 1), "12DshapeCZ");
    assert_int_equal(stat_of(&w, -1, CHECKS), 1);
    assert_int_equal(stat_of(&w, -1, RETIRED), 1);
    bind_execute_sync(&w, 0, "s1");
    assert_string_equal(received(&w, 0), "E0A000Z");
    assert_int_equal(stat_of(&w, -1, RETIRED), 1);
    /*
     * The same text under a new name: the statement "early" made afresh,
     * not the stale one (answered from the cache, checked, no Parse sent).
     */
    uint64_t sent = stat_of(&w, 0, SENT);
    send_parse(&w, 0, "s2", "SELECT shape", 0);
    bind_execute_sync(&w, 0, "s2");
    assert_string_equal(received(&w, 0), "12DshapeCZ");
    assert_int_equal(stat_of(&w, 0, SENT), sent);
    assert_int_equal(stat_of(&w, -1, CHECKS), 2);
    assert_string_not_equal(prep_client_lookup(w.c[0].pc, "s1"),
                            prep_client_lookup(w.c[0].pc, "s2"));
    /* Another client's Parse of it gets the new statement. */
    send_parse(&w, 1, "t", "SELECT shape", 0);
    bind_execute_sync(&w, 1, "t");
    assert_string_equal(received(&w, 1), "12DshapeCZ");
    assert_string_equal(prep_client_lookup(w.c[1].pc, "t"), prep_client_lookup(w.c[0].pc, "s2"));
    assert_string_equal(prep_client_lookup(w.c[1].pc, "t"), prep_client_lookup(w.c[1].pc, "early"));
    /* The old name stays refused, where its plan is and on a server that never had it. */
    bind_execute_sync(&w, 0, "s1");
    assert_string_equal(received(&w, 0), "E0A000Z");
    w.c[0].want_server = 1;
    bind_execute_sync(&w, 0, "s1");
    assert_string_equal(received(&w, 0), "E0A000Z");
    send_target(&w, 0, 'D', 'S', "s1");
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "E0A000Z");
    assert_int_equal(stat_of(&w, 1, STATEMENTS), 0); /* never sent there */
    /* Closed and parsed again, the name works. */
    send_target(&w, 0, 'C', 'S', "s1");
    send_parse(&w, 0, "s1", "SELECT shape", 0);
    bind_execute_sync(&w, 0, "s1");
    assert_string_equal(received(&w, 0), "312DshapeCZ");
    assert_int_equal(stat_of(&w, -1, RETIRED), 1);
    world_free(&w);
}

/*
 * A statement described to a client (whose driver decodes its rows by that
 * description from then on) is planned afresh on a server that lacks it
 * after its result type changed: it gets 0A000 as its own statement
 * would directly, never rows of the new type; a client that parses the
 * text on such a server gets the new plan; one whose name pgnear answered
 * from the old plan gets the text parsed afresh.
 */
static void test_described_elsewhere(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 3, 2, 10);
    w.c[0].want_server = w.c[1].want_server = w.c[2].want_server = 0;
    send_parse(&w, 0, "s1", "SELECT shape", 0);
    send_target(&w, 0, 'D', 'S', "s1");
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "1tTZ");
    send_parse(&w, 2, "k", "SELECT shape", 0); /* answered from server 0's plan */
    send_sync(&w, 2);
    pump(&w);
    assert_string_equal(received(&w, 2), "1Z");
    change_shape(&w);
    w.c[0].want_server = w.c[1].want_server = w.c[2].want_server = 1;
    /* A Parse after the change on the server that lacks it: the new plan, under a new name. */
    send_parse(&w, 1, "n", "SELECT shape", 0);
    send_target(&w, 1, 'D', 'S', "n");
    bind_execute_sync(&w, 1, "n");
    assert_string_equal(received(&w, 1), "1tT2DshapeCZ");
    assert_string_not_equal(prep_client_lookup(w.c[1].pc, "n"),
                            prep_client_lookup(w.c[0].pc, "s1"));
    /* The names parsed before the change: 0A000 there, as directly, never the new rows. */
    bind_execute_sync(&w, 0, "s1");
    assert_string_equal(received(&w, 0), "E0A000Z");
    assert_int_equal(stat_of(&w, -1, RETIRED), 1);
    send_target(&w, 0, 'D', 'S', "s1");
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "E0A000Z");
    bind_execute_sync(&w, 2, "k");
    assert_string_equal(received(&w, 2), "E0A000Z");
    assert_int_equal(stat_of(&w, 1, STATEMENTS), 1); /* the wrong plan closed again: "n" alone */
    /* Described as told: no error, and one comparison per statement and server. */
    w.c[1].want_server = 0;
    send_parse(&w, 1, "m", "SELECT 5", 0);
    send_target(&w, 1, 'D', 'S', "m");
    bind_execute_sync(&w, 1, "m");
    assert_string_equal(received(&w, 1), "1tn2D5CZ");
    w.c[1].want_server = 1;
    uint64_t verifies = stat_of(&w, 1, VERIFIES);
    for (int k = 0; k < 2; k++) {
        bind_execute_sync(&w, 1, "m");
        assert_string_equal(received(&w, 1), "2D5CZ");
    }
    assert_int_equal(stat_of(&w, 1, VERIFIES), verifies + 1);
    world_free(&w);
}

/* A Parse answered without a server: only a statement a server has parsed, under a free name. */
static void test_parse_known(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 2, 1, 10);
    static const uint8_t known[] = "k\0SELECT 7\0\0", unknown[] = "k\0SELECT 8\0\0",
                         broken[] = "b\0BAD 9\0\0", bad[] = "k\0SELECT 7";
    /* Nothing parsed yet: the registry cannot vouch for the text. */
    assert_int_equal(prep_client_parse_known(w.c[1].pc, known, sizeof(known)), PREP_WAIT);
    send_parse(&w, 0, "a", "SELECT 7", 0);
    send_sync(&w, 0);
    send_parse(&w, 0, "b", "BAD 9", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "1ZE42601Z");
    assert_int_equal(prep_client_parse_known(w.c[1].pc, bad, sizeof(bad) - 1), PREP_BAD);
    assert_int_equal(prep_client_parse_known(w.c[1].pc, unknown, sizeof(unknown)), PREP_WAIT);
    /* A text that failed to parse is never vouched for. */
    assert_int_equal(prep_client_parse_known(w.c[1].pc, broken, sizeof(broken)), PREP_WAIT);
    assert_int_equal(prep_client_parse_known(w.c[1].pc, known, sizeof(known)), PREP_OK);
    assert_string_equal(prep_client_lookup(w.c[1].pc, "k"), prep_client_lookup(w.c[0].pc, "a"));
    /* The name is taken now: a second one goes to a server (and gets 42P05 there). */
    assert_int_equal(prep_client_parse_known(w.c[1].pc, known, sizeof(known)), PREP_WAIT);
    /* The direct connection is told of the name too (its ParseComplete pgnear gave itself). */
    be_message(&w.c[1].direct, 'P', known, sizeof(known));
    evbuffer_drain(w.c[1].direct.out, 5);
    send_bind(&w, 1, "k");
    send_execute(&w, 1);
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 1), "2D7CZ");
    world_free(&w);
}

/* A Bind's statement may change the session's settings: by the name as the client made it. */
static void test_bind_changes_settings(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 1, 1, 10);
    struct prep_client *pc = w.c[0].pc;
    static const uint8_t bind_s[] = "\0s\0\0\0\0\0\0\0", bind_q[] = "\0q\0\0\0\0\0\0\0",
                         bind_unnamed[] = "\0\0\0\0\0\0\0\0", bind_bad[] = "\0s";
    send_parse(&w, 0, "s", "SELECT set_config('search_path', 'x', false)", 0);
    send_parse(&w, 0, "q", "SELECT 1", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_true(prep_client_bind_changes_settings(pc, bind_s, sizeof(bind_s) - 1));
    assert_false(prep_client_bind_changes_settings(pc, bind_q, sizeof(bind_q) - 1));
    assert_false(prep_client_bind_changes_settings(pc, bind_unnamed, sizeof(bind_unnamed) - 1));
    assert_false(prep_client_bind_changes_settings(pc, bind_bad, sizeof(bind_bad) - 1));
    send_parse(&w, 0, "", "SET TimeZone = 'UTC'", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_true(prep_client_bind_changes_settings(pc, bind_unnamed, sizeof(bind_unnamed) - 1));
    world_free(&w);
}

/* The word looked for in a Query's text: any case, anywhere, never past len. */
static void test_text_mentions(void **state)
{
    (void)state;
    static const char text[] = "SELECT 1; dIsCaRd ALL; DEALLOCATE x; discar";
    size_t len = sizeof(text) - 1;
    assert_true(prep_text_mentions(text, len, "discard"));
    assert_true(prep_text_mentions(text, len, "deallocate"));
    assert_true(prep_text_mentions(text + 10, 7, "discard"));
    assert_false(prep_text_mentions(text + 10, 6, "discard"));
    assert_false(prep_text_mentions(text + 23, len - 23, "discard")); /* "discar" at the end */
    assert_true(prep_text_mentions("xxDEALLOCATE", 12, "deallocate"));
    assert_false(prep_text_mentions("dddddeallocat", 13, "deallocate"));
    assert_false(prep_text_mentions("", 0, "discard"));
    assert_true(prep_text_mentions("abc", 3, ""));
    /* Read eight bytes at a time: the word at every place around those blocks, and cut short. */
    char buf[48];
    for (size_t at = 0; at + 10 <= sizeof(buf); at++) {
        memset(buf, 'D', sizeof(buf)); /* first letters everywhere, never the word */
        memcpy(buf + at, "dEaLlOcAtE", 10);
        assert_true(prep_text_mentions(buf, at + 10, "deallocate"));
        assert_false(prep_text_mentions(buf, at + 9, "deallocate"));
        assert_false(prep_text_mentions(buf + at + 1, sizeof(buf) - at - 1, "deallocate"));
        assert_true(prep_text_may_deallocate(buf, at + 10));
        assert_false(prep_text_may_deallocate(buf, at + 9));
        buf[at + 4] = 'L' ^ 0x40; /* a byte that differs in more than its case */
        assert_false(prep_text_mentions(buf, sizeof(buf), "deallocate"));
        memcpy(buf + at, "DiScArD", 7);
        assert_true(prep_text_may_deallocate(buf, at + 7));
        assert_false(prep_text_may_deallocate(buf, at + 6));
    }
}

/* DEALLOCATE name by a Query: the name goes, pgnear answers for the server. */
static void test_deallocate_query(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 1, 1, 10);
    send_parse(&w, 0, "d", "SELECT 4", 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "1Z");
    struct prep_client *c = w.c[0].pc;
    struct prep_server *s = w.s[0].ps;
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(prep_client_deallocate(c, s, "nope", 4, out), PREP_WAIT);
    assert_int_equal(evbuffer_get_length(out), 0);
    w.s[0].tx.status = 'T'; /* as if the client's BEGIN had been answered */
    assert_int_equal(prep_client_deallocate(c, s, "d", 1, out), PREP_OK);
    static const uint8_t want[] = "C\0\0\0\x0f"
                                  "DEALLOCATE\0"
                                  "Z\0\0\0\x05T";
    assert_int_equal(evbuffer_get_length(out), sizeof(want) - 1);
    assert_memory_equal(evbuffer_pullup(out, -1), want, sizeof(want) - 1);
    assert_null(prep_client_lookup(c, "d"));
    assert_true(prep_server_idle(s));
    evbuffer_free(out);
    world_free(&w);
}

/* The name a DEALLOCATE text names, as PostgreSQL reads it; NULL: the server reads the text. */
static void test_deallocate_name(void **state)
{
    (void)state;
    static const struct {
        const char *text, *name;
    } cases[] = {
        {"DEALLOCATE s1", "s1"},
        {" deallocate\tPREPARE\nMyName ;\r\n", "myname"},
        {"DEALLOCATE \"A \"\"q\"\" B\";", "A \"q\" B"},
        {"Deallocate prepare prepare", "prepare"},
        {"DEALLOCATE \"all\"", "all"},
        {"DEALLOCATE a$1_b", "a$1_b"},
        {"DEALLOCATE\"x\"", "x"},
        {"DEALLOCATE ALL", NULL},
        {"DEALLOCATE PREPARE ALL;", NULL},
        {"DEALLOCATE", NULL},
        {"DEALLOCATE PREPARE", NULL},
        {"DEALLOCATE \"\"", NULL},
        {"DEALLOCATE \"open", NULL},
        {"DEALLOCATE U&\"x\"", NULL},
        {"DEALLOCATE 'x'", NULL},
        {"DEALLOCATE 1x", NULL},
        {"DEALLOCATE $1", NULL},
        {"DEALLOCATE $x", NULL},
        {"DEALLOCATE caf\xc3\xa9", NULL},
        {"DEALLOCATE a b", NULL},
        {"DEALLOCATE a;;", NULL},
        {"DEALLOCATE a; SELECT 1", NULL},
        {"DEALLOCATE /* c */ a", NULL},
        {"DEALLOCATE a -- c", NULL},
        {"DEALLOCATEx a", NULL},
        {"SELECT 1", NULL},
        {"DEALLOCATE abcdefgh", "abcdefgh"},
        {"DEALLOCATE abcdefghi", NULL},
        {"DEALLOCATE \"abcdefg\"\"\"", "abcdefg\""},
        {"DEALLOCATE \"abcdefghi\"", NULL},
        {"\v\f\r\n\t dEaLlOcAtE a", "a"},
        {"/* c */ DEALLOCATE a", NULL},
        {"-- c\nDEALLOCATE a", NULL},
        {"xDEALLOCATE a", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[9]; /* names of 8 bytes at most */
        bool got = prep_deallocate_name(cases[i].text, strlen(cases[i].text), name, sizeof(name));
        if (got != (cases[i].name != NULL) || (got && strcmp(name, cases[i].name) != 0))
            fail_msg("%s: got %s", cases[i].text, got ? name : "nothing");
    }
}

/* The unnamed statement, parsed on one server connection, bound later on another. */
static void test_unnamed_other_server(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 2, 2, 10);
    w.c[0].want_server = 0;
    w.c[1].want_server = 1;
    send_parse(&w, 0, "", "SELECT 7", 1);
    send_sync(&w, 0);
    send_parse(&w, 1, "", "SELECT 8", 0);
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 0), "1Z");
    assert_string_equal(received(&w, 1), "1Z");
    w.c[0].want_server = 1;
    w.c[1].want_server = 0;
    send_bind(&w, 0, "");
    send_execute(&w, 0);
    send_target(&w, 0, 'D', 'S', "");
    send_sync(&w, 0);
    send_bind(&w, 1, "");
    send_execute(&w, 1);
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 0), "2D7CtnZ");
    assert_string_equal(received(&w, 1), "2D8CZ");
    /* a Query drops it; Close too; the server then must not bind another client's */
    send_query(&w, 0, "SELECT 1");
    send_bind(&w, 0, "");
    send_sync(&w, 0);
    send_parse(&w, 1, "", "SELECT 9", 0);
    send_target(&w, 1, 'C', 'S', "");
    send_bind(&w, 1, "");
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 0), "D1CZE26000Z");
    assert_string_equal(received(&w, 1), "13E26000Z");
    world_free(&w);
}

/* 500 distinct statements in one batch, capacity 100: all in use, then back to 100. */
static void test_many_statements(void **state)
{
    (void)state;
    struct world w;
    char name[16], text[32];
    world_init(&w, 1, 1, 100);
    for (int k = 0; k < 500; k++) {
        snprintf(name, sizeof(name), "s%d", k);
        snprintf(text, sizeof(text), "SELECT %d", k);
        send_pbe(&w, 0, name, text);
    }
    send_sync(&w, 0);
    pump(&w);
    same_as_direct(&w, 0);
    assert_int_equal(stat_of(&w, 0, STATEMENTS), 500);
    assert_int_equal(stat_of(&w, 0, SENT), 500);
    send_sync(&w, 0);
    pump(&w);
    assert_int_equal(stat_of(&w, 0, STATEMENTS), 100);
    assert_int_equal(stat_of(&w, 0, EVICTIONS), 400);
    assert_int_equal(w.s[0].be.nnamed, 100);
    assert_int_equal(prep_client_count(w.c[0].pc), 500);
    for (int k = 0; k < 500; k += 7) { /* the evicted ones are parsed again */
        snprintf(name, sizeof(name), "s%d", k);
        send_bind(&w, 0, name);
        send_execute(&w, 0);
        send_sync(&w, 0);
    }
    pump(&w);
    same_as_direct(&w, 0);
    assert_true(stat_of(&w, 0, STATEMENTS) <= 100);
    assert_int_equal(w.s[0].be.nnamed, (int)stat_of(&w, 0, STATEMENTS));
    world_free(&w);
}

/* One text under two context digests (two search_paths): two server statements. */
static void test_context_digests(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 2, 1, 10);
    prep_client_free(w.c[1].pc);
    w.c[1].pc = prep_client_new(w.reg, 2);
    assert_non_null(w.c[1].pc);
    send_pbe(&w, 0, "a", "SELECT 1");
    send_sync(&w, 0);
    send_pbe(&w, 1, "a", "SELECT 1");
    send_sync(&w, 1);
    pump(&w);
    assert_string_equal(received(&w, 0), "12D1CZ");
    assert_string_equal(received(&w, 1), "12D1CZ");
    assert_int_equal(stat_of(&w, -1, STATEMENTS), 2);
    assert_int_equal(stat_of(&w, 0, STATEMENTS), 2);
    assert_int_equal(stat_of(&w, 0, SKIPPED), 0);
    assert_string_not_equal(prep_client_lookup(w.c[0].pc, "a"), prep_client_lookup(w.c[1].pc, "a"));
    world_free(&w);
}

/*
 * Batches pipelined behind one another: a name parsed or closed in a batch
 * not answered yet is bound only once that batch's fate is known.
 */
static void test_pipelined_batches(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, 1, 1, 2);
    send_parse(&w, 0, "a", "SELECT 1", 0);
    send_sync(&w, 0);
    send_bind(&w, 0, "a");
    send_execute(&w, 0);
    send_sync(&w, 0);
    send_target(&w, 0, 'C', 'S', "a");
    send_sync(&w, 0);
    send_pbe(&w, 0, "a", "SELECT 2");
    send_sync(&w, 0);
    send_pbe(&w, 0, "e", "ERR");
    send_parse(&w, 0, "b", "SELECT 3", 0);
    send_target(&w, 0, 'C', 'S', "a");
    send_sync(&w, 0);
    send_bind(&w, 0, "b");
    send_execute(&w, 0);
    send_bind(&w, 0, "a");
    send_execute(&w, 0);
    send_sync(&w, 0);
    pump(&w);
    assert_string_equal(received(&w, 0), "1Z2D1CZ3Z12D2CZ12E22012ZE26000Z");
    assert_true(stat_of(&w, 0, WAITS) > 0);
    send_pbe(&w, 0, "", "SELECT 4"); /* unnamed: no waiting */
    send_sync(&w, 0);
    send_pbe(&w, 0, "", "SELECT 5");
    send_sync(&w, 0);
    uint64_t waits = stat_of(&w, 0, WAITS);
    pump(&w);
    assert_string_equal(received(&w, 0), "12D4CZ12D5CZ");
    assert_int_equal(stat_of(&w, 0, WAITS), waits);
    world_free(&w);
}

/* ---- random scripts, random interleavings ---- */

static const char *pick(struct world *w, const char *const *from, size_t n)
{
    return from[world_rand(w) % n];
}

static const char *random_name(struct world *w)
{
    static const char *const names[] = {"", "a", "b", "c", "a", "", "z", "PGNEAR_0"};
    return pick(w, names, sizeof(names) / sizeof(names[0]));
}

static const char *random_text(struct world *w, int i)
{
    static const char *const texts[] = {"SELECT 1", "SELECT 2", "SELECT 3", "BAD",     "ERR",
                                        "INSERT c", "COUNT c",  "SELECT 1", "SELECT 2"};
    static char own[2][16];
    if (world_rand(w) % 40 == 0)
        return "DEALLOCATE ALL";
    const char *t = pick(w, texts, sizeof(texts) / sizeof(texts[0]));
    if (t[strlen(t) - 1] != 'c')
        return t;
    snprintf(own[i % 2], sizeof(own[0]), "%s%d", t, i); /* "INSERT c0": client 0's table */
    return own[i % 2];
}

/* One batch up to its Sync, or a Query. */
static void random_batch(struct world *w, int i)
{
    static const char *const queries[] = {"SELECT 4", "COUNT c", "ERR", "DEALLOCATE ALL"};
    if (world_rand(w) % 8 == 0) {
        const char *q = pick(w, queries, 4);
        char text[16];
        snprintf(text, sizeof(text), "%s%s", q, strcmp(q, "COUNT c") == 0 ? (i ? "1" : "0") : "");
        send_query(w, i, text);
        return;
    }
    for (int ops = 1 + (int)(world_rand(w) % 5); ops > 0; ops--) {
        const char *name = random_name(w);
        switch (world_rand(w) % 6) {
        case 0:
            send_parse(w, i, name, random_text(w, i), (int)(world_rand(w) % 2));
            break;
        case 1:
            send_bind(w, i, name);
            send_execute(w, i);
            break;
        case 2:
            send_target(w, i, 'D', 'S', name);
            break;
        case 3:
            send_target(w, i, 'C', 'S', name);
            break;
        case 4:
            send_pbe(w, i, name, random_text(w, i));
            break;
        default:
            send_bind(w, i, name);
            send_target(w, i, 'D', 'P', "");
            send_execute(w, i);
            break;
        }
    }
    send_sync(w, i);
}

/* One random move: a client sends, a server reads or answers, a client lets go or leaves. */
static void random_step(struct world *w, bool leaving)
{
    uint32_t r = world_rand(w) % 16;
    int i = (int)(world_rand(w) % (uint32_t)w->nclients), j = (int)(world_rand(w) % 2);
    if (r < 5)
        step_client(w, i);
    else if (r < 10)
        step_read(w, j);
    else if (r < 15)
        step_answer(w, j);
    else if (leaving && world_rand(w) % 400 == 0 && !w->c[i].gone)
        client_leaves(w, i);
    else
        step_release(w, i);
}

static void test_model(void **state)
{
    (void)state;
    int runs = 0, left = 0;
    uint64_t waits = 0, evictions = 0, skipped = 0, passed_whole = 0, taken_whole = 0,
             client_taken = 0;
    for (uint64_t seed = 1; seed <= 3000; seed++) {
        struct world w;
        world_init(&w, 2, 2, 1 + (unsigned)(seed % 3));
        w.rng = seed * 0x9E3779B97F4A7C15ull;
        bool leaving = seed % 5 == 0;
        for (int i = 0; i < 2; i++)
            for (int b = 1 + (int)(world_rand(&w) % 12); b > 0; b--)
                random_batch(&w, i);
        for (int k = 0; k < 3000; k++)
            random_step(&w, leaving);
        pump(&w);
        for (int i = 0; i < 2; i++) {
            if (w.c[i].gone) {
                left++;
                continue;
            }
            same_as_direct(&w, i);
        }
        waits += stat_of(&w, -1, WAITS);
        evictions += stat_of(&w, -1, EVICTIONS);
        skipped += stat_of(&w, -1, SKIPPED);
        passed_whole += w.passed_whole;
        taken_whole += w.taken_whole;
        client_taken += w.client_taken;
        world_free(&w);
        runs++;
    }
    printf("# %d runs, %d clients left midway; %llu waits, %llu evictions, %llu parses from "
           "the cache, %llu answers passed whole (%llu taken whole), %llu client messages "
           "taken whole\n",
           runs, left, (unsigned long long)waits, (unsigned long long)evictions,
           (unsigned long long)skipped, (unsigned long long)passed_whole,
           (unsigned long long)taken_whole, (unsigned long long)client_taken);
    assert_true(waits > 100 && evictions > 100 && skipped > 100 && left > 10 &&
                passed_whole > 100 && taken_whole > 100 && client_taken > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_eviction),
        cmocka_unit_test(test_client_leaves_before_sync),
        cmocka_unit_test(test_name_collision),
        cmocka_unit_test(test_discard_all),
        cmocka_unit_test(test_text_mentions),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_injected_parse_fails),
        cmocka_unit_test(test_parse_known),
        cmocka_unit_test(test_bind_changes_settings),
        cmocka_unit_test(test_result_type_changed),
        cmocka_unit_test(test_described_elsewhere),
        cmocka_unit_test(test_deallocate_query),
        cmocka_unit_test(test_deallocate_name),
        cmocka_unit_test(test_unnamed_other_server),
        cmocka_unit_test(test_many_statements),
        cmocka_unit_test(test_context_digests),
        cmocka_unit_test(test_pipelined_batches),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests_name("prepared", tests, NULL, NULL);
}
