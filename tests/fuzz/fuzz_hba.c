/*
 * fuzz_hba.c
 *    libFuzzer target for proxy/base/hba.c.  The input is an
 *    auth_hba_file; a line's @name includes the input's text after its
 *    first form feed (none: the include cannot be read).  Besides not
 *    crashing, a parse must keep its promises: a code it documents, an
 *    error with a line within the input and a reason, every line read
 *    well formed; anything else traps.  Each line read is matched
 *    against a few requests.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/base/hba.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

struct input {
    const char *text;
    size_t len;
};

static bool fuzz_include(void *arg, const char *name, char **text, size_t *len, char *why,
                         size_t whycap)
{
    const struct input *in = arg;
    const char *ff = memchr(in->text, '\f', in->len);
    check(strlen(name) <= HBA_TOKEN_MAX);
    if (ff == NULL) {
        strncpy(why, "no such file", whycap - 1);
        why[whycap - 1] = '\0';
        return false;
    }
    size_t n = in->len - (size_t)(ff + 1 - in->text);
    if ((*text = malloc(n > 0 ? n : 1)) == NULL)
        return false;
    memcpy(*text, ff + 1, n);
    *len = n;
    return true;
}

static void check_names(const struct hba_name *names, size_t n)
{
    check(n > 0 || names == NULL);
    for (size_t i = 0; i < n; i++) {
        check(names[i].kind == HBA_NAME_EXACT || names[i].kind == HBA_NAME_ALL ||
              names[i].kind == HBA_NAME_SAMEUSER);
        check((names[i].kind == HBA_NAME_EXACT) == (names[i].name != NULL));
        check(names[i].name == NULL || strlen(names[i].name) <= HBA_TOKEN_MAX);
    }
}

static void check_line(const struct hba_line *l, int lines)
{
    check(l->line >= 1 && l->line <= lines);
    check(l->n_databases > 0 && l->n_users > 0);
    check_names(l->databases, l->n_databases);
    check_names(l->users, l->n_users);
    check(l->conn != HBA_LOCAL || l->any_address);
    if (!l->any_address) {
        check(l->address.family == AF_INET || l->address.family == AF_INET6);
        check(l->address.prefix >= 0 &&
              l->address.prefix <= (l->address.family == AF_INET ? 32 : 128));
    }
    check(l->method != HBA_METHOD_CERT ||
          (l->conn == HBA_HOSTSSL && l->clientcert == HBA_CLIENTCERT_VERIFY_FULL));
    check(l->clientcert == HBA_CLIENTCERT_NONE || l->conn == HBA_HOSTSSL);
}

/* A few requests: each match is a line of the file, the first that matches. */
static void fuzz_match(const struct hba_file *f)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET, "10.1.2.3", &v4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
    const struct sockaddr *addrs[] = {NULL, (const struct sockaddr *)&v4,
                                      (const struct sockaddr *)&v6};
    for (size_t a = 0; a < 3; a++) {
        for (int tls = 0; tls < 2; tls++) {
            struct hba_request r = {"app", "app", addrs[a], tls != 0};
            const struct hba_line *l = hba_match(f, &r);
            check(l == NULL || (l >= f->lines && l < f->lines + f->count));
            check(l == NULL || (l->conn == HBA_LOCAL) == (addrs[a] == NULL));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {(const char *)data, size};
    struct hba_file f;
    struct hba_error err;
    int lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    int rc = hba_parse(in.text, size, fuzz_include, &in, &f, &err);
    check(rc == HBA_OK || rc == HBA_ESYNTAX || rc == HBA_EUNSUPPORTED || rc == HBA_ENOMEM ||
          rc == HBA_EFILE);
    check(strnlen(err.why, sizeof(err.why)) < sizeof(err.why));
    if (rc != HBA_OK)
        check(err.line >= 1 && err.line <= lines && err.why[0] != '\0');
    for (size_t i = 0; i < f.count; i++)
        if (rc == HBA_OK || i + 1 < f.count)
            check_line(&f.lines[i], lines);
    if (rc == HBA_OK)
        fuzz_match(&f);
    hba_free(&f);
    return 0;
}
