/*
 * prep_store.c — what prepared statements under transaction pooling keep
 * (prep_int.h): the hash tables, the registry of statements shared by a
 * worker's clients, each client's names and each server's cache of
 * statements with its LRU list.  It sends and reads nothing.
 */
#include "protocol/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/bytes8.h"
#include "protocol/fnv.h"
#include "protocol/prep_int.h"
#include "protocol/txn_pin.h"

/* ---- hash tables: intrusive, chained, a power of two buckets ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
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
void prep_table_free(struct prep_table *t, void (*drop)(void *ctx, struct prep_link *l), void *ctx)
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

/* ---- statements ---- */

/* Whether word (lower case, n bytes) is at p, ASCII letters in any case. */
static bool mentions_at(const char *p, const char *word, size_t n)
{
    size_t k = 0;
    while (k < n && (p[k] | 0x20) == word[k])
        k++;
    return k == n;
}

/* Whether one of words (lower case) is at text[k], within len. */
static bool mentions_one_at(const char *text, size_t len, size_t k, const char *const *words,
                            size_t nwords)
{
    for (size_t w = 0; w < nwords; w++) {
        size_t n = strlen(words[w]);
        if (n <= len - k && mentions_at(text + k, words[w], n))
            return true;
    }
    return false;
}

/* Whether one of words is at one of the bytes of text[i, i + 8) that marks has (bytes8_equal). */
static bool mentions_marked(const char *text, size_t len, size_t i, uint64_t marks,
                            const char *const *words, size_t nwords)
{
    for (; marks != 0; marks &= marks - 1)
        if (mentions_one_at(text, len, i + (size_t)__builtin_ctzll(marks) / 8, words, nwords))
            return true;
    return false;
}

/*
 * ASCII, case-insensitive: does one of words (lower case, one first
 * letter for all, shortest bytes the shortest) occur in text?  Eight
 * bytes at a time are looked at for the first letter in either case (a
 * letter's cases differ in bit 0x20 alone), the words compared only where
 * one is: each Query's text is read for DISCARD and DEALLOCATE (a memchr
 * for each case of each word cost ~390 instructions for pgbench's query,
 * a byte-by-byte loop ~1,300).
 */
static bool mentions_any(const char *text, size_t len, const char *const *words, size_t nwords,
                         size_t shortest)
{
    if (shortest > len)
        return false;
    const uint64_t lower = 0x2020202020202020ULL; /* a byte past the text lowered: never a letter */
    uint8_t first = (uint8_t)words[0][0];
    size_t starts = len - shortest + 1, i = 0; /* where a word may begin: [0, starts) */
    for (; i + 8 <= starts; i += 8) {
        uint64_t marks = bytes8_equal(bytes8_load(text + i, 8) | lower, first);
        if (marks != 0 && mentions_marked(text, len, i, marks, words, nwords))
            return true; /* (asked only where marked: the call costs more than the look) */
    }
    if (i == starts)
        return false;
    size_t rest = starts - i;
    uint64_t valid = (1ULL << (8 * rest)) - 1; /* a false mark past the text is dropped */
    uint64_t marks = bytes8_equal(bytes8_load_tail(text + i, rest, i) | lower, first) & valid;
    return marks != 0 && mentions_marked(text, len, i, marks, words, nwords);
}

bool prep_text_mentions(const char *text, size_t len, const char *word)
{
    return word[0] == '\0' || mentions_any(text, len, &word, 1, strlen(word));
}

bool prep_text_may_deallocate(const char *text, size_t len)
{
    static const char *const words[] = {"discard", "deallocate"};
    return mentions_any(text, len, words, 2, strlen("discard"));
}

static uint64_t stmt_key(const struct prep_registry *reg, const struct stmt_src *src)
{
    /* eight bytes a step: an unnamed Parse's text is hashed every transaction */
    uint64_t h = hash_fold_word(hash_fold_word(reg->seed, src->context), src->ntypes);
    h = hash_fold_words(h, src->types, (size_t)src->ntypes * 4);
    return mix64(hash_fold_words(h, src->text, src->text_len));
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
    st->barrier = prep_text_may_deallocate(text, src->text_len);
    (void)txn_pin_scan_carried((const uint8_t *)text, src->text_len, &st->settings);
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
struct prep_stmt *prep_registry_get(struct prep_registry *reg, const struct stmt_src *src)
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
struct prep_stmt *prep_registry_find(const struct prep_registry *reg, const struct stmt_src *src)
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
void prep_stmt_retire(struct prep_registry *reg, struct prep_stmt *st)
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
    prep_table_free(&reg->stmts, NULL, NULL);
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
    return mix64(fnv1a(FNV1A_BASIS, key, len));
}

static size_t name_key_len(size_t len)
{
    return len < PREP_NAME_KEY ? len : PREP_NAME_KEY;
}

struct prep_name *prep_name_find(const struct prep_client *c, const char *name, size_t len)
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

struct prep_name *prep_name_get(struct prep_client *c, const char *name, size_t len)
{
    struct prep_name *n = prep_name_find(c, name, len);
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

void prep_name_set_spec(struct prep_client *c, struct prep_name *n, struct prep_stmt *val)
{
    c->nnames += (val != NULL) - (n->spec != NULL);
    prep_stmt_set(c->reg, &n->spec, val);
}

/* Frees n when nothing holds it. */
void prep_name_release(struct prep_client *c, struct prep_name *n)
{
    if (n->real != NULL || n->spec != NULL || n->refs > 0)
        return;
    prep_table_del(&c->names, &n->link);
    free(n);
}

/* ---- servers' caches ---- */

struct prep_slot *prep_slot_find(const struct prep_server *s, const struct prep_stmt *st)
{
    uint64_t h = mix64(st->id);
    for (struct prep_link *l = table_first(&s->slots, h); l != NULL; l = l->next) {
        struct prep_slot *slot = (struct prep_slot *)l;
        if (slot->stmt == st)
            return slot;
    }
    return NULL;
}

struct prep_slot *prep_slot_get(struct prep_server *s, struct prep_stmt *st)
{
    struct prep_slot *slot = prep_slot_find(s, st);
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

void prep_slot_touch(struct prep_server *s, struct prep_slot *slot)
{
    if (slot->spec && s->newest != slot) {
        lru_unlink(s, slot);
        lru_push(s, slot);
    }
}

/* The cache counts, and the LRU list holds, the slots whose spec is set. */
void prep_slot_set_spec(struct prep_server *s, struct prep_slot *slot, bool has)
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

void prep_slot_release(struct prep_server *s, struct prep_slot *slot)
{
    if (slot->real || slot->spec || slot->refs > 0)
        return;
    prep_table_del(&s->slots, &slot->link);
    prep_stmt_unref(s->reg, slot->stmt);
    free(slot);
}
