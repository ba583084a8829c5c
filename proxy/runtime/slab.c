/*
 * slab.c — pages of objects of one size (slab.h).
 */
#include "proxy/runtime/slab.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "protocol/asan.h"

#if defined(PGNEAR_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define SLAB_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define SLAB_ROOT(p, n)     __lsan_register_root_region((p), (n))
#define SLAB_UNROOT(p, n)   __lsan_unregister_root_region((p), (n))
#else
#define SLAB_POISON(p, n)   ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#define SLAB_ROOT(p, n)     ((void)(p), (void)(n))
#define SLAB_UNROOT(p, n)   ((void)(p), (void)(n))
#endif

struct slab_page {
    struct list_node node; /* on the slab's lending list while listed */
    bool listed;
    void *free;          /* objects back, each holding the next's address in its first word */
    size_t lent, carved; /* objects lent now, and carved from the page so far */
};

/* Where a page's objects begin: past its header, on a cache line. */
#define SLAB_FIRST ((sizeof(struct slab_page) + 63) & ~(size_t)63)

static char *slab_object(struct slab_page *pg, size_t size, size_t i)
{
    return (char *)pg + SLAB_FIRST + i * size;
}

static struct slab_page *slab_page_of(const void *obj)
{
    return (struct slab_page *)((uintptr_t)obj & ~(uintptr_t)(SLAB_PAGE_SIZE - 1));
}

void slab_init(struct slab *sl)
{
    *sl = (struct slab){.spare_max = 1};
    list_init(&sl->lending);
    list_init(&sl->spares);
}

void slab_keep_spares(struct slab *sl, size_t n)
{
    sl->spare_max = n > 0 ? n : 1;
}

/* A page mapped on a boundary of its size: twice the size mapped, the rest unmapped. */
static struct slab_page *slab_map(void)
{
    char *raw =
        mmap(NULL, 2 * SLAB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t at = ((uintptr_t)raw + SLAB_PAGE_SIZE - 1) & ~(uintptr_t)(SLAB_PAGE_SIZE - 1);
    char *page = (char *)at;
    if (page > raw)
        munmap(raw, (size_t)(page - raw));
    munmap(page + SLAB_PAGE_SIZE, (size_t)(raw + 2 * SLAB_PAGE_SIZE - (page + SLAB_PAGE_SIZE)));
    SLAB_ROOT(page, SLAB_PAGE_SIZE);
    SLAB_POISON(page + SLAB_FIRST, SLAB_PAGE_SIZE - SLAB_FIRST);
    return (struct slab_page *)page;
}

static void slab_unmap(struct slab *sl, struct slab_page *pg)
{
    SLAB_UNPOISON(pg, SLAB_PAGE_SIZE);
    SLAB_UNROOT(pg, SLAB_PAGE_SIZE);
    munmap(pg, SLAB_PAGE_SIZE);
    sl->pages--;
}

void slab_destroy(struct slab *sl)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &sl->lending)
    {
        list_remove(&sl->lending, pos);
        slab_unmap(sl, list_entry(pos, struct slab_page, node));
    }
    list_for_each_safe(pos, tmp, &sl->spares)
    {
        list_remove(&sl->spares, pos);
        slab_unmap(sl, list_entry(pos, struct slab_page, node));
    }
}

void slab_trim(struct slab *sl)
{
    while (sl->spares.count > 1) {
        struct list_node *pos = sl->spares.head.next;
        list_remove(&sl->spares, pos);
        slab_unmap(sl, list_entry(pos, struct slab_page, node));
    }
}

/* A page to lend from: a listed one, a spare, or a new one (listed). */
static struct slab_page *slab_page_to_lend(struct slab *sl)
{
    if (sl->lending.count > 0)
        return list_entry(sl->lending.head.next, struct slab_page, node);
    struct slab_page *pg = NULL;
    if (sl->spares.count > 0) {
        struct list_node *pos = sl->spares.head.next;
        list_remove(&sl->spares, pos);
        pg = list_entry(pos, struct slab_page, node);
    } else if ((pg = slab_map()) != NULL)
        sl->pages++;
    else
        return NULL;
    *pg = (struct slab_page){.listed = true};
    list_append(&sl->lending, &pg->node);
    return pg;
}

void *slab_alloc(struct slab *sl, size_t size)
{
    if (sl->size == 0) {
        sl->size = (size + 15) & ~(size_t)15;
        sl->per_page = (SLAB_PAGE_SIZE - SLAB_FIRST) / sl->size;
    }
    if (size > sl->size || sl->per_page == 0)
        return NULL;
    struct slab_page *pg = slab_page_to_lend(sl);
    if (pg == NULL)
        return NULL;
    char *obj;
    if (pg->free != NULL) {
        obj = pg->free;
        SLAB_UNPOISON(obj, sl->size);
        memcpy(&pg->free, obj, sizeof(void *));
    } else {
        obj = slab_object(pg, sl->size, pg->carved++);
        SLAB_UNPOISON(obj, sl->size);
    }
    if (++pg->lent == sl->per_page) { /* full: nothing to lend until one comes back */
        list_remove(&sl->lending, &pg->node);
        pg->listed = false;
    }
    sl->lent++;
    memset(obj, 0, sl->size);
    return obj;
}

void slab_free(struct slab *sl, void *obj)
{
    if (obj == NULL)
        return;
    struct slab_page *pg = slab_page_of(obj);
    memcpy(obj, &pg->free, sizeof(void *));
    SLAB_POISON((char *)obj + sizeof(void *), sl->size - sizeof(void *));
    pg->free = obj;
    sl->lent--;
    if (--pg->lent > 0) {
        if (!pg->listed) {
            list_append(&sl->lending, &pg->node);
            pg->listed = true;
        }
        return;
    }
    if (pg->listed)
        list_remove(&sl->lending, &pg->node);
    pg->listed = false;
    if (sl->spares.count < sl->spare_max) {
        pg->free = NULL;
        pg->carved = 0;
        SLAB_POISON((char *)pg + SLAB_FIRST, SLAB_PAGE_SIZE - SLAB_FIRST);
        list_append(&sl->spares, &pg->node);
    } else {
        slab_unmap(sl, pg);
    }
}
