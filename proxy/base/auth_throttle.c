/*
 * auth_throttle.c — the table of failed logins per (address, user name).
 * See auth_throttle.h for the rules and why they are so.
 */
#include "proxy/base/auth_throttle.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* PostgreSQL's NAMEDATALEN - 1: longer role names are cut there. */
#define THROTTLE_USER_MAX 63

int auth_throttle_init(struct auth_throttle *t)
{
    memset(t, 0, sizeof(*t));
    if (RAND_bytes(t->secret, sizeof(t->secret)) != 1)
        return -1;
    pthread_mutex_init(&t->lock, NULL);
    return 0;
}

/* Frees the records and the mutex. */
void auth_throttle_free(struct auth_throttle *t)
{
    free(t->records);
    t->records = NULL;
    pthread_mutex_destroy(&t->lock);
}

/* The source as the throttle counts it: family, then 16 bytes. */
static void throttle_source(const struct sockaddr *addr, uint8_t out[17])
{
    memset(out, 0, 17);
    out[0] = (uint8_t)addr->sa_family;
    if (addr->sa_family == AF_INET) {
        memcpy(out + 1, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return;
    }
    if (addr->sa_family != AF_INET6)
        return; /* a Unix socket: one source */
    const uint8_t *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
        out[0] = AF_INET;
        memcpy(out + 1, a + 12, 4);
        return;
    }
    memcpy(out + 1, a, 8); /* the /64: the rest is the machine's to choose */
}

void auth_throttle_key(const struct auth_throttle *t, const struct sockaddr *addr, const char *user,
                       struct throttle_key *k)
{
    uint8_t msg[17 + THROTTLE_USER_MAX], digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    size_t ulen = strnlen(user, THROTTLE_USER_MAX);
    throttle_source(addr, msg);
    memcpy(msg + 17, user, ulen);
    HMAC(EVP_sha256(), t->secret, sizeof(t->secret), msg, 17 + ulen, digest, &dlen);
    memcpy(k->id, digest, sizeof(k->id));
}

int64_t auth_throttle_delay(const struct throttle_params *p, uint32_t failures)
{
    if (p->threshold <= 0 || failures < (uint32_t)p->threshold)
        return 0;
    int64_t d = p->delay_ms;
    for (uint32_t i = (uint32_t)p->threshold; i < failures && d < p->max_delay_ms; i++)
        d *= 2;
    return d < p->max_delay_ms ? d : p->max_delay_ms;
}

/* The key is an HMAC, so its first bytes are an even hash an attacker cannot aim at one bucket. */
static struct throttle_record *throttle_bucket(const struct auth_throttle *t,
                                               const struct throttle_key *k)
{
    uint32_t h;
    memcpy(&h, k->id, sizeof(h));
    return &t->records[(h % THROTTLE_BUCKETS) * THROTTLE_WAYS];
}

/* A record whose last failure is older than THROTTLE_FORGET_MS counts as no record. */
static bool throttle_expired(const struct throttle_record *r, int64_t now)
{
    return now - r->last_failure > THROTTLE_FORGET_MS;
}

/* The pair's live record, or NULL; an expired one is dropped on the way. */
static struct throttle_record *throttle_find(const struct auth_throttle *t,
                                             const struct throttle_key *k, int64_t now)
{
    if (t->records == NULL)
        return NULL;
    struct throttle_record *b = throttle_bucket(t, k);
    for (int i = 0; i < THROTTLE_WAYS; i++) {
        struct throttle_record *r = &b[i];
        if (r->failures == 0 || memcmp(r->key.id, k->id, sizeof(k->id)) != 0)
            continue;
        if (!throttle_expired(r, now))
            return r;
        memset(r, 0, sizeof(*r));
        return NULL;
    }
    return NULL;
}

/* How much a record is worth keeping: free < expired < not throttled yet < throttled. */
static int throttle_worth(const struct throttle_record *r, const struct throttle_params *p,
                          int64_t now)
{
    if (r->failures == 0)
        return 0;
    if (throttle_expired(r, now))
        return 1;
    return p->threshold > 0 && r->failures >= (uint32_t)p->threshold ? 3 : 2;
}

/* The slot of the bucket to reuse: the least worth keeping, the oldest of those. */
static struct throttle_record *throttle_victim(struct throttle_record *b,
                                               const struct throttle_params *p, int64_t now)
{
    struct throttle_record *v = &b[0];
    int vw = throttle_worth(v, p, now);
    for (int i = 1; i < THROTTLE_WAYS && vw > 0; i++) {
        int w = throttle_worth(&b[i], p, now);
        if (w < vw || (w == vw && b[i].last_failure < v->last_failure)) {
            v = &b[i];
            vw = w;
        }
    }
    return v;
}

enum throttle_verdict auth_throttle_admit(struct auth_throttle *t, const struct throttle_params *p,
                                          const struct throttle_key *k, int64_t now_ms,
                                          struct throttle_state *out)
{
    enum throttle_verdict v = THROTTLE_GO;
    memset(out, 0, sizeof(*out));
    if (p->threshold <= 0)
        return THROTTLE_GO;
    pthread_mutex_lock(&t->lock);
    struct throttle_record *r = throttle_find(t, k, now_ms);
    if (r != NULL && r->failures >= (uint32_t)p->threshold) {
        int64_t start = r->not_before > now_ms ? r->not_before : now_ms;
        out->failures = r->failures;
        out->wait_ms = start - now_ms;
        if (out->wait_ms > p->horizon_ms) {
            v = THROTTLE_REFUSE;
        } else {
            /* Booked: the pair's next attempt waits its own delay after this one. */
            r->not_before = start + auth_throttle_delay(p, r->failures);
            v = out->wait_ms > 0 ? THROTTLE_WAIT : THROTTLE_GO;
        }
    } else if (r != NULL) {
        out->failures = r->failures;
    }
    pthread_mutex_unlock(&t->lock);
    return v;
}

/* The pair's record, made when there is none; NULL when the table cannot be allocated. */
static struct throttle_record *throttle_take(struct auth_throttle *t,
                                             const struct throttle_params *p,
                                             const struct throttle_key *k, int64_t now,
                                             bool *evicted)
{
    if (t->records == NULL && (t->records = calloc((size_t)THROTTLE_BUCKETS * THROTTLE_WAYS,
                                                   sizeof(*t->records))) == NULL)
        return NULL;
    struct throttle_record *r = throttle_find(t, k, now);
    if (r != NULL)
        return r;
    r = throttle_victim(throttle_bucket(t, k), p, now);
    *evicted = throttle_worth(r, p, now) > 1;
    memset(r, 0, sizeof(*r));
    r->key = *k;
    return r;
}

uint32_t auth_throttle_failed(struct auth_throttle *t, const struct throttle_params *p,
                              const struct throttle_key *k, int64_t now_ms, bool *evicted)
{
    uint32_t failures = 0;
    *evicted = false;
    if (p->threshold <= 0)
        return 0;
    pthread_mutex_lock(&t->lock);
    struct throttle_record *r = throttle_take(t, p, k, now_ms, evicted);
    if (r != NULL) {
        if (r->failures < UINT32_MAX)
            r->failures++;
        r->last_failure = now_ms;
        int64_t next = now_ms + auth_throttle_delay(p, r->failures);
        if (next > r->not_before)
            r->not_before = next;
        failures = r->failures;
    }
    pthread_mutex_unlock(&t->lock);
    return failures;
}

void auth_throttle_succeeded(struct auth_throttle *t, const struct throttle_key *k)
{
    pthread_mutex_lock(&t->lock);
    struct throttle_record *r = throttle_find(t, k, 0);
    if (r != NULL)
        memset(r, 0, sizeof(*r));
    pthread_mutex_unlock(&t->lock);
}
