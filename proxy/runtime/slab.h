/*
 * slab.h — objects of one size in pages of their own, for what a crowd
 * of clients holds each (the session), or holds while it logs in (its
 * login's state).  malloc's heap keeps a crowd's
 * memory after it leaves: its few long-lived neighbours (libevent's
 * entries, a pool's buffers) pin the pages its sessions lay in.  A slab's
 * page holds sessions only, and goes back to the system with its last.
 *
 * Pages are SLAB_PAGE_SIZE, aligned to it, so an object finds its page
 * from its address.  Each is carved as it is needed; objects given back
 * go on their page's free list; a page with both free and lent objects
 * is on the slab's list of pages to lend from.  A page whose last object
 * comes back is unmapped, except one kept as a spare (or more:
 * slab_keep_spares).  One thread uses a
 * slab (its worker's).  Under AddressSanitizer, an object not lent is
 * poisoned (past the free list's word), so a use after free is still
 * caught, and the pages are roots for LeakSanitizer as the heap is.
 */
#ifndef PGNEAR_PROXY_SLAB_H
#define PGNEAR_PROXY_SLAB_H

#include <stddef.h>

#include "proxy/base/list.h"

#define SLAB_PAGE_SIZE (128 * 1024)

struct slab_page;

struct slab {
    size_t size;         /* of each object: the first allocation's, rounded up to 16 */
    size_t per_page;     /* objects a page holds */
    struct list lending; /* pages with objects both lent and free */
    struct list spares;  /* empty pages kept for the next (spare_max at most) */
    size_t spare_max;
    size_t pages, lent; /* mapped pages (the spares included), objects lent */
};

/* An empty slab that keeps one spare page: its size is set by its first allocation. */
void slab_init(struct slab *sl);
/*
 * It keeps up to n empty pages for the next objects, not one: for objects
 * made and freed at a rate (logins), whose pages would otherwise be
 * unmapped and mapped again, a fault on each of their pages and a flush
 * of every CPU's TLB each time.  slab_trim lets them go.
 */
void slab_keep_spares(struct slab *sl, size_t n);
/* Unmaps the spare pages but one (nothing is lent from the slab any more, say). */
void slab_trim(struct slab *sl);
/* Unmaps every page; each object must have come back. */
void slab_destroy(struct slab *sl);
/* A zeroed object of size bytes (the same at each call), or NULL when out of memory. */
void *slab_alloc(struct slab *sl, size_t size);
/* An object of this slab back (NULL: nothing). */
void slab_free(struct slab *sl, void *obj);

#endif
