/*
 * prepared.c — prepared statements under transaction pooling: the
 * registry of statements, the clients' names, the servers' caches and the
 * queue of answers each server owes (prepared.h).
 */
#include "protocol/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/prep_desc.h"

/* PostgreSQL's largest message body; anything longer is no message of a session. */
#define PREP_MAX_BODY 0x3fffffffu
/* Unanswered-message entries a server keeps for reuse. */
#define PREP_SPARE_ENTRIES 32
#define STMT_NAME_LEN      (sizeof(PREP_NAME_PREFIX) - 1 + 16)
#define FNV_BASIS          0xcbf29ce484222325ull
#define FNV_PRIME          0x100000001b3ull
/* PostgreSQL's error for a statement whose result type changed, and where it comes from. */
#define STALE_PLAN_MESSAGE "cached plan must not change result type"
#define STALE_PLAN_ROUTINE "RevalidateCachedQuery"

/* ---- hash tables: intrusive, chained, a power of two buckets ---- */

struct prep_link {
    struct prep_link *next;
    uint64_t hash;
};

struct prep_table {
    struct prep_link **b;
    size_t nb;
    size_t count;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

static int table_grow(struct prep_table *t)
{
    size_t nb = t->nb ? t->nb * 2 : 8;
    struct prep_link **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < t->nb; i++) {
        struct prep_link *l = t->b[i], *next;
        for (; l != NULL; l = next) {
            next = l->next;
            l->next = b[l->hash & (nb - 1)];
            b[l->hash & (nb - 1)] = l;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

/* Adds l (its hash set); grows at one element a bucket, or goes on fuller when it cannot. */
static int table_add(struct prep_table *t, struct prep_link *l)
{
    if (t->count >= t->nb && table_grow(t) != 0 && t->nb == 0)
        return -1;
    struct prep_link **head = &t->b[l->hash & (t->nb - 1)];
    l->next = *head;
    *head = l;
    t->count++;
    return 0;
}

static struct prep_link *table_first(const struct prep_table *t, uint64_t hash)
{
    return t->nb ? t->b[hash & (t->nb - 1)] : NULL;
}

/* Frees every element (drop, when not NULL, lets go of what each holds first) and the buckets. */
static void table_free(struct prep_table *t, void (*drop)(void *ctx, struct prep_link *l),
                       void *ctx)
{
    for (size_t i = 0; i < t->nb; i++) {
        struct prep_link *l = t->b[i], *next;
        for (; l != NULL; l = next) {
            next = l->next;
            if (drop != NULL)
                drop(ctx, l);
            free(l);
        }
    }
    free(t->b);
}

/* Removes l, which is in t. */
static void table_del(struct prep_table *t, struct prep_link *l)
{
    struct prep_link **pp = &t->b[l->hash & (t->nb - 1)];
    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    t->count--;
}

/* ---- the objects ---- */

struct prep_stmt {
    struct prep_link link; /* the registry's table, by mix64(id) */
    uint64_t key;          /* hash of context, types and text */
    uint64_t id;           /* the number in its name */
    uint64_t context;
    size_t text_len;
    const uint8_t *types; /* ntypes OIDs as a Parse carries them: 4 bytes each, big-endian */
    const char *text;     /* NUL-terminated */
    uint32_t refs;
    uint16_t ntypes;
    bool barrier;    /* the text mentions DISCARD or DEALLOCATE */
    bool proven;     /* a server has parsed it: a Parse of it can be answered without one */
    bool stale;      /* a server refused its plan, whose result type changed: see stmt_retire */
    bool superseded; /* its text plans otherwise now (plan_check): left to the names it has */
    bool described;  /* a client was told its description: desc (verify_send) */
    uint64_t desc;   /* prep_desc_hash of the first Describe 'S' a client had of it */
    char name[STMT_NAME_LEN + 1];
};

struct prep_registry {
    struct prep_table stmts;
    uint64_t seed;
    uint64_t seq; /* the last entry's number, over all the servers */
    struct prep_stats stats;
};

/*
 * A client's name.  real: what the answers the client has had made it;
 * spec: what the messages sent will make it; mod: the number of the last
 * unanswered entry that changes it (0: none).  Both NULL and no entry
 * naming it: freed.
 */
struct prep_name {
    struct prep_link link; /* the client's table */
    struct prep_stmt *real, *spec;
    uint64_t mod;
    uint32_t refs; /* unanswered entries naming it */
    uint8_t len;
    uint8_t replan; /* REPLAN_*: answered from another's plan, checked at its first use */
    char key[];     /* the name's first PREP_NAME_KEY bytes at most, NUL-terminated */
};

struct prep_client {
    struct prep_registry *reg;
    struct prep_server *server; /* where its unanswered entries are, while it has any */
    struct prep_table names;
    uint64_t context;
    struct prep_stmt *unnamed_real, *unnamed_spec;
    uint64_t unnamed_mod;
    uint32_t entries; /* unanswered entries on server */
    uint32_t nnames;  /* names with a speculative statement */
};

/* A statement in a server's cache: real and spec as for names. */
struct prep_slot {
    struct prep_link link;           /* the server's table, by mix64(stmt->id) */
    struct prep_slot *newer, *older; /* the LRU list: the slots whose spec is set */
    struct prep_stmt *stmt;
    uint64_t mod;
    uint32_t refs; /* unanswered entries that need it */
    bool real, spec;
    uint8_t verify; /* VERIFY_*: its fresh plan here compared with what clients were told */
};

/*
 * HOW_CHECK: pgnear's own question (plan_check), whose answers, errors
 * included, go nowhere.
 */
enum entry_how { HOW_FORWARD, HOW_SKIP, HOW_FAKE, HOW_FAIL, HOW_CHECK };

/* A name's plan check (plan_check): none due, due at its first use, asked. */
enum { REPLAN_NONE, REPLAN_DUE, REPLAN_ASKED };

/* A slot's verify_send: none outstanding, its Describe asked, answered otherwise than told. */
enum { VERIFY_NONE, VERIFY_ASKED, VERIFY_WRONG };

/* A CHECK entry's description: the text afresh, the cached statement (plan_check), verify_send. */
enum { CHECK_AFRESH, CHECK_CACHED, CHECK_VERIFY };

/* What answers an entry: none (FAKE, the end of a COPY), or the server's messages. */
enum entry_expect {
    X_NONE,
    X_MARK, /* the client's CopyDone or CopyFail: answered by nothing */
    X_PARSE,
    X_BIND,
    X_CLOSE,
    X_DESC_S,
    X_DESC_P,
    X_EXEC,
    X_SYNC,
    X_QUERY, /* Query and FunctionCall: anything up to ReadyForQuery */
};

/* What an entry changes: made real when answered, undone when skipped. */
enum entry_sets {
    SET_NAME = 1,     /* the client's name becomes name_val */
    SET_SLOT = 2,     /* the server has slot, or not (slot_val) */
    SET_CUNNAMED = 4, /* the client's unnamed statement becomes unnamed_val */
    SET_SUNNAMED = 8, /* the server's the same */
    SET_BARRIER = 16, /* may run DISCARD ALL or DEALLOCATE ALL */
};

struct prep_entry {
    struct prep_entry *prev, *next;
    struct prep_client *client; /* NULL: pgnear's own, or its client left */
    uint64_t seq;
    uint8_t how, expect, sets;
    uint8_t step;        /* Describe 'S': its ParameterDescription came */
    uint8_t fake_type;   /* FAKE: '1', '3', or 'C' (DEALLOCATE's CommandComplete and 'Z') */
    uint8_t fake_status; /* FAKE 'C': its ReadyForQuery's status; 0: the last the server said */
    bool slot_val;
    struct prep_name *name;
    struct prep_stmt *name_val;
    struct prep_slot *slot;
    struct prep_stmt *unnamed_val;
    uint8_t *error; /* FAIL: pgnear's ErrorResponse, whole */
    size_t error_len;
    uint8_t check; /* CHECK: which description it reads (CHECK_*) */
};

struct prep_server {
    struct prep_registry *reg;
    struct prep_table slots;
    struct prep_slot *newest, *oldest;
    struct prep_entry *head, *tail, *spare;
    size_t cached; /* slots whose spec is set */
    unsigned capacity, nspare;
    struct prep_stmt *unnamed_real, *unnamed_spec;
    uint64_t unnamed_mod;
    uint64_t last_sync; /* the number of the last Sync queued */
    unsigned barriers;  /* unanswered entries that may run DISCARD/DEALLOCATE ALL */
    bool unnamed_real_known, unnamed_spec_known;
    bool batch_open;      /* extended-protocol messages of the client since the last Sync */
    bool batch_sent;      /* ... of which some were sent (not all answered by pgnear) */
    bool dropping;        /* the server skips to the Sync: the client's messages are dropped */
    bool copy_in;         /* in a COPY IN whose end the client has not sent */
    bool barrier_execute; /* the batch bound a statement that may deallocate: Executes are barriers
                           */
    bool flushed;         /* nothing sent since a Flush or Sync */
    uint8_t last_status;  /* the transaction status of the last ReadyForQuery ('I' at first) */
    bool broken;
    bool check_failed[2]; /* the plan check's: its fresh Parse or a Describe failed; cached */
    uint64_t check[2];    /* the plan check's descriptions, hashed: afresh, cached */
    uint64_t described;   /* the Describe 'S' answered now, hashed (prep_desc_hash) */
    struct prep_stats stats;
};

/* ---- statements ---- */

struct stmt_src {
    const char *text;
    size_t text_len;
    const uint8_t *types;
    uint16_t ntypes;
    uint64_t context;
};

static void stmt_unref(struct prep_registry *reg, struct prep_stmt *st)
{
    if (st == NULL || --st->refs > 0)
        return;
    table_del(&reg->stmts, &st->link);
    free(st);
}

/* *field = val, references moved. */
static void stmt_set(struct prep_registry *reg, struct prep_stmt **field, struct prep_stmt *val)
{
    if (val != NULL)
        val->refs++;
    stmt_unref(reg, *field);
    *field = val;
}

/* ASCII, case-insensitive: does word (lower case) occur in text? */
static bool text_mentions(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++) {
        size_t k = 0;
        while (k < n && (text[i + k] | 0x20) == word[k])
            k++;
        if (k == n)
            return true;
    }
    return false;
}

static uint64_t stmt_key(const struct prep_registry *reg, const struct stmt_src *src)
{
    uint64_t h = fnv(FNV_BASIS, &reg->seed, sizeof(reg->seed));
    h = fnv(h, &src->context, sizeof(src->context));
    h = fnv(h, &src->ntypes, sizeof(src->ntypes));
    h = fnv(h, src->types, (size_t)src->ntypes * 4);
    return mix64(fnv(h, src->text, src->text_len));
}

static struct prep_stmt *stmt_by_id(const struct prep_registry *reg, uint64_t id)
{
    uint64_t h = mix64(id);
    for (struct prep_link *l = table_first(&reg->stmts, h); l != NULL; l = l->next) {
        struct prep_stmt *st = (struct prep_stmt *)l;
        if (st->id == id)
            return st;
    }
    return NULL;
}

static bool stmt_same(const struct prep_stmt *st, uint64_t key, const struct stmt_src *src)
{
    return !st->stale && !st->superseded && st->key == key && st->context == src->context &&
           st->ntypes == src->ntypes && st->text_len == src->text_len &&
           memcmp(st->types, src->types, (size_t)src->ntypes * 4) == 0 &&
           memcmp(st->text, src->text, src->text_len) == 0;
}

static struct prep_stmt *stmt_make(struct prep_registry *reg, const struct stmt_src *src,
                                   uint64_t key, uint64_t id)
{
    size_t tlen = (size_t)src->ntypes * 4;
    struct prep_stmt *st = malloc(sizeof(*st) + tlen + src->text_len + 1);
    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof(*st));
    uint8_t *types = (uint8_t *)(st + 1);
    char *text = (char *)types + tlen;
    memcpy(types, src->types, tlen);
    memcpy(text, src->text, src->text_len);
    text[src->text_len] = '\0';
    st->link.hash = mix64(id);
    st->key = key;
    st->id = id;
    st->context = src->context;
    st->text_len = src->text_len;
    st->types = types;
    st->text = text;
    st->ntypes = src->ntypes;
    st->barrier = text_mentions(text, src->text_len, "discard") ||
                  text_mentions(text, src->text_len, "deallocate");
    snprintf(st->name, sizeof(st->name), PREP_NAME_PREFIX "%016llx", (unsigned long long)id);
    if (table_add(&reg->stmts, &st->link) != 0) {
        free(st);
        return NULL;
    }
    return st;
}

/*
 * The registry's statement for src, with a reference for the caller.  Its
 * number is the key, or the next one not taken when another statement has
 * it: the numbers from the key up are tried until the statement or a free
 * number is found.  (A statement freed inside such a run makes a later
 * lookup stop early and make a second statement of the same text: two
 * server names for one text, never one name for two.)
 */
static struct prep_stmt *registry_get(struct prep_registry *reg, const struct stmt_src *src)
{
    uint64_t key = stmt_key(reg, src), id = key;
    struct prep_stmt *st;
    while ((st = stmt_by_id(reg, id)) != NULL) {
        if (stmt_same(st, key, src)) {
            st->refs++;
            return st;
        }
        id++;
    }
    st = stmt_make(reg, src, key, id);
    if (st != NULL)
        st->refs = 1;
    return st;
}

/* The registry's statement for src, if it has one (no reference taken); NULL: none. */
static struct prep_stmt *registry_find(const struct prep_registry *reg, const struct stmt_src *src)
{
    uint64_t key = stmt_key(reg, src);
    struct prep_stmt *st;
    for (uint64_t id = key; (st = stmt_by_id(reg, id)) != NULL; id++)
        if (stmt_same(st, key, src))
            return st;
    return NULL;
}

/*
 * A server refused st's plan: what its text returns changed since it was
 * parsed (0A000 "cached plan must not change result type": a column's type
 * altered, a table made again).  PostgreSQL refuses a statement so for the
 * rest of its life, and a client that parses the text again gets a new plan.
 * So the names that hold st keep it, and get the same error wherever they
 * are bound (a server that lacks st is not sent it again: it would plan the
 * new result under the client's old description), while st leaves the
 * registry's lookups: the next Parse of its text makes a new statement,
 * under a new server name, parsed afresh.  Its number stays taken while
 * servers may hold it.
 */
static void stmt_retire(struct prep_registry *reg, struct prep_stmt *st)
{
    if (st->stale)
        return;
    st->stale = true;
    st->proven = false;
    reg->stats.retired++;
}

/* ---- the registry ---- */

struct prep_registry *prep_registry_new(uint64_t seed)
{
    struct prep_registry *reg = calloc(1, sizeof(*reg));
    if (reg != NULL)
        reg->seed = seed;
    return reg;
}

void prep_registry_free(struct prep_registry *reg)
{
    if (reg == NULL)
        return;
    table_free(&reg->stmts, NULL, NULL);
    free(reg);
}

void prep_registry_stats(const struct prep_registry *reg, struct prep_stats *out)
{
    *out = reg->stats;
    out->statements = reg->stmts.count;
}

/* ---- clients' names ---- */

static uint64_t name_hash(const char *key, size_t len)
{
    return mix64(fnv(FNV_BASIS, key, len));
}

static size_t name_key_len(size_t len)
{
    return len < PREP_NAME_KEY ? len : PREP_NAME_KEY;
}

static struct prep_name *name_find(const struct prep_client *c, const char *name, size_t len)
{
    len = name_key_len(len);
    uint64_t h = name_hash(name, len);
    for (struct prep_link *l = table_first(&c->names, h); l != NULL; l = l->next) {
        struct prep_name *n = (struct prep_name *)l;
        if (l->hash == h && n->len == len && memcmp(n->key, name, len) == 0)
            return n;
    }
    return NULL;
}

static struct prep_name *name_get(struct prep_client *c, const char *name, size_t len)
{
    struct prep_name *n = name_find(c, name, len);
    if (n != NULL)
        return n;
    len = name_key_len(len);
    n = calloc(1, sizeof(*n) + len + 1);
    if (n == NULL)
        return NULL;
    memcpy(n->key, name, len);
    n->len = (uint8_t)len;
    n->link.hash = name_hash(name, len);
    if (table_add(&c->names, &n->link) != 0) {
        free(n);
        return NULL;
    }
    return n;
}

static void name_set_spec(struct prep_client *c, struct prep_name *n, struct prep_stmt *val)
{
    c->nnames += (val != NULL) - (n->spec != NULL);
    stmt_set(c->reg, &n->spec, val);
}

/* Frees n when nothing holds it. */
static void name_release(struct prep_client *c, struct prep_name *n)
{
    if (n->real != NULL || n->spec != NULL || n->refs > 0)
        return;
    table_del(&c->names, &n->link);
    free(n);
}

/* ---- servers' caches ---- */

static struct prep_slot *slot_find(const struct prep_server *s, const struct prep_stmt *st)
{
    uint64_t h = mix64(st->id);
    for (struct prep_link *l = table_first(&s->slots, h); l != NULL; l = l->next) {
        struct prep_slot *slot = (struct prep_slot *)l;
        if (slot->stmt == st)
            return slot;
    }
    return NULL;
}

static struct prep_slot *slot_get(struct prep_server *s, struct prep_stmt *st)
{
    struct prep_slot *slot = slot_find(s, st);
    if (slot != NULL)
        return slot;
    if ((slot = calloc(1, sizeof(*slot))) == NULL)
        return NULL;
    slot->link.hash = mix64(st->id);
    if (table_add(&s->slots, &slot->link) != 0) {
        free(slot);
        return NULL;
    }
    slot->stmt = st;
    st->refs++;
    return slot;
}

static void lru_unlink(struct prep_server *s, struct prep_slot *slot)
{
    *(slot->newer ? &slot->newer->older : &s->newest) = slot->older;
    *(slot->older ? &slot->older->newer : &s->oldest) = slot->newer;
    slot->newer = slot->older = NULL;
}

static void lru_push(struct prep_server *s, struct prep_slot *slot)
{
    slot->older = s->newest;
    slot->newer = NULL;
    *(s->newest ? &s->newest->newer : &s->oldest) = slot;
    s->newest = slot;
}

static void slot_touch(struct prep_server *s, struct prep_slot *slot)
{
    if (slot->spec && s->newest != slot) {
        lru_unlink(s, slot);
        lru_push(s, slot);
    }
}

/* The cache counts, and the LRU list holds, the slots whose spec is set. */
static void slot_set_spec(struct prep_server *s, struct prep_slot *slot, bool has)
{
    if (slot->spec == has)
        return;
    slot->spec = has;
    if (has) {
        s->cached++;
        lru_push(s, slot);
    } else {
        s->cached--;
        lru_unlink(s, slot);
    }
}

static void slot_release(struct prep_server *s, struct prep_slot *slot)
{
    if (slot->real || slot->spec || slot->refs > 0)
        return;
    table_del(&s->slots, &slot->link);
    stmt_unref(s->reg, slot->stmt);
    free(slot);
}

/* ---- the queue of answers ---- */

/* Was the change numbered mod sent before a Sync not yet answered (in an earlier batch)? */
static bool earlier(const struct prep_server *s, uint64_t mod)
{
    return mod != 0 && mod < s->last_sync;
}

static struct prep_entry *entry_push(struct prep_server *s, struct prep_client *c, uint8_t how,
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

static void entry_free(struct prep_server *s, struct prep_entry *e)
{
    struct prep_client *c = e->client;
    *(e->prev ? &e->prev->next : &s->head) = e->next;
    *(e->next ? &e->next->prev : &s->tail) = e->prev;
    if (e->name != NULL) {
        e->name->refs--;
        name_release(c, e->name);
    }
    stmt_unref(s->reg, e->name_val);
    if (e->slot != NULL) {
        if (e->check == CHECK_VERIFY && e->slot->verify == VERIFY_ASKED)
            e->slot->verify = VERIFY_NONE; /* skipped unanswered: its Parse failed */
        e->slot->refs--;
        slot_release(s, e->slot);
    }
    stmt_unref(s->reg, e->unnamed_val);
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
static void entry_name(struct prep_server *s, struct prep_entry *e, struct prep_name *n,
                       struct prep_stmt *val)
{
    e->name = n;
    n->refs++;
    e->sets |= SET_NAME;
    stmt_set(s->reg, &e->name_val, val);
    n->mod = e->seq;
    name_set_spec(e->client, n, val);
}

/* The entry needs slot; with set, it puts it in the cache or takes it out (val). */
static void entry_slot(struct prep_server *s, struct prep_entry *e, struct prep_slot *slot,
                       bool set, bool val)
{
    e->slot = slot;
    slot->refs++;
    if (!set)
        return;
    e->sets |= SET_SLOT;
    e->slot_val = val;
    slot->mod = e->seq;
    slot_set_spec(s, slot, val);
}

static void entry_client_unnamed(struct prep_server *s, struct prep_entry *e, struct prep_stmt *val)
{
    struct prep_client *c = e->client;
    e->sets |= SET_CUNNAMED;
    stmt_set(s->reg, &e->unnamed_val, val);
    c->unnamed_mod = e->seq;
    stmt_set(s->reg, &c->unnamed_spec, val);
}

static void entry_server_unnamed(struct prep_server *s, struct prep_entry *e, struct prep_stmt *val)
{
    e->sets |= SET_SUNNAMED;
    stmt_set(s->reg, &e->unnamed_val, val);
    s->unnamed_mod = e->seq;
    stmt_set(s->reg, &s->unnamed_spec, val);
    s->unnamed_spec_known = true;
}

static void entry_barrier(struct prep_server *s, struct prep_entry *e)
{
    e->sets |= SET_BARRIER;
    s->barriers++;
}

/*
 * The entry is answered: what it changes is real.  Its speculative value
 * too, unless a later unanswered entry changes it again (mod is that
 * one's); mod 0 here means the entries after it were skipped.
 */
static void entry_settle(struct prep_server *s, struct prep_entry *e)
{
    struct prep_client *c = e->client;
    if (e->sets & SET_NAME) {
        struct prep_name *n = e->name;
        stmt_set(s->reg, &n->real, e->name_val);
        if (n->mod == e->seq || n->mod == 0) {
            name_set_spec(c, n, e->name_val);
            n->mod = 0;
        }
    }
    if (e->sets & SET_SLOT) {
        e->slot->stmt->proven |= e->slot_val;
        e->slot->real = e->slot_val;
        if (e->slot->mod == e->seq || e->slot->mod == 0) {
            slot_set_spec(s, e->slot, e->slot_val);
            e->slot->mod = 0;
        }
    }
    if (e->sets & SET_CUNNAMED) {
        stmt_set(s->reg, &c->unnamed_real, e->unnamed_val);
        if (c->unnamed_mod == e->seq || c->unnamed_mod == 0) {
            stmt_set(s->reg, &c->unnamed_spec, e->unnamed_val);
            c->unnamed_mod = 0;
        }
    }
    if (e->sets & SET_SUNNAMED) {
        stmt_set(s->reg, &s->unnamed_real, e->unnamed_val);
        s->unnamed_real_known = true;
        if (s->unnamed_mod == e->seq || s->unnamed_mod == 0) {
            stmt_set(s->reg, &s->unnamed_spec, e->unnamed_val);
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
static void entry_fail(struct prep_server *s, struct prep_entry *e)
{
    bool parse = e->expect == X_PARSE;
    if (e->sets & SET_NAME)
        stmt_set(s->reg, &e->name_val, e->name->real);
    if (e->sets & SET_SLOT)
        e->slot_val = parse ? false : e->slot->real;
    if ((e->sets & (SET_CUNNAMED | SET_SUNNAMED)) && parse)
        stmt_set(s->reg, &e->unnamed_val, NULL);
    if ((e->sets & SET_SUNNAMED) && !parse) {
        e->sets &= (uint8_t)~SET_SUNNAMED;
        s->unnamed_real_known = s->unnamed_spec_known = false;
        s->unnamed_mod = 0;
    }
    entry_settle(s, e);
}

/*
 * The server skipped the entry: what it would have changed is what is
 * real again, unless an entry after end (the Sync that ended the skip)
 * changes it anyway.
 */
static void entry_discard(struct prep_server *s, struct prep_entry *e, uint64_t end)
{
    struct prep_client *c = e->client;
    if ((e->sets & SET_NAME) && e->name->mod <= end) {
        name_set_spec(c, e->name, e->name->real);
        e->name->mod = 0;
    }
    if ((e->sets & SET_SLOT) && e->slot->mod <= end) {
        slot_set_spec(s, e->slot, e->slot->real);
        e->slot->mod = 0;
    }
    if ((e->sets & SET_CUNNAMED) && c->unnamed_mod <= end) {
        stmt_set(s->reg, &c->unnamed_spec, c->unnamed_real);
        c->unnamed_mod = 0;
    }
    if ((e->sets & SET_SUNNAMED) && s->unnamed_mod <= end) {
        stmt_set(s->reg, &s->unnamed_spec, s->unnamed_real);
        s->unnamed_spec_known = s->unnamed_real_known;
        s->unnamed_mod = 0;
    }
    if (e->sets & SET_BARRIER)
        s->barriers--;
}

/* The client left: the entry's answers go nowhere, and its names are not touched. */
static void entry_detach(struct prep_server *s, struct prep_entry *e)
{
    if (e->name != NULL) {
        e->name->refs--;
        e->name = NULL;
    }
    stmt_unref(s->reg, e->name_val);
    e->name_val = NULL;
    e->sets &= (uint8_t) ~(SET_NAME | SET_CUNNAMED);
    e->client->entries--;
    e->client = NULL;
}

/* ---- messages out ---- */

static int put_msg(struct evbuffer *out, uint8_t type, const void *body, size_t len)
{
    uint8_t h[PKT_HEADER_LEN];
    h[0] = type;
    pkt_store_be32(h + 1, (uint32_t)(len + 4));
    if (evbuffer_add(out, h, sizeof(h)) != 0)
        return PREP_OOM;
    return len == 0 || evbuffer_add(out, body, len) == 0 ? PREP_OK : PREP_OOM;
}

static int put_cstr(struct evbuffer *out, const char *s, size_t len)
{
    return evbuffer_add(out, s, len) == 0 && evbuffer_add(out, "", 1) == 0 ? PREP_OK : PREP_OOM;
}

/* Parse of st under name to s, and its entry. */
static struct prep_entry *send_parse(struct prep_client *c, struct prep_server *s, uint8_t how,
                                     const char *name, const struct prep_stmt *st,
                                     struct evbuffer *out)
{
    size_t nlen = strlen(name), tlen = (size_t)st->ntypes * 4;
    uint8_t h[PKT_HEADER_LEN], n[2] = {(uint8_t)(st->ntypes >> 8), (uint8_t)st->ntypes};
    h[0] = 'P';
    pkt_store_be32(h + 1, (uint32_t)(4 + nlen + 1 + st->text_len + 1 + 2 + tlen));
    if (evbuffer_add(out, h, sizeof(h)) != 0 || put_cstr(out, name, nlen) != PREP_OK ||
        put_cstr(out, st->text, st->text_len) != PREP_OK || evbuffer_add(out, n, 2) != 0 ||
        evbuffer_add(out, st->types, tlen) != 0)
        return NULL;
    s->flushed = false;
    s->batch_sent = true;
    return entry_push(s, c, how, X_PARSE);
}

/* Close of statement name to s (SKIP), and its entry. */
static struct prep_entry *send_close(struct prep_client *c, struct prep_server *s, const char *name,
                                     struct evbuffer *out)
{
    size_t nlen = strlen(name);
    uint8_t h[PKT_HEADER_LEN + 1] = {'C', 0, 0, 0, 0, 'S'};
    pkt_store_be32(h + 1, (uint32_t)(4 + 1 + nlen + 1));
    if (evbuffer_add(out, h, sizeof(h)) != 0 || put_cstr(out, name, nlen) != PREP_OK)
        return NULL;
    s->flushed = false;
    s->batch_sent = true;
    return entry_push(s, c, HOW_SKIP, X_CLOSE);
}

/* An ErrorResponse's fields in order: a type byte and its text, each. */
struct error_field {
    char type;
    const char *text;
    size_t len;
};

static size_t error_fields_len(const struct error_field *f, size_t n)
{
    size_t body = 1; /* the terminator */
    for (size_t i = 0; i < n; i++)
        body += 1 + f[i].len + 1;
    return body;
}

/*
 * ErrorResponse sqlstate, message head name tail, and routine when not
 * NULL (drivers that act on an error match it: postgres.js prepares a
 * statement again on RevalidateCachedQuery): the whole message.
 */
static uint8_t *build_error(const char *sqlstate, const char *head, const char *name,
                            const char *tail, const char *routine, size_t *len)
{
    size_t hlen = strlen(head), nlen = strlen(name), tlen = strlen(tail);
    struct error_field f[] = {
        {'S', "ERROR", 5}, {'V', "ERROR", 5}, {'C', sqlstate, 5}, {'M', NULL, 0}, {'R', routine, 0},
    };
    size_t nf = routine != NULL ? 5 : 4;
    if (routine != NULL)
        f[4].len = strlen(routine);
    f[3].len = hlen + nlen + tlen;
    size_t body = error_fields_len(f, nf);
    uint8_t *m = malloc(PKT_HEADER_LEN + body);
    if (m == NULL)
        return NULL;
    m[0] = 'E';
    pkt_store_be32(m + 1, (uint32_t)(4 + body));
    uint8_t *p = m + PKT_HEADER_LEN;
    for (size_t i = 0; i < nf; i++) {
        *p++ = (uint8_t)f[i].type;
        if (f[i].type == 'M') {
            memcpy(p, head, hlen);
            memcpy(p + hlen, name, nlen);
            memcpy(p + hlen + nlen, tail, tlen);
        } else {
            memcpy(p, f[i].text, f[i].len);
        }
        p += f[i].len;
        *p++ = '\0';
    }
    *p = '\0';
    *len = PKT_HEADER_LEN + body;
    return m;
}

/*
 * pgnear fails the client's message: a Bind of a statement that never
 * exists makes the server fail and skip to the Sync (undoing the batch's
 * implicit transaction) where PostgreSQL would have, and its error is
 * replaced by error (the whole ErrorResponse, taken; NULL: out of memory).
 * The client's messages are dropped until its Sync.
 */
static int fail_batch_error(struct prep_client *c, struct prep_server *s, uint8_t *error,
                            size_t len, struct evbuffer *out)
{
    /* portal "", the statement, no formats, no parameters, no result formats */
    static const uint8_t bind[] = "\0" PREP_ERROR_NAME "\0\0\0\0\0\0\0";
    if (error == NULL)
        return PREP_OOM;
    struct prep_entry *e = NULL;
    if (put_msg(out, 'B', bind, sizeof(bind) - 1) == PREP_OK)
        e = entry_push(s, c, HOW_FAIL, X_BIND);
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

/* fail_batch_error with 'prepared statement "name"' and tail. */
static int fail_batch(struct prep_client *c, struct prep_server *s, const char *sqlstate,
                      const char *name, const char *tail, struct evbuffer *out)
{
    size_t len = 0;
    uint8_t *error = build_error(sqlstate, "prepared statement \"", name, tail, NULL, &len);
    return fail_batch_error(c, s, error, len, out);
}

/* Frees the head's FAKE answers and ends of COPY in order, the FAKE ones written to the client. */
static int queue_advance(struct prep_server *s, struct evbuffer *to_client)
{
    struct prep_entry *e;
    static const char deallocate[] = "DEALLOCATE";
    while ((e = s->head) != NULL && (e->how == HOW_FAKE || e->expect == X_MARK)) {
        bool tell = e->how == HOW_FAKE && e->client != NULL && to_client != NULL;
        uint8_t status = e->fake_status != 0 ? e->fake_status : s->last_status;
        if (tell && e->fake_type == 'C' &&
            (put_msg(to_client, 'C', deallocate, sizeof(deallocate)) != PREP_OK ||
             put_msg(to_client, 'Z', &status, 1) != PREP_OK))
            return PREP_OOM;
        if (tell && e->fake_type != 'C' && put_msg(to_client, e->fake_type, NULL, 0) != PREP_OK)
            return PREP_OOM;
        entry_settle(s, e);
        entry_free(s, e);
    }
    return PREP_OK;
}

/* ---- the client's messages ---- */

struct parse_msg {
    const char *name;
    size_t name_len;
    struct stmt_src src;
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
    return PREP_OK;
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

static int client_type(uint8_t type);

/* The client's message as it came. */
static int forward(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len,
                   struct evbuffer *out)
{
    s->flushed = type == 'H' || type == 'S';
    s->batch_sent |= client_type(type) == 1;
    return put_msg(out, type, body, len);
}

static struct prep_entry *forward_entry(struct prep_client *c, struct prep_server *s, uint8_t type,
                                        const uint8_t *body, size_t len, uint8_t expect,
                                        struct evbuffer *out)
{
    if (forward(s, type, body, len, out) != PREP_OK)
        return NULL;
    return entry_push(s, c, HOW_FORWARD, expect);
}

/*
 * Room for need more statements: the least recently used ones that no
 * unanswered message needs are closed (in line: before what comes next).
 * With none such the cache stays over its capacity.
 */
static int make_room(struct prep_client *c, struct prep_server *s, size_t need,
                     struct evbuffer *out)
{
    while (s->cached + need > s->capacity) {
        struct prep_slot *victim = s->oldest;
        while (victim != NULL && (victim->refs > 0 || !victim->real || victim->mod != 0))
            victim = victim->newer;
        if (victim == NULL)
            return PREP_OK;
        struct prep_entry *e = send_close(c, s, victim->stmt->name, out);
        if (e == NULL)
            return PREP_OOM;
        entry_slot(s, e, victim, true, false);
        s->stats.evictions++;
        s->reg->stats.evictions++;
    }
    return PREP_OK;
}

/* Parse of st to s (how: FORWARD for the client's Parse, SKIP for one of pgnear's). */
static struct prep_entry *parse_into_cache(struct prep_client *c, struct prep_server *s,
                                           uint8_t how, struct prep_stmt *st, struct evbuffer *out)
{
    if (make_room(c, s, 1, out) != PREP_OK)
        return NULL;
    struct prep_slot *slot = slot_get(s, st);
    if (slot == NULL)
        return NULL;
    struct prep_entry *e = send_parse(c, s, how, st->name, st, out);
    if (e == NULL) {
        slot_release(s, slot);
        return NULL;
    }
    entry_slot(s, e, slot, true, true);
    s->stats.parses_sent++;
    s->reg->stats.parses_sent++;
    return e;
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
 * finds the slot checked or VERIFY_WRONG (verify_drop).  One round trip
 * per statement and server connection, the first time it is parsed there.
 */
static int verify_send(struct prep_client *c, struct prep_server *s, struct prep_stmt *st,
                       struct evbuffer *out)
{
    struct prep_entry *e = parse_into_cache(c, s, HOW_SKIP, st, out), *d = NULL;
    if (e == NULL)
        return PREP_OOM;
    size_t nlen = strlen(st->name);
    uint8_t h[PKT_HEADER_LEN + 1] = {'D', 0, 0, 0, 0, 'S'};
    pkt_store_be32(h + 1, (uint32_t)(4 + 1 + nlen + 1));
    if (evbuffer_add(out, h, sizeof(h)) == 0 && put_cstr(out, st->name, nlen) == PREP_OK)
        d = entry_push(s, c, HOW_CHECK, X_DESC_S);
    if (d == NULL)
        return PREP_OOM;
    d->check = CHECK_VERIFY;
    entry_slot(s, d, e->slot, false, false);
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
static int verify_drop(struct prep_client *c, struct prep_server *s, struct prep_slot *slot,
                       bool retire, struct evbuffer *out)
{
    struct prep_stmt *st = slot->stmt;
    struct prep_entry *e = send_close(c, s, st->name, out);
    if (e == NULL)
        return PREP_OOM;
    entry_slot(s, e, slot, true, false);
    slot->verify = VERIFY_NONE;
    if (retire) {
        stmt_retire(s->reg, st);
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
    struct prep_stmt *st = registry_get(s->reg, &m->src);
    if (st == NULL)
        return PREP_OOM;
    struct prep_entry *e = forward_entry(c, s, 'P', body, len, X_PARSE, out);
    if (e != NULL) {
        entry_client_unnamed(s, e, st);
        entry_server_unnamed(s, e, st);
    }
    stmt_unref(s->reg, st);
    return e != NULL ? PREP_OK : PREP_OOM;
}

/* A named Parse once it is known to be taken: from the cache, or sent. */
static int parse_named(struct prep_client *c, struct prep_server *s, const struct parse_msg *m,
                       struct prep_stmt *st, struct prep_slot *slot, struct evbuffer *out)
{
    struct prep_name *n = name_get(c, m->name, m->name_len);
    if (n == NULL)
        return PREP_OOM;
    struct prep_entry *e;
    if (slot != NULL && slot->spec) {
        if ((e = entry_push(s, c, HOW_FAKE, X_NONE)) != NULL) {
            e->fake_type = '1';
            entry_slot(s, e, slot, false, false);
            slot_touch(s, slot);
            s->stats.parses_skipped++;
            s->reg->stats.parses_skipped++;
        }
    } else {
        e = parse_into_cache(c, s, HOW_FORWARD, st, out);
    }
    if (e == NULL) {
        name_release(c, n);
        return PREP_OOM;
    }
    entry_name(s, e, n, st);
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
    struct prep_entry *e = send_parse(c, s, HOW_SKIP, "", st, out);
    if (e == NULL)
        return PREP_OOM;
    entry_server_unnamed(s, e, st);
    return fail_batch(c, s, "42P05", m->name, "\" already exists", out);
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
        entry_name(s, s->tail, n, NULL);
    return rc;
}

/*
 * A named Parse of st, planned on s afresh where clients were told st's
 * description (verify_send): when s plans it otherwise, st is superseded
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
        return st->described && !planned ? verify_send(c, s, st, out)
                                         : parse_named(c, s, m, st, slot, out);
    if (verify_drop(c, s, slot, false, out) != PREP_OK)
        return PREP_OOM;
    struct prep_stmt *fresh = registry_get(s->reg, &m->src);
    if (fresh == NULL)
        return PREP_OOM;
    int rc = parse_named(c, s, m, fresh, NULL, out);
    stmt_unref(s->reg, fresh);
    return rc;
}

static int client_parse(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                        size_t len, struct evbuffer *out)
{
    struct parse_msg m;
    if (read_parse(body, len, c->context, &m) != PREP_OK)
        return PREP_BAD;
    char dealloc[PREP_NAME_KEY + 2];
    struct prep_name *n;
    if (m.name_len == 0 &&
        prep_deallocate_name(m.src.text, m.src.text_len, dealloc, sizeof(dealloc)) &&
        (n = name_find(c, dealloc, strlen(dealloc))) != NULL && n->spec != NULL)
        return earlier(s, n->mod) ? PREP_WAIT : parse_deallocate(c, s, n, out);
    if (m.name_len == 0)
        return parse_unnamed(c, s, &m, body, len, out);
    n = name_find(c, m.name, m.name_len);
    if (s->barriers > 0 || (n != NULL && earlier(s, n->mod)))
        return PREP_WAIT;
    struct prep_stmt *st = registry_get(s->reg, &m.src);
    if (st == NULL)
        return PREP_OOM;
    struct prep_slot *slot = slot_find(s, st);
    int rc;
    if (n != NULL && n->spec != NULL)
        rc = parse_taken(c, s, &m, st, out);
    else if (slot != NULL && earlier(s, slot->mod))
        rc = PREP_WAIT;
    else
        rc = parse_checked(c, s, &m, st, slot, out);
    stmt_unref(s->reg, st);
    return rc;
}

int prep_client_parse_known(struct prep_client *c, const uint8_t *body, size_t len)
{
    struct parse_msg m;
    if (len > PREP_MAX_BODY || read_parse(body, len, c->context, &m) != PREP_OK)
        return PREP_BAD;
    if (m.name_len == 0 || c->entries > 0)
        return PREP_WAIT;
    struct prep_stmt *st = registry_find(c->reg, &m.src);
    struct prep_name *n = name_find(c, m.name, m.name_len);
    if (st == NULL || !st->proven || (n != NULL && (n->spec != NULL || n->real != NULL)))
        return PREP_WAIT;
    if ((n = name_get(c, m.name, m.name_len)) == NULL)
        return PREP_OOM;
    stmt_set(c->reg, &n->real, st);
    name_set_spec(c, n, st);
    n->mod = 0;
    n->replan = REPLAN_DUE;
    c->reg->stats.parses_skipped++;
    return PREP_OK;
}

/* p past the whitespace at it (and within end). */
static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f'))
        p++;
    return p;
}

/* p past the keyword word (any case) and the whitespace after it; NULL when it is not there. */
static const char *keyword_at(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - p) < n || strncasecmp(p, word, n) != 0)
        return NULL;
    if (p + n < end && (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '$'))
        return NULL;
    return skip_space(p + n, end);
}

bool prep_deallocate_name(const char *text, size_t len, char *out, size_t cap)
{
    const char *end = text + len, *p = skip_space(text, end), *q;
    size_t n = 0;
    if ((p = keyword_at(p, end, "deallocate")) == NULL)
        return false;
    if ((q = keyword_at(p, end, "prepare")) != NULL)
        p = q;
    if (p < end && *p == '"') {
        for (p++; p < end && n + 1 < cap; p++) {
            if (*p == '"' && !(p + 1 < end && p[1] == '"'))
                break;
            out[n++] = *p;
            p += *p == '"';
        }
        if (p >= end || *p != '"' || n == 0)
            return false;
        p++;
    } else {
        while (p < end && n + 1 < cap && (isalnum((unsigned char)*p) || *p == '_' || *p == '$'))
            out[n++] = (char)tolower((unsigned char)*p++);
        if (n == 0 || (out[0] >= '0' && out[0] <= '9') || strcmp(out, "all") == 0)
            return false;
    }
    out[n] = '\0';
    p = skip_space(p, end);
    if (p < end && *p == ';')
        p = skip_space(p + 1, end);
    return p == end;
}

int prep_client_deallocate(struct prep_client *c, struct prep_server *s, const char *name,
                           size_t len, uint8_t status, struct evbuffer *to_client)
{
    if (s->broken)
        return PREP_DESYNC;
    if ((c->entries > 0 && c->server != s) ||
        (s->tail != NULL && s->tail->client != NULL && s->tail->client != c))
        return PREP_BUSY;
    struct prep_name *n = len > 0 ? name_find(c, name, len) : NULL;
    if (n == NULL || n->spec == NULL || s->batch_open || s->dropping)
        return PREP_WAIT;
    struct prep_entry *e = entry_push(s, c, HOW_FAKE, X_NONE);
    if (e == NULL)
        return PREP_OOM;
    e->fake_type = 'C';
    e->fake_status = s->head == e ? status : 0; /* behind others: the status they leave */
    entry_name(s, e, n, NULL);
    return queue_advance(s, to_client);
}

/*
 * A name whose Parse pgnear answered from a plan another client made (a
 * server's cached statement, prep_client_parse_known) is checked before its
 * first use, since its tables may have changed since that plan: a column's
 * type altered, a table made again.  PostgreSQL keeps a statement's
 * parameter and result types for its life (refusing it, 0A000, when the
 * result type changed), while the client's own Parse would have planned
 * the text anew.  So the server is asked, in a batch of pgnear's own whose
 * answers the client never sees (HOW_CHECK): the text parsed afresh as the
 * unnamed statement, a Describe of that and one of the cached statement,
 * and Sync.  The same parameter and row descriptions: the name keeps the
 * statement.  Others: the statement is superseded (a cached one refused
 * with 0A000 is retired, server_error), and the name takes a statement of
 * its text parsed afresh, which later Parses of the text find; the names
 * that already hold the old one keep it, as their plans would be kept
 * directly.  Asked only where nothing of the client's batch was sent and
 * nothing is outstanding, outside a transaction block (an error would end
 * the client's transaction there, a Sync its batch), and only where the
 * server has the statement (a Parse sent there plans afresh anyway):
 * elsewhere the name is used as it is.  One round trip and one Parse per
 * such name, the Parse a direct connection would have made.  PREP_OK: go
 * on with n->spec; PREP_WAIT: asked; PREP_OOM.
 */
static int plan_check_send(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                           struct prep_slot *slot, struct evbuffer *out)
{
    struct prep_stmt *st = n->spec;
    struct prep_entry *e = send_parse(c, s, HOW_CHECK, "", st, out), *d0 = NULL, *d1 = NULL, *z;
    if (e == NULL)
        return PREP_OOM;
    entry_server_unnamed(s, e, st);
    size_t nlen = strlen(st->name);
    uint8_t h[PKT_HEADER_LEN + 1] = {'D', 0, 0, 0, 0, 'S'};
    pkt_store_be32(h + 1, 4 + 1 + 1);
    if (evbuffer_add(out, h, sizeof(h)) == 0 && put_cstr(out, "", 0) == PREP_OK)
        d0 = entry_push(s, c, HOW_CHECK, X_DESC_S);
    pkt_store_be32(h + 1, (uint32_t)(4 + 1 + nlen + 1));
    if (d0 != NULL && evbuffer_add(out, h, sizeof(h)) == 0 &&
        put_cstr(out, st->name, nlen) == PREP_OK)
        d1 = entry_push(s, c, HOW_CHECK, X_DESC_S);
    if (d1 == NULL || put_msg(out, 'S', NULL, 0) != PREP_OK ||
        (z = entry_push(s, c, HOW_CHECK, X_SYNC)) == NULL)
        return PREP_OOM;
    d1->check = 1;
    entry_slot(s, d1, slot, false, false);
    entry_name(s, d1, n, st); /* the name waits for the answer (n->mod) */
    s->last_sync = z->seq;
    s->flushed = true;
    s->batch_sent = false; /* pgnear's own batch is whole: the client's is as it was */
    s->check[0] = s->check[1] = FNV_BASIS;
    s->check_failed[0] = s->check_failed[1] = false;
    n->replan = REPLAN_ASKED;
    s->stats.plan_checks++;
    s->reg->stats.plan_checks++;
    return PREP_WAIT;
}

/* n takes a statement of its text parsed afresh (its own is superseded or retired). */
static int name_take_fresh(struct prep_client *c, struct prep_server *s, struct prep_name *n)
{
    struct prep_stmt *st = n->spec;
    struct stmt_src src = {st->text, st->text_len, st->types, st->ntypes, st->context};
    struct prep_stmt *fresh = registry_get(s->reg, &src);
    if (fresh == NULL)
        return PREP_OOM;
    stmt_set(s->reg, &n->real, fresh);
    name_set_spec(c, n, fresh);
    stmt_unref(s->reg, fresh);
    return PREP_OK;
}

/* The answer is in: n keeps its statement, or takes one of its text parsed afresh. */
static int plan_check_done(struct prep_client *c, struct prep_server *s, struct prep_name *n)
{
    struct prep_stmt *st = n->spec;
    n->replan = REPLAN_NONE;
    if (s->check_failed[0] || (!s->check_failed[1] && s->check[0] == s->check[1]))
        return PREP_OK; /* (a text that no longer parses fails at its Bind, as it is) */
    if (!st->stale) {
        st->superseded = true;
        st->proven = false;
        s->reg->stats.superseded++;
    }
    return name_take_fresh(c, s, n);
}

/*
 * n's statement where s planned it afresh (verify_send): PREP_WAIT while
 * the answer is awaited; planned as its clients were told, on as usual;
 * planned otherwise, it is dropped there, and a name answered from
 * another's plan takes its text parsed afresh (its own Parse would have
 * planned it so), any other gets 0A000, as PostgreSQL refuses a client's
 * own statement whose result type changed (resolve_named).
 */
static int name_verified(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                         struct evbuffer *out)
{
    struct prep_slot *slot = slot_find(s, n->spec);
    if (slot == NULL || !slot->spec || slot->verify == VERIFY_NONE)
        return PREP_OK;
    if (slot->verify == VERIFY_ASKED)
        return PREP_WAIT;
    bool replan = n->replan == REPLAN_DUE && n->mod == 0;
    if (verify_drop(c, s, slot, !replan, out) != PREP_OK)
        return PREP_OOM;
    if (!replan)
        return PREP_OK;
    n->replan = REPLAN_NONE;
    return name_take_fresh(c, s, n);
}

static int plan_check(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                      struct evbuffer *out)
{
    if (n->replan == REPLAN_ASKED)
        return plan_check_done(c, s, n);
    struct prep_slot *slot = slot_find(s, n->spec);
    if (n->replan != REPLAN_DUE || slot == NULL || !slot->spec || slot->mod != 0)
        return PREP_OK;
    n->replan = REPLAN_NONE;
    if (s->head != NULL || s->batch_sent || s->dropping || s->copy_in || s->last_status != 'I')
        return PREP_OK;
    return plan_check_send(c, s, n, slot, out);
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
    struct prep_name *n = name_find(c, name, len);
    if (s->barriers > 0 || (n != NULL && earlier(s, n->mod)))
        return PREP_WAIT;
    if (n == NULL || n->spec == NULL) {
        if (strncmp(name, PREP_NAME_PREFIX, sizeof(PREP_NAME_PREFIX) - 1) != 0) {
            t->server_name = name; /* the server answers 26000 itself */
            return PREP_OK;
        }
        t->failed = true;
        return fail_batch(c, s, "26000", name, "\" does not exist", out);
    }
    int rc = name_verified(c, s, n, out);
    if (rc == PREP_OK)
        rc = plan_check(c, s, n, out);
    if (rc != PREP_OK)
        return rc;
    struct prep_stmt *st = n->spec;
    struct prep_slot *slot = slot_find(s, st);
    if (slot != NULL && earlier(s, slot->mod))
        return PREP_WAIT;
    if (st->stale && (slot == NULL || !slot->spec)) {
        size_t elen = 0;
        uint8_t *error =
            build_error("0A000", STALE_PLAN_MESSAGE, "", "", STALE_PLAN_ROUTINE, &elen);
        t->failed = true;
        return fail_batch_error(c, s, error, elen, out);
    }
    if ((slot == NULL || !slot->spec) && st->described)
        return verify_send(c, s, st, out);
    if (slot == NULL || !slot->spec) {
        struct prep_entry *e = parse_into_cache(c, s, HOW_SKIP, st, out);
        if (e == NULL)
            return PREP_OOM;
        slot = e->slot;
    }
    slot_touch(s, slot);
    t->slot = slot;
    t->server_name = st->name;
    t->barrier = st->barrier;
    return PREP_OK;
}

/*
 * The unnamed statement: the server must hold the client's, or none when
 * the client has none (so that the server answers 26000 as PostgreSQL).
 */
static int resolve_unnamed(struct prep_client *c, struct prep_server *s, struct target *t,
                           struct evbuffer *out)
{
    if (earlier(s, c->unnamed_mod) || earlier(s, s->unnamed_mod))
        return PREP_WAIT;
    struct prep_stmt *u = c->unnamed_spec;
    t->server_name = "";
    t->barrier = u != NULL && u->barrier;
    if (s->unnamed_spec_known && s->unnamed_spec == u)
        return PREP_OK;
    struct prep_entry *e =
        u != NULL ? send_parse(c, s, HOW_SKIP, "", u, out) : send_close(c, s, "", out);
    if (e == NULL)
        return PREP_OOM;
    entry_server_unnamed(s, e, u);
    return PREP_OK;
}

static int resolve(struct prep_client *c, struct prep_server *s, const char *name, size_t len,
                   struct target *t, struct evbuffer *out)
{
    memset(t, 0, sizeof(*t));
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
    size_t nlen = strlen(t.server_name);
    uint8_t h[PKT_HEADER_LEN] = {'B'};
    pkt_store_be32(h + 1, (uint32_t)(4 + m.portal_len + 1 + nlen + 1 + m.rest_len));
    if (evbuffer_add(out, h, sizeof(h)) != 0 || put_cstr(out, m.portal, m.portal_len) != 0 ||
        put_cstr(out, t.server_name, nlen) != 0 || evbuffer_add(out, m.rest, m.rest_len) != 0)
        return PREP_OOM;
    s->flushed = false;
    s->batch_sent = true;
    struct prep_entry *e = entry_push(s, c, HOW_FORWARD, X_BIND);
    if (e == NULL)
        return PREP_OOM;
    if (t.slot != NULL)
        entry_slot(s, e, t.slot, false, false);
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
        return forward_entry(c, s, 'D', body, len, X_DESC_P, out) ? PREP_OK : PREP_OOM;
    int rc = resolve(c, s, name, nlen, &t, out);
    if (rc != PREP_OK || t.failed)
        return rc;
    size_t slen = strlen(t.server_name);
    uint8_t h[PKT_HEADER_LEN + 1] = {'D', 0, 0, 0, 0, 'S'};
    pkt_store_be32(h + 1, (uint32_t)(4 + 1 + slen + 1));
    if (evbuffer_add(out, h, sizeof(h)) != 0 || put_cstr(out, t.server_name, slen) != 0)
        return PREP_OOM;
    s->flushed = false;
    s->batch_sent = true;
    struct prep_entry *e = entry_push(s, c, HOW_FORWARD, X_DESC_S);
    if (e == NULL)
        return PREP_OOM;
    if (t.slot != NULL)
        entry_slot(s, e, t.slot, false, false);
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
        return forward_entry(c, s, 'C', body, len, X_CLOSE, out) ? PREP_OK : PREP_OOM;
    struct prep_entry *e = entry_push(s, c, HOW_FAKE, X_NONE);
    if (e == NULL)
        return PREP_OOM;
    e->fake_type = '3';
    struct prep_name *n = nlen > 0 ? name_find(c, name, nlen) : NULL;
    if (nlen == 0)
        entry_client_unnamed(s, e, NULL);
    else if (n != NULL) /* even with no statement now: an earlier Close may be skipped */
        entry_name(s, e, n, NULL);
    return PREP_OK;
}

static int client_execute(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                          size_t len, struct evbuffer *out)
{
    struct prep_entry *e = forward_entry(c, s, 'E', body, len, X_EXEC, out);
    if (e == NULL)
        return PREP_OOM;
    if (s->barrier_execute)
        entry_barrier(s, e);
    return PREP_OK;
}

static int client_sync(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                       size_t len, struct evbuffer *out)
{
    if (s->copy_in) /* the COPY IN swallows it */
        return forward(s, 'S', body, len, out);
    if (!s->dropping && make_room(c, s, 0, out) != PREP_OK)
        return PREP_OOM;
    struct prep_entry *e = forward_entry(c, s, 'S', body, len, X_SYNC, out);
    if (e == NULL)
        return PREP_OOM;
    s->last_sync = e->seq;
    s->batch_open = s->batch_sent = s->dropping = s->barrier_execute = false;
    return PREP_OK;
}

/* A Query drops the unnamed statement, the client's and the server's, whatever it runs. */
static int client_query(struct prep_client *c, struct prep_server *s, const uint8_t *body,
                        size_t len, struct evbuffer *out)
{
    if (len == 0 || memchr(body, '\0', len) != body + len - 1)
        return PREP_BAD;
    struct prep_entry *e = forward_entry(c, s, 'Q', body, len, X_QUERY, out);
    if (e == NULL)
        return PREP_OOM;
    entry_client_unnamed(s, e, NULL);
    entry_server_unnamed(s, e, NULL);
    if (text_mentions((const char *)body, len, "discard") ||
        text_mentions((const char *)body, len, "deallocate"))
        entry_barrier(s, e);
    return PREP_OK;
}

/* CopyDone, CopyFail: ends the COPY IN going on, or one a CopyInResponse will start. */
static int client_copy_end(struct prep_client *c, struct prep_server *s, uint8_t type,
                           const uint8_t *body, size_t len, struct evbuffer *out)
{
    if (s->copy_in) {
        s->copy_in = false;
        return forward(s, type, body, len, out);
    }
    return forward_entry(c, s, type, body, len, X_MARK, out) ? PREP_OK : PREP_OOM;
}

static int client_dispatch(struct prep_client *c, struct prep_server *s, uint8_t type,
                           const uint8_t *body, size_t len, struct evbuffer *out)
{
    switch (type) {
    case 'P':
        return client_parse(c, s, body, len, out);
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
        return forward_entry(c, s, type, body, len, X_QUERY, out) ? PREP_OK : PREP_OOM;
    case 'c':
    case 'f':
        return client_copy_end(c, s, type, body, len, out);
    default: /* Flush, CopyData */
        return forward(s, type, body, len, out);
    }
}

/* Messages of an active session, and whether they belong to an extended-protocol batch. */
static int client_type(uint8_t type)
{
    static const char active[] = "PBDCESQFcfHd", batch[] = "PBDCE";
    if (type == 0 || strchr(active, type) == NULL)
        return -1;
    return strchr(batch, type) != NULL;
}

int prep_client_message(struct prep_client *c, struct prep_server *s, uint8_t type,
                        const uint8_t *body, size_t len, struct evbuffer *to_server,
                        struct evbuffer *to_client)
{
    int batch = client_type(type);
    if (s->broken)
        return PREP_DESYNC;
    if (batch < 0 || len > PREP_MAX_BODY)
        return PREP_BAD;
    if ((c->entries > 0 && c->server != s) ||
        (s->tail != NULL && s->tail->client != NULL && s->tail->client != c))
        return PREP_BUSY;
    if (s->dropping && type != 'S') /* the server skips to the Sync anyway */
        return type == 'H' ? forward(s, type, body, len, to_server) : PREP_OK;
    int rc = client_dispatch(c, s, type, body, len, to_server);
    if (rc == PREP_WAIT) {
        s->stats.waits++;
        s->reg->stats.waits++;
        if (!s->flushed && put_msg(to_server, 'H', NULL, 0) != PREP_OK)
            rc = PREP_OOM;
        s->flushed = true;
    }
    if (rc == PREP_OK) {
        s->batch_open |= batch == 1;
        rc = queue_advance(s, to_client);
    }
    if (rc == PREP_OOM)
        s->broken = true;
    return rc;
}

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
    return to_client != NULL ? put_msg(to_client, type, body, len) : PREP_OK;
}

/*
 * A client's Describe 'S' of st is answered: the first answer a client has
 * is what st's plans must be described as everywhere (verify_send).
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
 * verify_send's Describe is answered: the slot's plan is described as its
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

/* The server's message to the client, as the head entry e says. */
static int pass(struct prep_server *s, struct prep_entry *e, uint8_t type, const uint8_t *body,
                size_t len, struct evbuffer *to_client)
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
            s->check[e->check] = fnv(fnv(s->check[e->check], &type, 1), body, len);
        return PREP_OK;
    }
    if (e->client == NULL || to_client == NULL)
        return PREP_OK;
    if (e->how == HOW_FORWARD || (e->how == HOW_SKIP && type == 'E'))
        return put_msg(to_client, type, body, len);
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
            slot_set_spec(s, slot, false);
            slot_release(s, slot);
        }
    }
    for (size_t i = 0; c != NULL && i < c->names.nb; i++) {
        struct prep_link *l = c->names.b[i], *next;
        for (; l != NULL; l = next) {
            struct prep_name *n = (struct prep_name *)l;
            next = l->next;
            stmt_set(s->reg, &n->real, NULL);
            name_set_spec(c, n, NULL);
            n->mod = 0;
            name_release(c, n);
        }
    }
}

static void check_tag(struct prep_server *s, struct prep_entry *e, const uint8_t *body, size_t len)
{
    static const char discard[] = "DISCARD ALL", deallocate[] = "DEALLOCATE ALL";
    if ((len == sizeof(discard) && memcmp(body, discard, len) == 0) ||
        (len == sizeof(deallocate) && memcmp(body, deallocate, len) == 0))
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
            entry_free(s, x);
            return;
        }
        if (x->expect == X_SYNC)
            entry_free(s, x);
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
        entry_discard(s, x, end);
        entry_free(s, x);
    }
    if (z == NULL)
        s->dropping = true;
    if (e->slot != NULL && (e->expect == X_BIND || e->expect == X_DESC_S) &&
        error_is_stale_plan(body, len))
        stmt_retire(s->reg, e->slot->stmt);
    int rc = pass(s, e, 'E', body, len, to_client);
    entry_fail(s, e);
    entry_free(s, e);
    return rc == PREP_OK ? queue_advance(s, to_client) : rc;
}

static int server_broken(struct prep_server *s, int rc)
{
    s->broken = true;
    return rc;
}

int prep_server_message(struct prep_server *s, uint8_t type, const uint8_t *body, size_t len,
                        struct evbuffer *to_client)
{
    if (s->broken)
        return PREP_DESYNC;
    if (len > PREP_MAX_BODY)
        return server_broken(s, PREP_DESYNC);
    if (type == 'N' || type == 'S' || type == 'A') /* asynchronous: answer nothing */
        return deliver(to_client, type, body, len);
    if (type == 'Z' && len >= 1)
        s->last_status = body[0];
    struct prep_entry *e = s->head;
    if (e == NULL) /* an ErrorResponse no one asked for is a FATAL one, most likely */
        return type == 'E' ? deliver(to_client, type, body, len) : server_broken(s, PREP_DESYNC);
    int kind = answer_kind(e, type), rc;
    if (kind == ANS_BAD)
        return server_broken(s, PREP_DESYNC);
    if (kind == ANS_ERROR) {
        rc = server_error(s, e, body, len, to_client);
    } else if ((rc = pass(s, e, type, body, len, to_client)) == PREP_OK) {
        if (type == 'C')
            check_tag(s, e, body, len);
        else if (type == 'G' || type == 'W')
            copy_claim(s, e);
        if (kind == ANS_END) {
            entry_settle(s, e);
            entry_free(s, e);
            rc = queue_advance(s, to_client);
        }
    }
    return rc == PREP_OK ? PREP_OK : server_broken(s, rc);
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

/* table_free's drops: a client's name, a server's cached statement. */
static void name_drop(void *reg, struct prep_link *l)
{
    stmt_unref(reg, ((struct prep_name *)l)->real);
    stmt_unref(reg, ((struct prep_name *)l)->spec);
}

static void slot_drop(void *reg, struct prep_link *l)
{
    stmt_unref(reg, ((struct prep_slot *)l)->stmt);
}

void prep_client_free(struct prep_client *c)
{
    if (c == NULL)
        return;
    if (c->entries > 0)
        for (struct prep_entry *e = c->server->head; e != NULL; e = e->next)
            if (e->client == c)
                entry_detach(c->server, e);
    table_free(&c->names, name_drop, c->reg);
    stmt_unref(c->reg, c->unnamed_real);
    stmt_unref(c->reg, c->unnamed_spec);
    free(c);
}

size_t prep_client_count(const struct prep_client *c)
{
    return c->nnames;
}

const char *prep_client_lookup(const struct prep_client *c, const char *name)
{
    const struct prep_name *n = name_find(c, name, strlen(name));
    return n != NULL && n->spec != NULL ? n->spec->name : NULL;
}

struct prep_server *prep_server_new(struct prep_registry *reg, unsigned capacity)
{
    struct prep_server *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->reg = reg;
        s->capacity = capacity > 0 ? capacity : 1;
        s->unnamed_real_known = s->unnamed_spec_known = true; /* a new session has none */
        s->flushed = true;
        s->last_status = 'I';
    }
    return s;
}

void prep_server_free(struct prep_server *s)
{
    if (s == NULL)
        return;
    while (s->tail != NULL) { /* never answered: as if skipped, the last first */
        entry_discard(s, s->tail, UINT64_MAX);
        entry_free(s, s->tail);
    }
    table_free(&s->slots, slot_drop, s->reg);
    while (s->spare != NULL) {
        struct prep_entry *e = s->spare;
        s->spare = e->next;
        free(e);
    }
    stmt_unref(s->reg, s->unnamed_real);
    stmt_unref(s->reg, s->unnamed_spec);
    free(s);
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
        if (put_msg(to_server, 'f', why, sizeof(why)) != PREP_OK)
            return server_broken(s, PREP_OOM);
        s->copy_in = false;
    }
    if (!s->batch_open && !s->dropping)
        return PREP_OK;
    struct prep_entry *e = NULL;
    if (put_msg(to_server, 'S', NULL, 0) == PREP_OK)
        e = entry_push(s, NULL, HOW_SKIP, X_SYNC);
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
    stmt_set(s->reg, &s->unnamed_real, NULL);
    stmt_set(s->reg, &s->unnamed_spec, NULL);
    s->unnamed_real_known = s->unnamed_spec_known = false;
    s->unnamed_mod = 0;
}

void prep_server_stats(const struct prep_server *s, struct prep_stats *out)
{
    *out = s->stats;
    out->statements = s->cached;
}
