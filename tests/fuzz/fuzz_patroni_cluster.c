/*
 * fuzz_patroni_cluster.c
 *    libFuzzer target for protocol/patroni_cluster.c (and json.c under
 *    it): the input is a GET /cluster body.  Besides not crashing: a
 *    failure comes with a message and an empty cluster; a success has at
 *    most PATRONI_MEMBERS_MAX members with non-empty, distinct names,
 *    every string within its buffer and free of control characters, a
 *    port from 0 to 65535, a leader that is the one member holding the
 *    lock, a lag that agrees with its kind; reading again gives the same.
 *    The seeds are bodies of Debian 12's Patroni 3.0.2.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/patroni_cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void check_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    check(n < cap);
    for (size_t i = 0; i < n; i++)
        check((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

static void check_member(const struct patroni_cluster *c, size_t i)
{
    const struct patroni_member *m = &c->members[i];
    bool leads = m->role == PATRONI_ROLE_LEADER || m->role == PATRONI_ROLE_STANDBY_LEADER;

    check_text(m->name, sizeof(m->name));
    check(m->name[0] != '\0');
    check_text(m->state, sizeof(m->state));
    check_text(m->api_url, sizeof(m->api_url));
    check_text(m->host, sizeof(m->host));
    check_text(m->region, sizeof(m->region));
    check(m->port >= 0 && m->port <= 65535);
    check(m->timeline >= -1);
    check(m->lag == PATRONI_LAG_BYTES ? m->lag_bytes >= 0 : m->lag_bytes == 0);
    check(leads == (c->leader == (int)i));
    check(patroni_role_name(m->role) != NULL);
    check(patroni_cluster_find(c, m->name) == m);
    for (size_t j = 0; j < i; j++)
        check(strcmp(c->members[j].name, m->name) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct patroni_cluster *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    char err_a[PATRONI_ERROR_MAX], err_b[PATRONI_ERROR_MAX];
    int rc;

    check(a != NULL && b != NULL);
    rc = patroni_cluster_parse((const char *)data, size, a, err_a, sizeof(err_a));
    check(rc == patroni_cluster_parse((const char *)data, size, b, err_b, sizeof(err_b)));
    check(strcmp(err_a, err_b) == 0);
    if (rc != PATRONI_OK) {
        check(rc < 0 && err_a[0] != '\0');
        check(a->count == 0 && a->leader == -1);
    } else {
        check(err_a[0] == '\0');
        check(a->count <= PATRONI_MEMBERS_MAX);
        check(a->leader >= -1 && a->leader < (int)a->count);
        for (size_t i = 0; i < a->count; i++)
            check_member(a, i);
        check(memcmp(a, b, sizeof(*a)) == 0);
    }
    free(a);
    free(b);
    return 0;
}
