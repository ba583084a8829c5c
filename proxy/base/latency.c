/*
 * latency.c — latency histograms (latency.h).
 */
#include "proxy/base/latency.h"

#include <stdbool.h>
#include <stdlib.h>

/* 0.1 ms to 10 s in steps of 1, 2.5, 5: both a local 0.1 ms query and a 200 ms one far away. */
const uint32_t latency_coarse_le_us[LATENCY_COARSE - 1] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *latency_kind_name(enum latency_kind kind)
{
    static const char *const names[] = {
        [LATENCY_TRANSACTION] = "transaction_duration",
        [LATENCY_QUERY] = "query_duration",
        [LATENCY_WAIT] = "server_wait",
        [LATENCY_LOGIN] = "login_duration",
    };
    _Static_assert(sizeof(names) / sizeof(names[0]) == LATENCY_KINDS, "a name for every kind");
    return (unsigned)kind < LATENCY_KINDS ? names[kind] : "?";
}

void latency_fine_bounds(unsigned index, uint64_t *lo, uint64_t *hi)
{
    if (index >= LATENCY_FINE) {
        *lo = *hi = (uint64_t)1 << LATENCY_MAX_EXP;
        return;
    }
    if (index < LATENCY_SUB) {
        *lo = index;
        *hi = index + 1u;
        return;
    }
    unsigned block = index / LATENCY_SUB, sub = index % LATENCY_SUB;
    *lo = (uint64_t)(LATENCY_SUB + sub) << (block - 1);
    *hi = *lo + ((uint64_t)1 << (block - 1));
}

void latency_merge(struct latency_hist *to, const struct latency_hist *from)
{
    to->count += from->count;
    to->sum_us += from->sum_us;
    for (unsigned i = 0; i <= LATENCY_FINE; i++)
        to->fine[i] += from->fine[i];
}

void latency_coarse_counts(const struct latency_hist *h, uint64_t coarse[LATENCY_COARSE])
{
    unsigned c = 0;
    for (unsigned i = 0; i < LATENCY_COARSE; i++)
        coarse[i] = 0;
    for (unsigned i = 0; i <= LATENCY_FINE; i++) {
        uint64_t lo, hi;
        latency_fine_bounds(i, &lo, &hi);
        while (c < LATENCY_COARSE - 1 && lo > latency_coarse_le_us[c])
            c++;
        coarse[c] += h->fine[i];
    }
}

double latency_quantile_us(const struct latency_hist *h, double q)
{
    if (h->count == 0)
        return -1;
    double rank = q * (double)h->count, below = 0;
    for (unsigned i = 0; i <= LATENCY_FINE; i++) {
        if (h->fine[i] == 0 || below + (double)h->fine[i] < rank) {
            below += (double)h->fine[i];
            continue;
        }
        uint64_t lo, hi;
        latency_fine_bounds(i, &lo, &hi);
        double into = rank > below ? (rank - below) / (double)h->fine[i] : 0;
        return (double)lo + (double)(hi - lo) * into;
    }
    return (double)((uint64_t)1 << LATENCY_MAX_EXP); /* rounding left the rank past the end */
}

struct latency_set *latency_set_of(struct latency_book *b, const struct registry_region *rr)
{
    for (size_t i = 0; i < b->nsets; i++)
        if (b->sets[i]->region == rr)
            return b->sets[i];
    if (b->nsets == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        struct latency_set **grown = realloc(b->sets, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        b->sets = grown;
        b->cap = cap;
    }
    struct latency_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    set->region = rr;
    b->sets[b->nsets++] = set;
    return set;
}

void latency_book_free(struct latency_book *b)
{
    for (size_t i = 0; i < b->nsets; i++)
        free(b->sets[i]);
    free(b->sets);
    *b = (struct latency_book){0};
}

/*
 * k answers that came in one read: the first took since the start, those
 * pipelined behind it began as the one before them ended (no time here).
 */
static void latency_add_answers(struct latency_hist *h, uint64_t k, int64_t took_us)
{
    latency_add(h, took_us);
    if (__builtin_expect(k > 1, 0)) {
        h->count += k - 1;
        h->fine[0] += k - 1;
    }
}

void latency_follow_moved(struct latency_marks *m, const struct tx_track *t, struct latency_book *b,
                          const struct registry_region *rr)
{
    int64_t now = monotonic_us();
    if (t->answered < m->answered) {
        /* Counted and begun again (a new client's tx_track_init): nothing to time. */
        m->answered = t->answered;
        m->answered_idle = t->answered_idle;
    }
    uint64_t queries = t->answered - m->answered,
             transactions = t->answered_idle - m->answered_idle;
    m->answered = t->answered;
    m->answered_idle = t->answered_idle;
    if (m->set == NULL && (queries > 0 || transactions > 0))
        m->set = latency_set_of(b, rr);
    if (m->set != NULL && queries > 0 && m->query_since_us != 0)
        latency_add_answers(&m->set->hist[LATENCY_QUERY], queries, now - m->query_since_us);
    if (m->set != NULL && transactions > 0 && m->txn_since_us != 0)
        latency_add_answers(&m->set->hist[LATENCY_TRANSACTION], transactions,
                            now - m->txn_since_us);
    bool busy = t->outstanding > 0;
    if (!busy)
        m->query_since_us = 0;
    else if (queries > 0 || m->query_since_us == 0)
        m->query_since_us = now;
    if (transactions > 0 || (!busy && t->status == 'I'))
        m->txn_since_us = 0;
    if (busy && m->txn_since_us == 0)
        m->txn_since_us = now;
}

void latency_follow_began(struct latency_marks *m, const struct tx_track *t)
{
    if (t->outstanding == 0) {
        m->query_since_us = 0;
        if (t->status == 'I')
            m->txn_since_us = 0;
        return;
    }
    m->query_since_us = monotonic_us();
    if (m->txn_since_us == 0)
        m->txn_since_us = m->query_since_us;
}

void latency_wait_end(struct latency_times *lt, struct latency_book *b,
                      const struct registry_region *rr)
{
    if (lt->wait_since_us == 0)
        return;
    struct latency_set *set = latency_set_of(b, rr);
    if (set != NULL)
        latency_add(&set->hist[LATENCY_WAIT], monotonic_us() - lt->wait_since_us);
    lt->wait_since_us = 0;
}

void latency_login_end(struct latency_times *lt, int64_t accepted_us, struct latency_book *b,
                       const struct registry_region *rr)
{
    latency_wait_end(lt, b, rr);
    if (accepted_us == 0)
        return;
    struct latency_set *set = latency_set_of(b, rr);
    if (set != NULL)
        latency_add(&set->hist[LATENCY_LOGIN], monotonic_us() - accepted_us);
}
