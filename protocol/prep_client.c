/*
 * prep_client.c — a client's messages under transaction pooling, Parse
 * aside (prepared.h, prep_int.h): each name resolved to the statement its
 * server holds, then Bind, Describe, Close, Execute, Sync, Query and the
 * end of a COPY; and a simple Query's DEALLOCATE.
 */
#include "protocol/prepared.h"

#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/prep_int.h"

int prep_client_deallocate(struct prep_client *c, struct prep_server *s, const char *name,
                           size_t len, struct evbuffer *to_client)
{
    if (s->broken)
        return PREP_DESYNC;
    if ((c->entries > 0 && c->server != s) ||
        (s->tail != NULL && s->tail->client != NULL && s->tail->client != c))
        return PREP_BUSY;
    struct prep_name *n = len > 0 ? prep_name_find(c, name, len) : NULL;
    if (n == NULL || n->spec == NULL || s->batch_open || s->dropping)
        return PREP_WAIT;
    struct prep_entry *e = prep_entry_push(s, c, HOW_FAKE, X_NONE);
    if (e == NULL)
        return PREP_OOM;
    e->fake_type = 'C';
    prep_entry_name(s, e, n, NULL);
    return prep_queue_advance(s, to_client);
}

/* Bind's portal and statement; rest: everything after them, every length in it checked. */
struct bind_msg {
    const char *portal, *stmt;
    size_t portal_len, stmt_len;
    const uint8_t *rest;
    size_t rest_len;
};

static int read_bind(const uint8_t *body, size_t len, struct bind_msg *m)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    m->portal = pkt_get_cstr(&r);
    m->stmt = pkt_get_cstr(&r);
    if (r.failed)
        return PREP_BAD;
    m->rest = body + r.pos;
    m->rest_len = len - r.pos;
    pkt_get_bytes(&r, (size_t)pkt_get_u16(&r) * 2); /* parameter format codes */
    uint16_t nparams = pkt_get_u16(&r);
    for (uint16_t i = 0; i < nparams && !r.failed; i++) {
        uint32_t plen = pkt_get_u32(&r);
        if (plen == 0xffffffffu)
            continue; /* NULL */
        if (plen > PREP_MAX_BODY || pkt_get_bytes(&r, plen) == NULL)
            return PREP_BAD;
    }
    pkt_get_bytes(&r, (size_t)pkt_get_u16(&r) * 2); /* result format codes */
    if (r.failed || pkt_remaining(&r) != 0)
        return PREP_BAD;
    m->portal_len = strlen(m->portal);
    m->stmt_len = strlen(m->stmt);
    return PREP_OK;
}

bool prep_client_bind_changes_settings(const struct prep_client *c, const uint8_t *body, size_t len)
{
    /* Only the names: the rest is read where the Bind goes on (client_bind). */
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    pkt_get_cstr(&r); /* the portal */
    const char *stmt = pkt_get_cstr(&r);
    if (r.failed)
        return false;
    size_t stmt_len = strlen(stmt);
    const struct prep_stmt *st = c->unnamed_spec;
    if (stmt_len > 0) {
        const struct prep_name *n = prep_name_find(c, stmt, stmt_len);
        st = n != NULL ? n->spec : NULL;
    }
    return st != NULL && st->settings;
}

/* Describe and Close: 'S' or 'P' and a name. */
static int read_target(const uint8_t *body, size_t len, uint8_t *kind, const char **name,
                       size_t *name_len)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    *kind = pkt_get_u8(&r);
    *name = pkt_get_cstr(&r);
    if (r.failed || pkt_remaining(&r) != 0)
        return PREP_BAD;
    *name_len = strlen(*name);
    return PREP_OK;
}

/* Where a Bind or Describe 'S' goes: the statement name the server is sent. */
struct target {
    const char *server_name;
    struct prep_slot *slot; /* the cached statement it needs, if any */
    bool failed;            /* pgnear failed the message itself */
    bool barrier;           /* the statement may run DISCARD/DEALLOCATE ALL */
};

static int resolve_named(struct prep_client *c, struct prep_server *s, const char *name, size_t len,
                         struct target *t, struct evbuffer *out)
{
    struct prep_name *n = prep_name_find(c, name, len);
    if (s->barriers > 0 || (n != NULL && prep_earlier(s, n->mod)))
        return PREP_WAIT;
    if (n == NULL || n->spec == NULL) {
        if (strncmp(name, PREP_NAME_PREFIX, sizeof(PREP_NAME_PREFIX) - 1) != 0) {
            t->server_name = name; /* the server answers 26000 itself */
            return PREP_OK;
        }
        t->failed = true;
        return prep_fail_batch(c, s, "26000", name, "\" does not exist", out);
    }
    int rc = prep_name_verified(c, s, n, out);
    if (rc == PREP_OK)
        rc = prep_plan_check(c, s, n, out);
    if (rc != PREP_OK)
        return rc;
    struct prep_stmt *st = n->spec;
    struct prep_slot *slot = prep_slot_find(s, st);
    if (slot != NULL && prep_earlier(s, slot->mod))
        return PREP_WAIT;
    if (st->stale && (slot == NULL || !slot->spec)) {
        size_t elen = 0;
        uint8_t *error =
            prep_build_error("0A000", STALE_PLAN_MESSAGE, "", "", STALE_PLAN_ROUTINE, &elen);
        t->failed = true;
        return prep_fail_batch_error(c, s, error, elen, out);
    }
    if ((slot == NULL || !slot->spec) && st->described)
        return prep_verify_send(c, s, st, out);
    if (slot == NULL || !slot->spec) {
        struct prep_entry *e = prep_parse_into_cache(c, s, HOW_SKIP, st, out);
        if (e == NULL)
            return PREP_OOM;
        slot = e->slot;
    }
    prep_slot_touch(s, slot);
    t->slot = slot;
    t->server_name = st->name;
    t->barrier = st->barrier;
    return PREP_OK;
}

/* Whether the server will hold the client's unnamed statement, nothing of either unanswered. */
static bool unnamed_in_step(const struct prep_client *c, const struct prep_server *s)
{
    return !prep_earlier(s, c->unnamed_mod) && !prep_earlier(s, s->unnamed_mod) &&
           s->unnamed_spec_known && s->unnamed_spec == c->unnamed_spec;
}

/*
 * The unnamed statement: the server must hold the client's, or none when
 * the client has none (so that the server answers 26000 as PostgreSQL).
 */
static int resolve_unnamed(struct prep_client *c, struct prep_server *s, struct target *t,
                           struct evbuffer *out)
{
    struct prep_stmt *u = c->unnamed_spec;
    t->server_name = "";
    t->barrier = u != NULL && u->barrier;
    if (unnamed_in_step(c, s))
        return PREP_OK;
    if (prep_earlier(s, c->unnamed_mod) || prep_earlier(s, s->unnamed_mod))
        return PREP_WAIT;
    struct prep_entry *e =
        u != NULL ? prep_parse_send(c, s, HOW_SKIP, "", u, out) : prep_send_close(c, s, "", out);
    if (e == NULL)
        return PREP_OOM;
    prep_entry_server_unnamed(s, e, u);
    return PREP_OK;
}

/*
 * A statement whose text is "EXECUTE" of the client's (prep_parse.c's
 * parse_execute): the server that describes or binds it must hold the one
 * it runs, parsed there first where it lacks it (SKIP, in the client's
 * batch: its error is the client's, as directly).
 */
static int resolve_runs(struct prep_client *c, struct prep_server *s, const char *name, size_t len,
                        struct evbuffer *out)
{
    const struct prep_name *n = len > 0 ? prep_name_find(c, name, len) : NULL;
    const struct prep_stmt *outer = len == 0 ? c->unnamed_spec : n != NULL ? n->spec : NULL;
    if (outer == NULL || outer->runs == NULL)
        return PREP_OK;
    struct prep_slot *slot = prep_slot_find(s, outer->runs);
    if (s->barriers > 0 || (slot != NULL && prep_earlier(s, slot->mod)))
        return PREP_WAIT;
    return prep_runs_ready(c, s, outer, out) ? PREP_OK : PREP_OOM;
}

static int resolve(struct prep_client *c, struct prep_server *s, const char *name, size_t len,
                   struct target *t, struct evbuffer *out)
{
    memset(t, 0, sizeof(*t));
    int rc = resolve_runs(c, s, name, len, out);
    if (rc != PREP_OK)
        return rc;
    return len == 0 ? resolve_unnamed(c, s, t, out) : resolve_named(c, s, name, len, t, out);
}

static int client_bind(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                       size_t len, struct evbuffer *out)
{
    struct bind_msg m;
    struct target t;
    if (read_bind(body, len, &m) != PREP_OK)
        return PREP_BAD;
    int rc = resolve(c, s, m.stmt, m.stmt_len, &t, out);
    if (rc != PREP_OK || t.failed)
        return rc;
    if (m.stmt_len == 0 && t.server_name[0] == '\0') {
        /* the unnamed statement: the server is sent the Bind as it came */
        if (prep_forward(s, 'B', body, len, out) != PREP_OK)
            return PREP_OOM;
    } else {
        const struct pkt_piece bind[] = {{m.portal, m.portal_len + 1}, /* with its NUL */
                                         {t.server_name, strlen(t.server_name) + 1},
                                         {m.rest, m.rest_len}};
        if (pkt_add_pieces(out, 'B', bind, sizeof(bind) / sizeof(bind[0])) != 0)
            return PREP_OOM;
        s->flushed = false;
        s->batch_sent = true;
    }
    struct prep_entry *e = prep_entry_push(s, c, HOW_FORWARD, X_BIND);
    if (e == NULL)
        return PREP_OOM;
    if (t.slot != NULL)
        prep_entry_slot(s, e, t.slot, false, false);
    s->barrier_execute |= t.barrier;
    return PREP_OK;
}

static int client_describe(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                           size_t len, struct evbuffer *out)
{
    uint8_t kind;
    const char *name;
    size_t nlen;
    struct target t;
    if (read_target(body, len, &kind, &name, &nlen) != PREP_OK)
        return PREP_BAD;
    if (kind != 'S') /* a portal, or a kind the server will refuse */
        return prep_forward_entry(c, s, 'D', body, len, X_DESC_P, out) ? PREP_OK : PREP_OOM;
    int rc = resolve(c, s, name, nlen, &t, out);
    if (rc != PREP_OK || t.failed)
        return rc;
    if (pkt_add_target(out, 'D', 'S', t.server_name, strlen(t.server_name)) != 0)
        return PREP_OOM;
    s->flushed = false;
    s->batch_sent = true;
    struct prep_entry *e = prep_entry_push(s, c, HOW_FORWARD, X_DESC_S);
    if (e == NULL)
        return PREP_OOM;
    if (t.slot != NULL)
        prep_entry_slot(s, e, t.slot, false, false);
    return PREP_OK;
}

/* Close 'S': answered by pgnear, the statement kept in the server's cache. */
static int client_close(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                        size_t len, struct evbuffer *out)
{
    uint8_t kind;
    const char *name;
    size_t nlen;
    if (read_target(body, len, &kind, &name, &nlen) != PREP_OK)
        return PREP_BAD;
    if (kind != 'S')
        return prep_forward_entry(c, s, 'C', body, len, X_CLOSE, out) ? PREP_OK : PREP_OOM;
    struct prep_entry *e = prep_entry_push(s, c, HOW_FAKE, X_NONE);
    if (e == NULL)
        return PREP_OOM;
    e->fake_type = '3';
    struct prep_name *n = nlen > 0 ? prep_name_find(c, name, nlen) : NULL;
    if (nlen == 0)
        prep_entry_client_unnamed(s, e, NULL);
    else if (n != NULL) /* even with no statement now: an earlier Close may be skipped */
        prep_entry_name(s, e, n, NULL);
    return PREP_OK;
}

static int client_execute(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                          size_t len, struct evbuffer *out)
{
    struct prep_entry *e = prep_forward_entry(c, s, 'E', body, len, X_EXEC, out);
    if (e == NULL)
        return PREP_OOM;
    if (s->barrier_execute)
        prep_entry_barrier(s, e);
    return PREP_OK;
}

static int client_sync(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                       size_t len, struct evbuffer *out)
{
    if (s->copy_in) /* the COPY IN swallows it */
        return prep_forward(s, 'S', body, len, out);
    if (!s->dropping && prep_make_room(c, s, 0, out) != PREP_OK)
        return PREP_OOM;
    struct prep_entry *e = prep_forward_entry(c, s, 'S', body, len, X_SYNC, out);
    if (e == NULL)
        return PREP_OOM;
    s->last_sync = e->seq;
    s->batch_open = s->batch_sent = s->dropping = s->barrier_execute = false;
    return PREP_OK;
}

/*
 * The Query on to the server as it came: moved out of the client's input
 * where the caller gave it (prep_client_message_from), else copied.
 */
static int query_forward(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                         size_t len, struct evbuffer *out)
{
    if (c->query_from == NULL)
        return prep_forward(s, 'Q', body, len, out);
    prep_forward_note(s, 'Q');
    size_t n = PKT_HEADER_LEN + len;
    if (evbuffer_remove_buffer(c->query_from, out, n) != (int)n)
        return PREP_OOM;
    c->query_moved = true;
    return PREP_OK;
}

/*
 * The statement st on s for a Query's EXECUTE, Parsed first where s lacks
 * it, in a batch of pgnear's own ended by its own Sync (HOW_CHECK: unseen,
 * and uncounted by the caller's tracker), so that the Query runs whatever
 * the Parse did (a failed one's error is the client's).  No plan check
 * nor comparison of descriptions: the Query's answer describes its rows.
 */
static struct prep_slot *execute_slot(struct prep_client *c, struct prep_server *s,
                                      struct prep_stmt *st, struct evbuffer *out)
{
    struct prep_slot *slot = prep_slot_find(s, st);
    if (slot == NULL || !slot->spec) {
        struct prep_entry *e = prep_parse_into_cache(c, s, HOW_SKIP, st, out), *z = NULL;
        if (e != NULL && prep_put_msg(out, 'S', NULL, 0) == PREP_OK)
            z = prep_entry_push(s, c, HOW_CHECK, X_SYNC);
        if (z == NULL)
            return NULL;
        slot = e->slot;
        s->last_sync = z->seq;
        s->flushed = true;
    }
    prep_slot_touch(s, slot);
    return slot;
}

/*
 * A Query "EXECUTE name ..." of the client's protocol-level statement (a
 * SQL word for it, as directly): the server's name in its place, the rest
 * of the text as it came.  *slot: the statement the Query needs; NULL and
 * PREP_OK: not such a Query, it goes as it came.
 */
static int query_execute(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                         size_t len, struct prep_slot **slot, struct evbuffer *out)
{
    char name[PREP_NAME_KEY + 2];
    size_t rest;
    *slot = NULL;
    /*
     * Not in a failed transaction (25P02): as it came.  A batch still open
     * (Parse, Describe, Flush) ends with the Query as with pgnear's Sync.
     */
    if (s->copy_in || (s->tx->status != 'I' && s->tx->status != 'T') ||
        !prep_execute_name((const char *)body, len - 1, name, sizeof(name), &rest))
        return PREP_OK;
    struct prep_name *n = prep_name_find(c, name, strlen(name));
    if (n == NULL || n->spec == NULL || n->spec->stale)
        return PREP_OK; /* not the client's: a SQL PREPARE's (it pinned), or the server's 26000 */
    if (s->barriers > 0 || prep_earlier(s, n->mod))
        return PREP_WAIT;
    struct prep_slot *found = prep_slot_find(s, n->spec);
    if (found != NULL && prep_earlier(s, found->mod))
        return PREP_WAIT;
    struct prep_slot *need = execute_slot(c, s, n->spec, out);
    if (need == NULL)
        return PREP_OOM;
    const char *server_name = need->stmt->name;
    const struct pkt_piece query[] = {{"EXECUTE \"", 9},
                                      {server_name, strlen(server_name)},
                                      {"\"", 1},
                                      {body + rest, len - rest}}; /* with its NUL */
    if (pkt_add_pieces(out, 'Q', query, sizeof(query) / sizeof(query[0])) != 0)
        return PREP_OOM;
    prep_forward_note(s, 'Q');
    *slot = need;
    return PREP_OK;
}

/* A Query drops the unnamed statement, the client's and the server's, whatever it runs. */
static int client_query(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                        size_t len, struct evbuffer *out)
{
    struct prep_slot *slot;
    if (len == 0 || memchr(body, '\0', len) != body + len - 1)
        return PREP_BAD;
    /* Read before it goes: once moved, body is the server output's to change. */
    bool barrier = prep_text_may_deallocate((const char *)body, len);
    int rc = query_execute(c, s, body, len, &slot, out);
    if (rc != PREP_OK)
        return rc;
    if (slot == NULL && query_forward(c, s, body, len, out) != PREP_OK)
        return PREP_OOM;
    struct prep_entry *e = prep_entry_push(s, c, HOW_FORWARD, X_QUERY);
    if (e == NULL)
        return PREP_OOM;
    if (slot != NULL)
        prep_entry_slot(s, e, slot, false, false);
    prep_entry_client_unnamed(s, e, NULL);
    prep_entry_server_unnamed(s, e, NULL);
    /* It ends a batch before it, as a Sync would (tx_track.h): its answer is the batch's end. */
    s->batch_open = s->batch_sent = s->barrier_execute = false;
    if (barrier)
        prep_entry_barrier(s, e);
    return PREP_OK;
}

/* CopyDone, CopyFail: ends the COPY IN going on, or one a CopyInResponse will start. */
static int client_copy_end(struct prep_client *c, struct prep_server *s, uint8_t type,
                           const uint8_t *body, size_t len, struct evbuffer *out)
{
    if (s->copy_in) {
        s->copy_in = false;
        return prep_forward(s, type, body, len, out);
    }
    return prep_forward_entry(c, s, type, body, len, X_MARK, out) ? PREP_OK : PREP_OOM;
}

static int client_dispatch(struct prep_client *c, struct prep_server *s, uint8_t type,
                           const uint8_t *body, size_t len, struct evbuffer *out)
{
    switch (type) {
    case 'P':
        return prep_client_parse(c, s, body, len, out);
    case 'B':
        return client_bind(c, s, body, len, out);
    case 'D':
        return client_describe(c, s, body, len, out);
    case 'C':
        return client_close(c, s, body, len, out);
    case 'E':
        return client_execute(c, s, body, len, out);
    case 'S':
        return client_sync(c, s, body, len, out);
    case 'Q':
        return client_query(c, s, body, len, out);
    case 'F':
        return prep_forward_entry(c, s, type, body, len, X_QUERY, out) ? PREP_OK : PREP_OOM;
    case 'c':
    case 'f':
        return client_copy_end(c, s, type, body, len, out);
    default: /* Flush, CopyData */
        return prep_forward(s, type, body, len, out);
    }
}

int prep_client_message_from(struct prep_client *c, struct prep_server *s, uint8_t type,
                             const uint8_t *body, size_t len, struct evbuffer *from, bool *moved,
                             struct evbuffer *to_server, struct evbuffer *to_client)
{
    c->query_from = type == 'Q' ? from : NULL;
    c->query_moved = false;
    int rc = prep_client_message(c, s, type, body, len, to_server, to_client);
    *moved = c->query_moved;
    c->query_from = NULL;
    return rc;
}

int prep_client_message(struct prep_client *c, struct prep_server *s, uint8_t type,
                        const uint8_t *body, size_t len, struct evbuffer *to_server,
                        struct evbuffer *to_client)
{
    int batch = prep_client_type(type);
    if (s->broken)
        return PREP_DESYNC;
    if (batch < 0 || len > PREP_MAX_BODY)
        return PREP_BAD;
    if ((c->entries > 0 && c->server != s) ||
        (s->tail != NULL && s->tail->client != NULL && s->tail->client != c))
        return PREP_BUSY;
    if (s->dropping && type != 'S') /* the server skips to the Sync anyway */
        return type == 'H' ? prep_forward(s, type, body, len, to_server) : PREP_OK;
    int rc = client_dispatch(c, s, type, body, len, to_server);
    if (rc == PREP_WAIT) {
        s->stats.waits++;
        s->reg->stats.waits++;
        if (!s->flushed && to_server != NULL && prep_put_msg(to_server, 'H', NULL, 0) != PREP_OK)
            rc = PREP_OOM;
        s->flushed = true;
    }
    if (rc == PREP_OK) {
        s->batch_open |= batch == 1;
        rc = prep_queue_advance(s, to_client);
    }
    if (rc == PREP_OOM)
        s->broken = true;
    return rc;
}

/*
 * Whether message type (body, len) would go to the server as it came and
 * nothing else with it, whatever the state it changes: the handlers that
 * write nothing but the message itself (prep_forward) on these paths.
 */
static bool client_passes_whole(const struct prep_client *c, const struct prep_server *s,
                                uint8_t type, const uint8_t *body, size_t len)
{
    char name[PREP_NAME_KEY + 2];
    switch (type) {
    case 'E':
    case 'H':
        return true;
    case 'S': /* no eviction's Close in front of it */
        return s->copy_in || s->cached <= s->capacity;
    case 'D':
    case 'C': /* a portal's: a statement's is rewritten or answered by pgnear */
        return len > 0 && body[0] == 'P';
    case 'B': { /* of the unnamed statement, which the server holds already */
        const uint8_t *portal_end = memchr(body, '\0', len);
        return portal_end != NULL && portal_end + 1 < body + len && portal_end[1] == '\0' &&
               unnamed_in_step(c, s) && (c->unnamed_spec == NULL || !c->unnamed_spec->runs);
    }
    case 'P': { /* the unnamed statement, but a DEALLOCATE or an EXECUTE (prep_client_parse) */
        size_t rest, text_len = len > 1 ? strnlen((const char *)body + 1, len - 1) : 0;
        return len > 1 && body[0] == '\0' &&
               !prep_deallocate_name((const char *)body + 1, text_len, name, sizeof(name)) &&
               !prep_execute_name((const char *)body + 1, text_len, name, sizeof(name), &rest);
    }
    default:
        return false;
    }
}

bool prep_client_take_whole(struct prep_client *c, struct prep_server *s, uint8_t type,
                            const uint8_t *body, size_t len, struct evbuffer *to_client)
{
    if (s->broken || s->dropping || len > PREP_MAX_BODY ||
        !client_passes_whole(c, s, type, body, len))
        return false;
    /* No output: prep_forward leaves the message to the caller. */
    return prep_client_message(c, s, type, body, len, NULL, to_client) == PREP_OK;
}
