/*
 * prep_server.c — the server's messages under transaction pooling
 * (prepared.h, prep_int.h): each matched to the head of the queue of
 * answers, passed on or kept from the client, and what it settles; and
 * clients and servers made, counted and freed.
 */
#include "protocol/prepared.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/prep_desc.h"
#include "protocol/prep_int.h"

/* ---- the server's messages ---- */

enum answer { ANS_PART, ANS_END, ANS_ERROR, ANS_BAD };

/* What the server's message of type is to the head entry e. */
static int answer_kind(struct prep_entry *e, uint8_t type)
{
    switch (e->expect) {
    case X_PARSE:
        return type == '1' ? ANS_END : type == 'E' ? ANS_ERROR : ANS_BAD;
    case X_BIND:
        return type == '2' && e->how != HOW_FAIL ? ANS_END : type == 'E' ? ANS_ERROR : ANS_BAD;
    case X_CLOSE:
        return type == '3' ? ANS_END : type == 'E' ? ANS_ERROR : ANS_BAD;
    case X_DESC_S:
        if (type == 'E')
            return ANS_ERROR;
        if (e->step == 0)
            return type == 't' ? (e->step = 1, ANS_PART) : ANS_BAD;
        return type == 'T' || type == 'n' ? ANS_END : ANS_BAD;
    case X_DESC_P:
        return type == 'T' || type == 'n' ? ANS_END : type == 'E' ? ANS_ERROR : ANS_BAD;
    case X_EXEC:
        if (type == 'C' || type == 'I' || type == 's')
            return ANS_END;
        return type == 'E' ? ANS_ERROR : type == 'Z' ? ANS_BAD : ANS_PART;
    case X_SYNC:
        return type == 'Z' ? ANS_END : type == 'E' ? ANS_PART : ANS_BAD;
    case X_QUERY:
        return type == 'Z' ? ANS_END : ANS_PART;
    default:
        return ANS_BAD;
    }
}

static int deliver(struct evbuffer *to_client, uint8_t type, const uint8_t *body, size_t len)
{
    return to_client != NULL ? prep_put_msg(to_client, type, body, len) : PREP_OK;
}

/*
 * A client's Describe 'S' of st is answered: the first answer a client has
 * is what st's plans must be described as everywhere (prep_verify_send).
 */
static void told(struct prep_server *s, struct prep_stmt *st, uint8_t type, const uint8_t *body,
                 size_t len)
{
    if (st->described || type == 'E')
        return;
    s->described = prep_desc_hash(type == 't' ? PREP_DESC_BASIS : s->described, type, body, len);
    if (type != 't') {
        st->desc = s->described;
        st->described = true;
    }
}

/*
 * prep_verify_send's Describe is answered: the slot's plan is described as its
 * clients were told, or VERIFY_WRONG.  An error (none is expected of a
 * statement just parsed) goes to the client: the server skips its batch.
 */
static int verify_answer(struct prep_server *s, struct prep_entry *e, uint8_t type,
                         const uint8_t *body, size_t len, struct evbuffer *to_client)
{
    struct prep_slot *slot = e->slot;
    if (type == 'E') {
        slot->verify = VERIFY_NONE;
        return e->client != NULL ? deliver(to_client, type, body, len) : PREP_OK;
    }
    s->described = prep_desc_hash(type == 't' ? PREP_DESC_BASIS : s->described, type, body, len);
    if (type != 't')
        slot->verify = s->described == slot->stmt->desc ? VERIFY_NONE : VERIFY_WRONG;
    return PREP_OK;
}

/*
 * The server's message to the client, as the head entry e says.  owed
 * (prep_server_take_whole): not written, *owed set where it goes as it is.
 */
static int pass(struct prep_server *s, struct prep_entry *e, uint8_t type, const uint8_t *body,
                size_t len, struct evbuffer *to_client, bool *owed)
{
    if (e->how == HOW_CHECK && e->check == CHECK_VERIFY)
        return verify_answer(s, e, type, body, len, to_client);
    if (e->how == HOW_FORWARD && e->expect == X_DESC_S && e->slot != NULL && e->client != NULL)
        told(s, e->slot->stmt, type, body, len);
    if (e->how == HOW_CHECK) {
        /* Describe 'S' answers: ParameterDescription, then RowDescription or NoData. */
        if (type == 'E')
            s->check_failed[e->check] = true;
        else if (e->expect == X_DESC_S)
            s->check[e->check] = fnv1a(fnv1a(s->check[e->check], &type, 1), body, len);
        return PREP_OK;
    }
    if (owed != NULL && e->how == HOW_FORWARD && e->client != NULL) {
        *owed = true;
        return PREP_OK;
    }
    if (e->client == NULL || to_client == NULL)
        return PREP_OK;
    if (e->how == HOW_FORWARD || (e->how == HOW_SKIP && type == 'E'))
        return prep_put_msg(to_client, type, body, len);
    if (e->how == HOW_FAIL && type == 'E')
        return evbuffer_add(to_client, e->error, e->error_len) == 0 ? PREP_OK : PREP_OOM;
    return PREP_OK;
}

/* DISCARD ALL, DEALLOCATE ALL: the server's statements are gone, and client c's names. */
static void forget_named(struct prep_server *s, struct prep_client *c)
{
    for (size_t i = 0; i < s->slots.nb; i++) {
        struct prep_link *l = s->slots.b[i], *next;
        for (; l != NULL; l = next) {
            struct prep_slot *slot = (struct prep_slot *)l;
            next = l->next;
            slot->real = false;
            slot->mod = 0;
            prep_slot_set_spec(s, slot, false);
            prep_slot_release(s, slot);
        }
    }
    for (size_t i = 0; c != NULL && i < c->names.nb; i++) {
        struct prep_link *l = c->names.b[i], *next;
        for (; l != NULL; l = next) {
            struct prep_name *n = (struct prep_name *)l;
            next = l->next;
            prep_stmt_set(s->reg, &n->real, NULL);
            prep_name_set_spec(c, n, NULL);
            n->mod = 0;
            prep_name_release(c, n);
        }
    }
}

/* Whether a CommandComplete's tag says the server's statements are all gone. */
static bool tag_forgets(const uint8_t *body, size_t len)
{
    static const char discard[] = "DISCARD ALL", deallocate[] = "DEALLOCATE ALL";
    return (len == sizeof(discard) && memcmp(body, discard, len) == 0) ||
           (len == sizeof(deallocate) && memcmp(body, deallocate, len) == 0);
}

static void check_tag(struct prep_server *s, struct prep_entry *e, const uint8_t *body, size_t len)
{
    if (tag_forgets(body, len))
        forget_named(s, e->client);
}

/*
 * A COPY IN began for the head entry e: the Syncs the client sent behind
 * it up to the COPY's end go to the COPY and are not answered.
 */
static void copy_claim(struct prep_server *s, struct prep_entry *e)
{
    struct prep_entry *x = e->next, *next;
    for (; x != NULL; x = next) {
        next = x->next;
        if (x->expect == X_MARK) {
            prep_entry_free(s, x);
            return;
        }
        if (x->expect == X_SYNC)
            prep_entry_free(s, x);
    }
    s->copy_in = true;
}

/*
 * Is the ErrorResponse body the server's refusal of a statement whose
 * result type changed?  Its SQLSTATE (0A000) and its routine, or its
 * message where the server does not send the routine (lc_messages may
 * translate the message, never the routine).
 */
static bool error_is_stale_plan(const uint8_t *body, size_t len)
{
    struct pktreader r;
    bool code = false, named = false;
    pkt_reader_init(&r, body, len);
    for (uint8_t type; !r.failed && (type = pkt_get_u8(&r)) != 0;) {
        const char *text = pkt_get_cstr(&r);
        if (r.failed)
            return false;
        if (type == 'C')
            code = strcmp(text, "0A000") == 0;
        else if (type == 'R')
            named |= strcmp(text, STALE_PLAN_ROUTINE) == 0;
        else if (type == 'M')
            named |= strcmp(text, STALE_PLAN_MESSAGE) == 0;
    }
    return code && named && !r.failed;
}

/*
 * The head entry e failed: the server skips to the next Sync, and the
 * entries up to it are never answered, the last first.  With no Sync sent
 * yet, the client's messages are dropped until it comes.
 */
static int server_error(struct prep_server *s, struct prep_entry *e, const uint8_t *body,
                        size_t len, struct evbuffer *to_client)
{
    struct prep_entry *z = e->next;
    while (z != NULL && z->expect != X_SYNC)
        z = z->next;
    uint64_t end = z != NULL ? z->seq : UINT64_MAX;
    for (struct prep_entry *x = z != NULL ? z->prev : s->tail, *prev; x != e; x = prev) {
        prev = x->prev;
        prep_entry_discard(s, x, end);
        prep_entry_free(s, x);
    }
    if (z == NULL)
        s->dropping = true;
    if (e->slot != NULL && (e->expect == X_BIND || e->expect == X_DESC_S) &&
        error_is_stale_plan(body, len))
        prep_stmt_retire(s->reg, e->slot->stmt);
    int rc = pass(s, e, 'E', body, len, to_client, NULL);
    prep_entry_fail(s, e);
    prep_entry_free(s, e);
    return rc == PREP_OK ? prep_queue_advance(s, to_client) : rc;
}

static int server_broken(struct prep_server *s, int rc)
{
    s->broken = true;
    return rc;
}

/* prep_server_message's work; owed: see pass(). */
static int server_message(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len,
                          struct evbuffer *to_client, bool *owed)
{
    if (s->broken)
        return PREP_DESYNC;
    if (len > PREP_MAX_BODY)
        return server_broken(s, PREP_DESYNC);
    if (type == 'N' || type == 'S' || type == 'A') /* asynchronous: answer nothing */
        return deliver(to_client, type, body, len);
    struct prep_entry *e = s->head;
    if (e == NULL) /* an ErrorResponse no one asked for is a FATAL one, most likely */
        return type == 'E' ? deliver(to_client, type, body, len) : server_broken(s, PREP_DESYNC);
    int kind = answer_kind(e, type), rc;
    if (kind == ANS_BAD)
        return server_broken(s, PREP_DESYNC);
    if (kind == ANS_ERROR) {
        rc = server_error(s, e, body, len, to_client);
    } else if ((rc = pass(s, e, type, body, len, to_client, owed)) == PREP_OK) {
        if (type == 'C')
            check_tag(s, e, body, len);
        else if (type == 'G' || type == 'W')
            copy_claim(s, e);
        if (kind == ANS_END) {
            prep_entry_settle(s, e);
            prep_entry_free(s, e);
            rc = prep_queue_advance(s, to_client);
        }
    }
    return rc == PREP_OK ? PREP_OK : server_broken(s, rc);
}

int prep_server_message(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len,
                        struct evbuffer *to_client)
{
    return server_message(s, type, body, len, to_client, NULL);
}

/* Whether ending the head entry e would have the queue answer something itself (HOW_FAKE). */
static bool advance_tells(const struct prep_entry *e)
{
    for (const struct prep_entry *x = e->next; x != NULL; x = x->next) {
        if (x->how == HOW_FAKE && x->client != NULL)
            return true;
        if (x->how != HOW_FAKE && x->expect != X_MARK)
            return false;
    }
    return false;
}

bool prep_server_take_whole(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len)
{
    struct prep_entry *e = s->head;
    if (s->broken || len > PREP_MAX_BODY || e == NULL || e->client == NULL ||
        e->how != HOW_FORWARD || type == 'S' || type == 'N' || type == 'A' || type == 'E' ||
        type == 'G' || type == 'W' || advance_tells(e))
        return false;
    /* answer_kind moves a Describe's step on, and nothing else: put back, asked only for a look. */
    uint8_t step = e->step;
    int kind = answer_kind(e, type);
    e->step = step;
    if (kind == ANS_BAD || kind == ANS_ERROR)
        return false;
    bool owed = false;
    return server_message(s, type, body, len, NULL, &owed) == PREP_OK && owed;
}

bool prep_server_answers_own(const struct prep_server *s)
{
    return s->head != NULL && s->head->how == HOW_CHECK;
}

bool prep_server_passes(const struct prep_server *s, uint8_t type)
{
    const struct prep_entry *e = s->head;
    if (s->broken || e == NULL || e->client == NULL || e->how != HOW_FORWARD)
        return false;
    /* Rows and COPY data are parts of an Execute's or a Query's answer, never its end. */
    return (type == 'D' || type == 'd') && (e->expect == X_EXEC || e->expect == X_QUERY);
}

bool prep_server_passes_whole(const struct prep_server *s, uint8_t type, const uint8_t *body,
                              size_t len)
{
    if (prep_server_passes(s, type))
        return true;
    const struct prep_entry *e = s->head;
    if (s->broken || e == NULL || e->client == NULL || e->how != HOW_FORWARD ||
        e->expect != X_QUERY)
        return false;
    /* A Query's answer up to its ReadyForQuery: nothing in it ends an entry (answer_kind). */
    switch (type) {
    case 'T':
    case 'D':
    case 'E':
    case 'I':
        return true;
    case 'C':
        return !tag_forgets(body, len);
    default: /* COPY's responses claim the Syncs behind them (copy_claim) */
        return false;
    }
}

/* ---- clients and servers ---- */

struct prep_client *prep_client_new(struct prep_registry *reg, uint64_t context)
{
    struct prep_client *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->reg = reg;
        c->context = context;
    }
    return c;
}

/* prep_table_free's drops: a client's name, a server's cached statement. */
static void name_drop(void *reg, struct prep_link *l)
{
    prep_stmt_unref(reg, ((struct prep_name *)l)->real);
    prep_stmt_unref(reg, ((struct prep_name *)l)->spec);
}

static void slot_drop(void *reg, struct prep_link *l)
{
    prep_stmt_unref(reg, ((struct prep_slot *)l)->stmt);
}

void prep_client_free(struct prep_client *c)
{
    if (c == NULL)
        return;
    if (c->entries > 0)
        for (struct prep_entry *e = c->server->head; e != NULL; e = e->next)
            if (e->client == c)
                prep_entry_detach(c->server, e);
    prep_table_free(&c->names, name_drop, c->reg);
    prep_stmt_unref(c->reg, c->unnamed_real);
    prep_stmt_unref(c->reg, c->unnamed_spec);
    free(c);
}

size_t prep_client_count(const struct prep_client *c)
{
    return c->nnames;
}

bool prep_client_empty(const struct prep_client *c)
{
    return c->names.count == 0 && c->nnames == 0 && c->unnamed_real == NULL &&
           c->unnamed_spec == NULL && c->entries == 0 && c->server == NULL && !c->replaying;
}

const char *prep_client_statement_text(const struct prep_client *c, const char *name, size_t len,
                                       size_t *text_len)
{
    const struct prep_stmt *st = c->unnamed_spec;
    if (len > 0) {
        const struct prep_name *n = prep_name_find(c, name, len);
        st = n != NULL ? n->spec : NULL;
    }
    if (st == NULL)
        return NULL;
    *text_len = st->text_len;
    return st->text;
}

void prep_client_set_replay(struct prep_client *c, bool on)
{
    c->replaying = on;
}

const char *prep_client_lookup(const struct prep_client *c, const char *name)
{
    const struct prep_name *n = prep_name_find(c, name, strlen(name));
    return n != NULL && n->spec != NULL ? n->spec->name : NULL;
}

struct prep_server *prep_server_new(struct prep_registry *reg, unsigned capacity,
                                    const struct tx_track *tx)
{
    struct prep_server *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->reg = reg;
        s->tx = tx;
        s->capacity = capacity > 0 ? capacity : 1;
        s->unnamed_real_known = s->unnamed_spec_known = true; /* a new session has none */
        s->flushed = true;
    }
    return s;
}

void prep_server_free(struct prep_server *s)
{
    if (s == NULL)
        return;
    while (s->tail != NULL) { /* never answered: as if skipped, the last first */
        prep_entry_discard(s, s->tail, UINT64_MAX);
        prep_entry_free(s, s->tail);
    }
    prep_table_free(&s->slots, slot_drop, s->reg);
    while (s->spare != NULL) {
        struct prep_entry *e = s->spare;
        s->spare = e->next;
        free(e);
    }
    prep_stmt_unref(s->reg, s->unnamed_real);
    prep_stmt_unref(s->reg, s->unnamed_spec);
    free(s);
}

bool prep_server_answered(const struct prep_server *s)
{
    return s->head == NULL && !s->broken;
}

bool prep_server_idle(const struct prep_server *s)
{
    return s->head == NULL && !s->batch_open && !s->dropping && !s->copy_in && !s->broken;
}

int prep_server_finish_batch(struct prep_server *s, struct evbuffer *to_server)
{
    static const char why[] = "client left";
    if (s->broken)
        return PREP_DESYNC;
    if (s->copy_in) {
        if (prep_put_msg(to_server, 'f', why, sizeof(why)) != PREP_OK)
            return server_broken(s, PREP_OOM);
        s->copy_in = false;
    }
    if (!s->batch_open && !s->dropping)
        return PREP_OK;
    return prep_server_sync(s, to_server);
}

int prep_server_sync(struct prep_server *s, struct evbuffer *to_server)
{
    if (s->broken)
        return PREP_DESYNC;
    struct prep_entry *e = NULL;
    if (prep_put_msg(to_server, 'S', NULL, 0) == PREP_OK)
        e = prep_entry_push(s, NULL, HOW_SKIP, X_SYNC);
    if (e == NULL)
        return server_broken(s, PREP_OOM);
    s->last_sync = e->seq;
    s->flushed = true;
    s->batch_open = s->batch_sent = s->dropping = s->barrier_execute = false;
    return PREP_OK;
}

void prep_server_forget_all(struct prep_server *s)
{
    forget_named(s, NULL);
    prep_stmt_set(s->reg, &s->unnamed_real, NULL);
    prep_stmt_set(s->reg, &s->unnamed_spec, NULL);
    s->unnamed_real_known = s->unnamed_spec_known = false;
    s->unnamed_mod = 0;
}

void prep_server_query_sent(struct prep_server *s)
{
    prep_stmt_set(s->reg, &s->unnamed_real, NULL);
    prep_stmt_set(s->reg, &s->unnamed_spec, NULL);
    s->unnamed_real_known = s->unnamed_spec_known = true; /* none: a Query dropped it */
}

void prep_server_stats(const struct prep_server *s, struct prep_stats *out)
{
    *out = s->stats;
    out->statements = s->cached;
}
