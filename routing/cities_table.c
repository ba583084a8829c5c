/*
 * cities_table.c — the city table as a whole (cities.h): conf/cities.csv
 * read into one mapping, its lines parsed (cities_csv.c) into an array of
 * places, in file order, and an index of the folded names and alternate
 * names, sorted by folded name and then by rank (prefer, population,
 * line), which lookups search by binary search; and the references that
 * configurations hold on a loaded table.
 *
 * The file is read whole; names are unquoted in place and point into that
 * copy.  Folded keys are written into a second buffer of the file's size (a
 * folded name is never longer than the name as written), then, once the
 * index is sorted, copied in its order into the part that keeps them: the
 * index addresses them by offset.  Suggestions walk the sorted index as if
 * it were a trie (cities_suggest.c).
 *
 * A table is one anonymous mapping of its own (see "memory" below), freed
 * whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "routing/cities.h"
#include "routing/cities_int.h"
#include "routing/file_id.h"

#include "protocol/asan.h"

#if defined(PGNEAR_ASAN)
/* The room parts do not use is poisoned: AddressSanitizer knows no parts of a mapping. */
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size)   ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

/* Refuse files that cannot be a city table rather than eat memory. */
#define CITIES_FILE_MAX ((size_t)256 << 20)

/* The number of bytes c in the first len bytes of s. */
static size_t count_byte(const char *s, size_t len, char c)
{
    size_t n = 0;

    for (const char *p = s; (p = memchr(p, c, len - (size_t)(p - s))) != NULL; p++)
        n++;
    return n;
}

/* 1 + the number of newlines in the first len bytes of s. */
static size_t count_lines(const char *s, size_t len)
{
    return count_byte(s, len, '\n') + 1;
}

/* Order of the index: folded name, then rank. */
static int key_cmp(const void *a, const void *b, void *arg)
{
    const struct city_table *t = arg;
    const struct city_key *x = a, *y = b;
    int c = strcmp(t->keys + x->key, t->keys + y->key);

    return c ? c : rank_cmp(&t->rows[x->row], &t->rows[y->row]);
}

/* Order of the compact index: name without spaces, then rank. */
static int ckey_cmp(const void *a, const void *b, void *arg)
{
    const struct city_table *t = arg;
    const struct city_key *x = a, *y = b;
    int c = strcmp(t->ckeys + x->key, t->ckeys + y->key);

    return c ? c : rank_cmp(&t->rows[x->row], &t->rows[y->row]);
}

/* ---- memory ---- */

/*
 * A table lives in one anonymous mapping of its own, freed whole with
 * munmap.  From malloc, blocks of this size would be mapped too, but glibc
 * raises its mmap threshold to the size of a mapped block once one is
 * freed: the next table (a reload's) would come from the heap, where what
 * is freed stays resident between smaller blocks.  Each part is reserved
 * at its largest, what the file's bytes and lines allow; pages never
 * written are never resident.  The mapping, in order: the file's text
 * (read first; the mapping then grows past it), this struct, the path, the
 * rows, the index, the keys, the compact index and keys; then what only
 * loading needs, cut off once it is done: the keys in file order, and room
 * for sorting the index (glibc's qsort_r would malloc that room, 2 MiB).
 */

/* The system's page size, 4096 when it will not say: the table is one mapping of whole pages. */
static size_t page_size(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    return pg > 0 ? (size_t)pg : 4096;
}

/* n rounded up to a multiple of to, for the parts laid out in the mapping. */
static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* A new mapping of size bytes (base NULL), or base's of old bytes grown; NULL without memory. */
static char *map_grow(char *base, size_t old, size_t size)
{
    void *p = base ? mremap(base, old, size, MREMAP_MAYMOVE)
                   : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/*
 * Reads fd to its end into the start of a new mapping (*base, of *mapped
 * bytes), NUL-terminated after *len bytes; size is fstat's, so that a
 * regular file is read without growing the mapping.  Returns why not.
 */
static const char *read_file(int fd, off_t size, char **base, size_t *mapped, size_t *len)
{
    size_t cap = 0, n = 0;
    char *b = NULL;

    if (size < 0 || (uint64_t)size >= CITIES_FILE_MAX)
        return size < 0 ? "read error" : "file too large";
    for (;;) {
        if (n + 1 >= cap) { /* room for one more byte, and the NUL */
            size_t bigger = cap ? cap * 2 : round_up((size_t)size + 2, page_size());
            char *grown = cap < CITIES_FILE_MAX ? map_grow(b, cap, bigger) : NULL;
            if (!grown) {
                if (b)
                    munmap(b, cap);
                return cap < CITIES_FILE_MAX ? "out of memory" : "file too large";
            }
            b = grown;
            cap = bigger;
        }
        ssize_t got = read(fd, b + n, cap - 1 - n);
        if (got == 0)
            break;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            munmap(b, cap);
            return "read error";
        }
        n += (size_t)got;
    }
    b[n] = '\0';
    *base = b;
    *mapped = cap;
    *len = n;
    return NULL;
}

/* Where each part goes, for len bytes of text, cap lines and idx_cap names; false if too large. */
static bool plan_layout(struct layout *l, size_t len, size_t pathlen, size_t cap, size_t idx_cap)
{
    const size_t a = alignof(max_align_t);
    uint64_t total = 4 * ((uint64_t)len + a) + (uint64_t)cap * sizeof(struct city_row) +
                     3 * ((uint64_t)idx_cap * sizeof(struct city_key) + a) + pathlen + 4 * a +
                     sizeof(struct city_table) + page_size();
    size_t at;

    if (total > SIZE_MAX)
        return false;
    at = round_up(len + 1, a);
    l->table = at;
    at = round_up(at + sizeof(struct city_table), a);
    l->path = at;
    at = round_up(at + pathlen + 1, a);
    l->rows = at;
    at = round_up(at + cap * sizeof(struct city_row), a);
    l->idx = at;
    at = round_up(at + idx_cap * sizeof(struct city_key), a);
    l->keys = at;
    at = round_up(at + len + 1, a);
    l->cidx = at;
    at = round_up(at + idx_cap * sizeof(struct city_key), a);
    l->ckeys = at;
    at = round_up(at + len + 1, a);
    l->fold = at;
    at = round_up(at + len + 1, a);
    l->scratch = at;
    l->end = round_up(at + idx_cap * sizeof(struct city_key), page_size());
    return true;
}

/*
 * Grows the mapping that holds the text (len bytes) to the whole table and
 * points the table's parts into it; NULL without memory (the mapping is
 * then gone too).
 */
static struct city_table *lay_out(char *base, size_t mapped, size_t len, const char *path,
                                  const struct file_id *id)
{
    struct layout l;
    size_t cap = count_byte(base, len, '\n') + 1;
    /* each line has a name and at most one alternate more than it has "|" */
    size_t idx_cap = 2 * cap + count_byte(base, len, '|');
    char *grown = len <= UINT32_MAX && plan_layout(&l, len, strlen(path), cap, idx_cap)
                      ? map_grow(base, mapped, l.end)
                      : NULL;

    if (!grown) {
        munmap(base, mapped);
        return NULL;
    }
    struct city_table *t = (struct city_table *)(grown + l.table);
    t->refcount = 1;
    t->base = grown;
    t->mapped = l.end;
    t->lay = l;
    t->path = strcpy(grown + l.path, path);
    t->id = *id;
    t->text = grown;
    t->len = len;
    t->rows = (struct city_row *)(grown + l.rows);
    t->cap = cap;
    t->idx = (struct city_key *)(grown + l.idx);
    t->idx_cap = idx_cap;
    t->keys = grown + l.fold;
    return t;
}

/* Poisons the room from used (a pointer into the mapping) up to offset next of the mapping. */
static void poison_rest(const struct city_table *t, const void *used, size_t next)
{
    const char *from = used;

    ASAN_POISON_MEMORY_REGION(from, (size_t)(t->base + next - from));
}

/* Under AddressSanitizer, the room no part uses: reading past a part's end is caught. */
static void poison_unused(const struct city_table *t)
{
    const struct layout *l = &t->lay;

    poison_rest(t, t->text + t->len + 1, l->table);
    poison_rest(t, t + 1, l->path);
    poison_rest(t, t->path + strlen(t->path) + 1, l->rows);
    poison_rest(t, t->rows + t->n, l->idx);
    poison_rest(t, t->idx + t->nidx, l->keys);
    poison_rest(t, t->keys + t->keys_used, l->cidx);
    poison_rest(t, t->base + l->cidx + t->ncidx * sizeof *t->cidx, l->ckeys);
    poison_rest(t, t->base + l->ckeys + t->ckeys_used, t->mapped);
}

typedef int (*key_order)(const void *, const void *, void *);

/*
 * Sorts the n keys of idx (merge sort, bottom up), with room for n keys in
 * the mapping's scratch part.
 */
static void sort_keys(struct city_table *t, struct city_key *idx, size_t n, key_order cmp)
{
    struct city_key *from = idx, *to = (struct city_key *)(t->base + t->lay.scratch), *swap;

    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n,
                   hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;

            while (i < mid && j < hi)
                to[k++] = cmp(&from[j], &from[i], t) < 0 ? from[j++] : from[i++];
            while (i < mid)
                to[k++] = from[i++];
            while (j < hi)
                to[k++] = from[j++];
        }
        swap = from, from = to, to = swap;
    }
    if (from != idx)
        memcpy(idx, from, n * sizeof *idx);
}

/* The compact index, from the sorted one, into its part of the mapping. */
static void build_compact(struct city_table *t)
{
    struct city_key *cidx = (struct city_key *)(t->base + t->lay.cidx);
    char *ckeys = t->base + t->lay.ckeys;
    size_t used = 0;

    for (size_t i = 0; i < t->nidx; i++) {
        const char *key = t->keys + t->idx[i].key;
        if (strchr(key, ' ') == NULL)
            continue;
        cidx[t->ncidx].key = (uint32_t)used;
        cidx[t->ncidx++].row = t->idx[i].row;
        for (; *key; key++)
            if (*key != ' ')
                ckeys[used++] = *key;
        ckeys[used++] = '\0';
    }
    t->ckeys_used = used;
    if (t->ncidx == 0)
        return;
    t->cidx = cidx;
    t->ckeys = ckeys;
    sort_keys(t, t->cidx, t->ncidx, ckey_cmp);
}

/*
 * Sorts the index, and lays the keys out in its order (suggestions read
 * them all in that order) in the part that keeps them; then cuts off
 * what only loading needed.
 */
static void finish(struct city_table *t)
{
    char *keys = t->base + t->lay.keys;
    size_t used = 0;

    sort_keys(t, t->idx, t->nidx, key_cmp);
    for (size_t i = 0; i < t->nidx; i++) {
        const char *key = t->keys + t->idx[i].key;
        size_t n = strlen(key) + 1;

        memcpy(keys + used, key, n);
        t->idx[i].key = (uint32_t)used;
        used += n;
    }
    t->keys = keys;
    t->keys_used = used;
    build_compact(t);
    size_t end = round_up(t->lay.ckeys + t->ckeys_used, page_size());
    if (end < t->mapped && munmap(t->base + end, t->mapped - end) == 0)
        t->mapped = end;
    poison_unused(t);
}

/* Opens path and reads it into a new mapping, refusing NUL bytes (they would cut lines short). */
static struct city_table *read_table(const char *path, char *err, size_t errcap)
{
    struct file_id id;
    char why[160], *base;
    size_t mapped, len;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || !file_id_of_fd(fd, &id)) {
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        cities_set_err(err, errcap, path, 0, why);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    const char *failed = read_file(fd, id.size, &base, &mapped, &len);
    close(fd);
    if (failed) {
        cities_set_err(err, errcap, path, 0, failed);
        return NULL;
    }
    const char *nul = memchr(base, '\0', len);
    if (nul) {
        cities_set_err(err, errcap, path, count_lines(base, (size_t)(nul - base)), "NUL byte");
        munmap(base, mapped);
        return NULL;
    }
    struct city_table *t = lay_out(base, mapped, len, path, &id);
    if (!t)
        cities_set_err(err, errcap, path, 0, "out of memory");
    return t;
}

struct city_table *city_table_load(const char *path, char *err, size_t errcap)
{
    if (!path) {
        cities_set_err(err, errcap, "(null)", 0, "no file name");
        return NULL;
    }
    struct city_table *t = read_table(path, err, errcap);
    if (t && !cities_parse_all(t, path, err, errcap)) {
        city_table_free(t);
        return NULL;
    }
    if (t)
        finish(t);
    return t;
}

struct city_table *city_table_ref(struct city_table *t)
{
    __atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED);
    return t;
}

bool city_table_unchanged(const struct city_table *t, const char *path)
{
    return strcmp(t->path, path) == 0 && file_id_unchanged(&t->id, path);
}

bool city_table_settled(const struct city_table *t)
{
    return t->id.settled;
}

/* Drops a reference; the last one unmaps the table, which holds the struct itself. NULL is fine. */
void city_table_free(struct city_table *t)
{
    if (!t || __atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    char *base = t->base; /* t is in the mapping */
    size_t mapped = t->mapped;
    ASAN_UNPOISON_MEMORY_REGION(base, mapped);
    munmap(base, mapped);
}

size_t city_table_count(const struct city_table *t)
{
    return t ? t->n : 0;
}
