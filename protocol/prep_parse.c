/*
 * prep_parse.c — a client's Parse under transaction pooling (prep_int.h):
 * answered from a server's cache, sent there (the cache made room for it,
 * its plan verified where the client was told its description), failed
 * on a name taken, or taken as a DEALLOCATE; and what every client message
 * shares: its type, and forwarding it with its entry.
 */
#include "protocol/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/prep_int.h"

/* ---- the client's Parse ---- */

struct parse_msg {
    const char *name;
    size_t name_len;
    struct stmt_src src;
    struct prep_stmt *runs; /* an "EXECUTE" of the client's statement: that one (parse_execute) */
};

static int read_parse(const uint8_t *body, size_t len, uint64_t context, struct parse_msg *m)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    m->name = pkt_get_cstr(&r);
    m->src.text = pkt_get_cstr(&r);
    m->src.ntypes = pkt_get_u16(&r);
    m->src.types = pkt_get_bytes(&r, (size_t)m->src.ntypes * 4);
    if (r.failed || pkt_remaining(&r) != 0)
        return PREP_BAD;
    m->name_len = strlen(m->name);
    m->src.text_len = strlen(m->src.text);
    m->src.context = context;
    m->runs = NULL;
    return PREP_OK;
}

/* The registry's statement for m, with a reference; it runs m->runs where m's text EXECUTEs it. */
static struct prep_stmt *parse_stmt(struct prep_server *s, const struct parse_msg *m)
{
    struct prep_stmt *st = prep_registry_get(s->reg, &m->src);
    if (st != NULL && m->runs != NULL && st->runs == NULL)
        prep_stmt_set(s->reg, &st->runs, m->runs);
    return st;
}

/*
 * A Parse of "EXECUTE name ..." where name is the client's protocol-level
 * statement (asyncpg's fetchval('EXECUTE name'); most drivers send every
 * query so): as in a simple Query (prep_client.c's query_execute), the
 * server's name in place of the client's, the rest of the text as it came,
 * and the statement made of that text runs the client's (st->runs), which
 * a server is given before it describes or binds it (prep_client.c).
 * *body and *len: the Parse rewritten (*fresh, the caller frees it), or as
 * they came when it is no such Parse.
 */
static int parse_execute(struct prep_client *c, struct prep_server *s, struct parse_msg *m,
                         const uint8_t **body, size_t *len, uint8_t **fresh)
{
    char name[PREP_NAME_KEY + 2];
    size_t rest;
    *fresh = NULL;
    if (!prep_execute_name(m->src.text, m->src.text_len, name, sizeof(name), &rest))
        return PREP_OK;
    struct prep_name *n = prep_name_find(c, name, strlen(name));
    if (n == NULL || n->spec == NULL || n->spec->stale)
        return PREP_OK; /* a SQL PREPARE's (it pinned), or the server's 26000 */
    if (s->barriers > 0 || prep_earlier(s, n->mod))
        return PREP_WAIT;
    const char *server_name = n->spec->name;
    size_t head = m->name_len + 1, tail = (size_t)(*body + *len - (const uint8_t *)m->src.text);
    size_t text_len = 10 + strlen(server_name) + m->src.text_len - rest;
    size_t n_len = head + text_len + tail - m->src.text_len;
    uint8_t *b = malloc(n_len);
    if (b == NULL)
        return PREP_OOM;
    memcpy(b, *body, head);
    int w = snprintf((char *)b + head, text_len + 1, "EXECUTE \"%s\"%s", server_name,
                     m->src.text + rest);
    memcpy(b + head + (size_t)w, m->src.text + m->src.text_len, tail - m->src.text_len);
    struct prep_stmt *runs = n->spec;
    if (read_parse(b, n_len, c->context, m) != PREP_OK) {
        free(b);
        return PREP_BAD;
    }
    m->runs = runs;
    *body = *fresh = b;
    *len = n_len;
    return PREP_OK;
}

void prep_forward_note(struct prep_server *s, uint8_t type)
{
    s->flushed = type == 'H' || type == 'S';
    s->batch_sent |= prep_client_type(type) == 1;
}

/* The client's message as it came (out NULL: the caller moves it, prep_client_take_whole). */
int prep_forward(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len,
                 struct evbuffer *out)
{
    prep_forward_note(s, type);
    return out == NULL ? PREP_OK : prep_put_msg(out, type, body, len);
}

struct prep_entry *prep_forward_entry(struct prep_client *c, struct prep_server *s, uint8_t type,
                                      const uint8_t *body, size_t len, uint8_t expect,
                                      struct evbuffer *out)
{
    if (prep_forward(s, type, body, len, out) != PREP_OK)
        return NULL;
    return prep_entry_push(s, c, HOW_FORWARD, expect);
}

/*
 * Room for need more statements: the least recently used ones that no
 * unanswered message needs are closed (in line: before what comes next).
 * With none such the cache stays over its capacity.
 */
int prep_make_room(struct prep_client *c, struct prep_server *s, size_t need, struct evbuffer *out)
{
    while (s->cached + need > s->capacity) {
        struct prep_slot *victim = s->oldest;
        while (victim != NULL && (victim->refs > 0 || !victim->real || victim->mod != 0))
            victim = victim->newer;
        if (victim == NULL)
            return PREP_OK;
        struct prep_entry *e = prep_send_close(c, s, victim->stmt->name, out);
        if (e == NULL)
            return PREP_OOM;
        prep_entry_slot(s, e, victim, true, false);
        s->stats.evictions++;
        s->reg->stats.evictions++;
    }
    return PREP_OK;
}

/* Parse of st to s (how: FORWARD for the client's Parse, SKIP for one of pgnear's). */
struct prep_entry *prep_parse_into_cache(struct prep_client *c, struct prep_server *s, uint8_t how,
                                         struct prep_stmt *st, struct evbuffer *out)
{
    if (prep_make_room(c, s, 1, out) != PREP_OK)
        return NULL;
    struct prep_slot *slot = prep_slot_get(s, st);
    if (slot == NULL)
        return NULL;
    struct prep_entry *e = prep_parse_send(c, s, how, st->name, st, out);
    if (e == NULL) {
        prep_slot_release(s, slot);
        return NULL;
    }
    prep_entry_slot(s, e, slot, true, true);
    s->stats.parses_sent++;
    s->reg->stats.parses_sent++;
    return e;
}

/*
 * Before s is sent a Parse of st: the statement st's text EXECUTEs
 * (parse_execute), parsed there first where s lacks it.  PostgreSQL reads
 * such a text's description as it parses it (NoData where the statement
 * is missing, and 0A000 at Bind once it is there), so it must be there at
 * Parse as at Describe and Bind.  False: out of memory.
 */
bool prep_runs_ready(struct prep_client *c, struct prep_server *s, const struct prep_stmt *st,
                     struct evbuffer *out)
{
    struct prep_stmt *runs = st->runs;
    if (runs == NULL || runs->stale)
        return true;
    struct prep_slot *slot = prep_slot_find(s, runs);
    if (slot != NULL && slot->spec) {
        prep_slot_touch(s, slot);
        return true;
    }
    return prep_parse_into_cache(c, s, HOW_SKIP, runs, out) != NULL;
}

struct prep_entry *prep_parse_send(struct prep_client *c, struct prep_server *s, uint8_t how,
                                   const char *name, const struct prep_stmt *st,
                                   struct evbuffer *out)
{
    return prep_runs_ready(c, s, st, out) ? prep_send_parse(c, s, how, name, st, out) : NULL;
}

/*
 * A statement whose description a client was told (st->described), about
 * to be planned on s afresh: a table changed since may make that plan
 * return other types than the client decodes by (postgres.js caches the
 * description of each statement and describes it once).  PostgreSQL
 * refuses such a plan (0A000) where the client's own statement lives, so
 * pgnear asks before anything runs: the Parse the client's message needs
 * anyway (SKIP: its error is the client's), a Describe of pgnear's own
 * (CHECK, answers compared with st->desc, verify_answer) and a Flush,
 * within the client's batch (no Sync: nothing of the batch changes).
 * PREP_WAIT: asked; the message, presented again once the answer came,
 * finds the slot checked or VERIFY_WRONG (prep_verify_drop).  One round trip
 * per statement and server connection, the first time it is parsed there.
 */
int prep_verify_send(struct prep_client *c, struct prep_server *s, struct prep_stmt *st,
                     struct evbuffer *out)
{
    struct prep_entry *e = prep_parse_into_cache(c, s, HOW_SKIP, st, out), *d = NULL;
    if (e == NULL)
        return PREP_OOM;
    if (pkt_add_target(out, 'D', 'S', st->name, strlen(st->name)) == 0)
        d = prep_entry_push(s, c, HOW_CHECK, X_DESC_S);
    if (d == NULL)
        return PREP_OOM;
    d->check = CHECK_VERIFY;
    prep_entry_slot(s, d, e->slot, false, false);
    e->slot->verify = VERIFY_ASKED;
    s->stats.verifies++;
    s->reg->stats.verifies++;
    return PREP_WAIT;
}

/*
 * s planned slot's statement otherwise than clients were told: it is
 * closed there (SKIP), and its text leaves the registry's lookups
 * (superseded; retired, with retire: the names that hold it get 0A000
 * from now on, resolve_named).  PREP_OK or PREP_OOM.
 */
int prep_verify_drop(struct prep_client *c, struct prep_server *s, struct prep_slot *slot,
                     bool retire, struct evbuffer *out)
{
    struct prep_stmt *st = slot->stmt;
    struct prep_entry *e = prep_send_close(c, s, st->name, out);
    if (e == NULL)
        return PREP_OOM;
    prep_entry_slot(s, e, slot, true, false);
    slot->verify = VERIFY_NONE;
    if (retire) {
        prep_stmt_retire(s->reg, st);
    } else if (!st->superseded && !st->stale) {
        st->superseded = true;
        st->proven = false;
        s->reg->stats.superseded++;
    }
    return PREP_OK;
}

static int parse_unnamed(struct prep_client *c, struct prep_server *s, const struct parse_msg *m,
                         const uint8_t *body, size_t len, struct evbuffer *out)
{
    struct prep_stmt *st = parse_stmt(s, m);
    if (st == NULL)
        return PREP_OOM;
    struct prep_entry *e = prep_runs_ready(c, s, st, out)
                               ? prep_forward_entry(c, s, 'P', body, len, X_PARSE, out)
                               : NULL;
    if (e != NULL) {
        prep_entry_client_unnamed(s, e, st);
        prep_entry_server_unnamed(s, e, st);
    }
    prep_stmt_unref(s->reg, st);
    return e != NULL ? PREP_OK : PREP_OOM;
}

/* A named Parse once it is known to be taken: from the cache, or sent. */
static int parse_named(struct prep_client *c, struct prep_server *s, const struct parse_msg *m,
                       struct prep_stmt *st, struct prep_slot *slot, struct evbuffer *out)
{
    struct prep_name *n = prep_name_get(c, m->name, m->name_len);
    if (n == NULL)
        return PREP_OOM;
    struct prep_entry *e;
    if (slot != NULL && slot->spec) {
        if ((e = prep_entry_push(s, c, HOW_FAKE, X_NONE)) != NULL) {
            e->fake_type = '1';
            prep_entry_slot(s, e, slot, false, false);
            prep_slot_touch(s, slot);
            s->stats.parses_skipped++;
            s->reg->stats.parses_skipped++;
        }
    } else {
        e = prep_parse_into_cache(c, s, HOW_FORWARD, st, out);
    }
    if (e == NULL) {
        prep_name_release(c, n);
        return PREP_OOM;
    }
    prep_entry_name(s, e, n, st);
    n->replan = e->how == HOW_FAKE ? REPLAN_DUE : REPLAN_NONE;
    return PREP_OK;
}

/*
 * A Parse of a name taken.  PostgreSQL parses and analyses the text before
 * it finds the name taken: a text that fails fails with its own error.  So
 * the server parses it as its unnamed statement first (SKIP: an error
 * reaches the client, and the server skips the rest), then pgnear fails
 * the batch with 42P05.
 */
static int parse_taken(struct prep_client *c, struct prep_server *s, const struct parse_msg *m,
                       struct prep_stmt *st, struct evbuffer *out)
{
    struct prep_entry *e = prep_parse_send(c, s, HOW_SKIP, "", st, out);
    if (e == NULL)
        return PREP_OOM;
    prep_entry_server_unnamed(s, e, st);
    return prep_fail_batch(c, s, "42P05", m->name, "\" already exists", out);
}

/*
 * An unnamed Parse of "DEALLOCATE name" of one of the client's names
 * (psycopg 3 evicts from its cache so, by the extended protocol): the
 * server's statement is others' too and stays, so the server parses an
 * empty DO in its place (its answers are a DEALLOCATE's, the tag aside),
 * and the name goes once that is parsed.
 */
static int parse_deallocate(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                            struct evbuffer *out)
{
    static const char nothing[] = "DO $$BEGIN END$$";
    uint8_t body[sizeof(nothing) + 3] = {0};
    memcpy(body + 1, nothing, sizeof(nothing));
    struct parse_msg m;
    int rc = read_parse(body, sizeof(body), c->context, &m);
    if (rc == PREP_OK)
        rc = parse_unnamed(c, s, &m, body, sizeof(body), out);
    if (rc == PREP_OK)
        prep_entry_name(s, s->tail, n, NULL);
    return rc;
}

/*
 * A named Parse of st, planned on s afresh where clients were told st's
 * description (prep_verify_send): when s plans it otherwise, st is superseded
 * and the name takes the text parsed afresh, as the client's own Parse
 * would have directly.
 */
static int parse_checked(struct prep_client *c, struct prep_server *s, const struct parse_msg *m,
                         struct prep_stmt *st, struct prep_slot *slot, struct evbuffer *out)
{
    bool planned = slot != NULL && slot->spec;
    if (planned && slot->verify == VERIFY_ASKED)
        return PREP_WAIT;
    if (!(planned && slot->verify == VERIFY_WRONG))
        return st->described && !planned ? prep_verify_send(c, s, st, out)
                                         : parse_named(c, s, m, st, slot, out);
    if (prep_verify_drop(c, s, slot, false, out) != PREP_OK)
        return PREP_OOM;
    struct prep_stmt *fresh = parse_stmt(s, m);
    if (fresh == NULL)
        return PREP_OOM;
    int rc = parse_named(c, s, m, fresh, NULL, out);
    prep_stmt_unref(s->reg, fresh);
    return rc;
}

static int client_parse(struct prep_client *c, struct prep_server *s, const struct parse_msg *mp,
                        const uint8_t *body, size_t len, struct evbuffer *out);

int prep_client_parse(struct prep_client *c, struct prep_server *s, const uint8_t *body, size_t len,
                      struct evbuffer *out)
{
    struct parse_msg m;
    uint8_t *fresh;
    if (read_parse(body, len, c->context, &m) != PREP_OK)
        return PREP_BAD;
    int rc = parse_execute(c, s, &m, &body, &len, &fresh);
    if (rc == PREP_OK)
        rc = client_parse(c, s, &m, body, len, out);
    free(fresh);
    return rc;
}

static int client_parse(struct prep_client *c, struct prep_server *s, const struct parse_msg *mp,
                        const uint8_t *body, size_t len, struct evbuffer *out)
{
    struct parse_msg m = *mp;
    char dealloc[PREP_NAME_KEY + 2];
    struct prep_name *n;
    if (m.name_len == 0 &&
        prep_deallocate_name(m.src.text, m.src.text_len, dealloc, sizeof(dealloc)) &&
        (n = prep_name_find(c, dealloc, strlen(dealloc))) != NULL && n->spec != NULL)
        return prep_earlier(s, n->mod) ? PREP_WAIT : parse_deallocate(c, s, n, out);
    if (m.name_len == 0)
        return parse_unnamed(c, s, &m, body, len, out);
    n = prep_name_find(c, m.name, m.name_len);
    if (s->barriers > 0 || (n != NULL && prep_earlier(s, n->mod)))
        return PREP_WAIT;
    struct prep_stmt *st = parse_stmt(s, &m);
    if (st == NULL)
        return PREP_OOM;
    struct prep_slot *slot = prep_slot_find(s, st);
    int rc;
    if (n != NULL && n->spec != NULL && !(c->replaying && n->spec == st))
        rc = parse_taken(c, s, &m, st, out);
    else if (slot != NULL && prep_earlier(s, slot->mod))
        rc = PREP_WAIT;
    else
        rc = parse_checked(c, s, &m, st, slot, out);
    prep_stmt_unref(s->reg, st);
    return rc;
}

int prep_client_parse_known(struct prep_client *c, const uint8_t *body, size_t len)
{
    struct parse_msg m;
    if (len > PREP_MAX_BODY || read_parse(body, len, c->context, &m) != PREP_OK)
        return PREP_BAD;
    if (m.name_len == 0 || c->entries > 0)
        return PREP_WAIT;
    struct prep_stmt *st = prep_registry_find(c->reg, &m.src);
    struct prep_name *n = prep_name_find(c, m.name, m.name_len);
    if (st == NULL || !st->proven || (n != NULL && (n->spec != NULL || n->real != NULL)))
        return PREP_WAIT;
    if ((n = prep_name_get(c, m.name, m.name_len)) == NULL)
        return PREP_OOM;
    prep_stmt_set(c->reg, &n->real, st);
    prep_name_set_spec(c, n, st);
    n->mod = 0;
    n->replan = REPLAN_DUE;
    c->reg->stats.parses_skipped++;
    return PREP_OK;
}
