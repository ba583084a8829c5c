/*
 * prep_queue.c — the queue of answers a server owes (prep_int.h): an entry
 * per message sent, what its answer settles when it comes (names, cached
 * statements) or fails, and the messages pgnear writes itself: Parse,
 * Close, ErrorResponse, a batch failed by pgnear.
 */
#include "protocol/prepared.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/prep_int.h"

/* ---- the queue of answers ---- */

struct prep_entry *prep_entry_push(struct prep_server *s, struct prep_client *c, uint8_t how,
                                   uint8_t expect)
{
    struct prep_entry *e = s->spare;
    if (e != NULL) {
        s->spare = e->next;
        s->nspare--;
    } else if ((e = malloc(sizeof(*e))) == NULL) {
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->client = c;
    e->seq = ++s->reg->seq;
    e->how = how;
    e->expect = expect;
    e->prev = s->tail;
    *(s->tail ? &s->tail->next : &s->head) = e;
    s->tail = e;
    if (c != NULL) {
        c->entries++;
        c->server = s;
    }
    return e;
}

void prep_entry_free(struct prep_server *s, struct prep_entry *e)
{
    struct prep_client *c = e->client;
    *(e->prev ? &e->prev->next : &s->head) = e->next;
    *(e->next ? &e->next->prev : &s->tail) = e->prev;
    if (e->name != NULL) {
        e->name->refs--;
        prep_name_release(c, e->name);
    }
    prep_stmt_unref(s->reg, e->name_val);
    if (e->slot != NULL) {
        if (e->check == CHECK_VERIFY && e->slot->verify == VERIFY_ASKED)
            e->slot->verify = VERIFY_NONE; /* skipped unanswered: its Parse failed */
        e->slot->refs--;
        prep_slot_release(s, e->slot);
    }
    prep_stmt_unref(s->reg, e->unnamed_val);
    free(e->error);
    if (c != NULL && --c->entries == 0)
        c->server = NULL;
    if (s->nspare < PREP_SPARE_ENTRIES) {
        e->next = s->spare;
        s->spare = e;
        s->nspare++;
    } else {
        free(e);
    }
}

/* The entry makes the client's name n name val. */
void prep_entry_name(struct prep_server *s, struct prep_entry *e, struct prep_name *n,
                     struct prep_stmt *val)
{
    e->name = n;
    n->refs++;
    e->sets |= SET_NAME;
    prep_stmt_set(s->reg, &e->name_val, val);
    n->mod = e->seq;
    prep_name_set_spec(e->client, n, val);
}

/* The entry needs slot; with set, it puts it in the cache or takes it out (val). */
void prep_entry_slot(struct prep_server *s, struct prep_entry *e, struct prep_slot *slot, bool set,
                     bool val)
{
    e->slot = slot;
    slot->refs++;
    if (!set)
        return;
    e->sets |= SET_SLOT;
    e->slot_val = val;
    slot->mod = e->seq;
    prep_slot_set_spec(s, slot, val);
}

/*
 * The entry is answered: what it changes is real.  Its speculative value
 * too, unless a later unanswered entry changes it again (mod is that
 * one's); mod 0 here means the entries after it were skipped.
 */
void prep_entry_settle(struct prep_server *s, struct prep_entry *e)
{
    struct prep_client *c = e->client;
    if (e->sets & SET_NAME) {
        struct prep_name *n = e->name;
        prep_stmt_set(s->reg, &n->real, e->name_val);
        if (n->mod == e->seq || n->mod == 0) {
            prep_name_set_spec(c, n, e->name_val);
            n->mod = 0;
        }
    }
    if (e->sets & SET_SLOT) {
        e->slot->stmt->proven |= e->slot_val;
        e->slot->real = e->slot_val;
        if (e->slot->mod == e->seq || e->slot->mod == 0) {
            prep_slot_set_spec(s, e->slot, e->slot_val);
            e->slot->mod = 0;
        }
    }
    if (e->sets & SET_CUNNAMED) {
        prep_stmt_set(s->reg, &c->unnamed_real, e->unnamed_val);
        if (c->unnamed_mod == e->seq || c->unnamed_mod == 0) {
            prep_stmt_set(s->reg, &c->unnamed_spec, e->unnamed_val);
            c->unnamed_mod = 0;
        }
    }
    if (e->sets & SET_SUNNAMED) {
        prep_stmt_set(s->reg, &s->unnamed_real, e->unnamed_val);
        s->unnamed_real_known = true;
        if (s->unnamed_mod == e->seq || s->unnamed_mod == 0) {
            prep_stmt_set(s->reg, &s->unnamed_spec, e->unnamed_val);
            s->unnamed_spec_known = true;
            s->unnamed_mod = 0;
        }
    }
    if (e->sets & SET_BARRIER)
        s->barriers--;
}

/*
 * The entry failed with an ErrorResponse of its own: a Parse leaves no
 * statement (an unnamed one not even the one before: PostgreSQL drops it
 * first); anything else leaves things as they really are.
 */
void prep_entry_fail(struct prep_server *s, struct prep_entry *e)
{
    bool parse = e->expect == X_PARSE;
    if (e->sets & SET_NAME)
        prep_stmt_set(s->reg, &e->name_val, e->name->real);
    if (e->sets & SET_SLOT)
        e->slot_val = parse ? false : e->slot->real;
    if ((e->sets & (SET_CUNNAMED | SET_SUNNAMED)) && parse)
        prep_stmt_set(s->reg, &e->unnamed_val, NULL);
    if ((e->sets & SET_SUNNAMED) && !parse) {
        e->sets &= (uint8_t)~SET_SUNNAMED;
        s->unnamed_real_known = s->unnamed_spec_known = false;
        s->unnamed_mod = 0;
    }
    prep_entry_settle(s, e);
}

/*
 * The server skipped the entry: what it would have changed is what is
 * real again, unless an entry after end (the Sync that ended the skip)
 * changes it anyway.
 */
void prep_entry_discard(struct prep_server *s, struct prep_entry *e, uint64_t end)
{
    struct prep_client *c = e->client;
    if ((e->sets & SET_NAME) && e->name->mod <= end) {
        prep_name_set_spec(c, e->name, e->name->real);
        e->name->mod = 0;
    }
    if ((e->sets & SET_SLOT) && e->slot->mod <= end) {
        prep_slot_set_spec(s, e->slot, e->slot->real);
        e->slot->mod = 0;
    }
    if ((e->sets & SET_CUNNAMED) && c->unnamed_mod <= end) {
        prep_stmt_set(s->reg, &c->unnamed_spec, c->unnamed_real);
        c->unnamed_mod = 0;
    }
    if ((e->sets & SET_SUNNAMED) && s->unnamed_mod <= end) {
        prep_stmt_set(s->reg, &s->unnamed_spec, s->unnamed_real);
        s->unnamed_spec_known = s->unnamed_real_known;
        s->unnamed_mod = 0;
    }
    if (e->sets & SET_BARRIER)
        s->barriers--;
}

/* The client left: the entry's answers go nowhere, and its names are not touched. */
void prep_entry_detach(struct prep_server *s, struct prep_entry *e)
{
    if (e->name != NULL) {
        e->name->refs--;
        e->name = NULL;
    }
    prep_stmt_unref(s->reg, e->name_val);
    e->name_val = NULL;
    e->sets &= (uint8_t) ~(SET_NAME | SET_CUNNAMED);
    e->client->entries--;
    e->client = NULL;
}

/* ---- messages out ---- */

/* Parse of st under name to s, and its entry. */
struct prep_entry *prep_send_parse(struct prep_client *c, struct prep_server *s, uint8_t how,
                                   const char *name, const struct prep_stmt *st,
                                   struct evbuffer *out)
{
    if (pkt_add_parse(out, name, strlen(name), st->text, st->text_len, st->types, st->ntypes) != 0)
        return NULL;
    s->flushed = false;
    s->batch_sent = true;
    return prep_entry_push(s, c, how, X_PARSE);
}

/* Close of statement name to s (SKIP), and its entry. */
struct prep_entry *prep_send_close(struct prep_client *c, struct prep_server *s, const char *name,
                                   struct evbuffer *out)
{
    if (pkt_add_target(out, 'C', 'S', name, strlen(name)) != 0)
        return NULL;
    s->flushed = false;
    s->batch_sent = true;
    return prep_entry_push(s, c, HOW_SKIP, X_CLOSE);
}

/*
 * ErrorResponse sqlstate, message head name tail, and routine when not
 * NULL (drivers that act on an error match it: postgres.js prepares a
 * statement again on RevalidateCachedQuery): the whole message.
 */
uint8_t *prep_build_error(const char *sqlstate, const char *head, const char *name,
                          const char *tail, const char *routine, size_t *len)
{
    size_t hlen = strlen(head), nlen = strlen(name);
    /* Besides the texts: the header, "ERROR" twice and the SQLSTATE, codes and NULs (32). */
    size_t cap =
        PKT_HEADER_LEN + 32 + hlen + nlen + strlen(tail) + (routine != NULL ? strlen(routine) : 0);
    struct pktbuf pb;
    uint8_t *m = malloc(cap);
    if (m == NULL)
        return NULL;
    pkt_init(&pb, m, cap);
    pkt_begin(&pb, 'E');
    pkt_put_field(&pb, 'S', "ERROR");
    pkt_put_field(&pb, 'V', "ERROR");
    pkt_put_field(&pb, 'C', sqlstate);
    pkt_put_u8(&pb, 'M');
    pkt_put_bytes(&pb, head, hlen);
    pkt_put_bytes(&pb, name, nlen);
    pkt_put_cstr(&pb, tail);
    pkt_put_field(&pb, 'R', routine);
    pkt_put_u8(&pb, 0);
    pkt_end(&pb);
    if (!pkt_ok(&pb)) {
        free(m);
        return NULL;
    }
    *len = pb.len;
    return m;
}

/*
 * pgnear fails the client's message: a Bind of a statement that never
 * exists makes the server fail and skip to the Sync (undoing the batch's
 * implicit transaction) where PostgreSQL would have, and its error is
 * replaced by error (the whole ErrorResponse, taken; NULL: out of memory).
 * The client's messages are dropped until its Sync.
 */
int prep_fail_batch_error(struct prep_client *c, struct prep_server *s, uint8_t *error, size_t len,
                          struct evbuffer *out)
{
    /* portal "", the statement, no formats, no parameters, no result formats */
    static const uint8_t bind[] = "\0" PREP_ERROR_NAME "\0\0\0\0\0\0\0";
    if (error == NULL)
        return PREP_OOM;
    struct prep_entry *e = NULL;
    if (prep_put_msg(out, 'B', bind, sizeof(bind) - 1) == PREP_OK)
        e = prep_entry_push(s, c, HOW_FAIL, X_BIND);
    if (e == NULL) {
        free(error);
        return PREP_OOM;
    }
    e->error = error;
    e->error_len = len;
    s->dropping = true;
    s->flushed = false;
    s->batch_sent = true;
    return PREP_OK;
}

/* prep_fail_batch_error with 'prepared statement "name"' and tail. */
int prep_fail_batch(struct prep_client *c, struct prep_server *s, const char *sqlstate,
                    const char *name, const char *tail, struct evbuffer *out)
{
    size_t len = 0;
    uint8_t *error = prep_build_error(sqlstate, "prepared statement \"", name, tail, NULL, &len);
    return prep_fail_batch_error(c, s, error, len, out);
}

/* Frees the head's FAKE answers and ends of COPY in order, the FAKE ones written to the client. */
int prep_queue_advance(struct prep_server *s, struct evbuffer *to_client)
{
    struct prep_entry *e;
    static const char deallocate[] = "DEALLOCATE";
    while ((e = s->head) != NULL && (e->how == HOW_FAKE || e->expect == X_MARK)) {
        bool tell = e->how == HOW_FAKE && e->client != NULL && to_client != NULL;
        uint8_t status = (uint8_t)s->tx->status; /* what the answers before it left */
        if (tell && e->fake_type == 'C' &&
            (prep_put_msg(to_client, 'C', deallocate, sizeof(deallocate)) != PREP_OK ||
             prep_put_msg(to_client, 'Z', &status, 1) != PREP_OK))
            return PREP_OOM;
        if (tell && e->fake_type != 'C' &&
            prep_put_msg(to_client, e->fake_type, NULL, 0) != PREP_OK)
            return PREP_OOM;
        prep_entry_settle(s, e);
        prep_entry_free(s, e);
    }
    return PREP_OK;
}
