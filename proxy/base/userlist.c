/*
 * userlist.c — the auth_file (userlist.h): its "user" "secret" lines read
 * into a list at load, and a user's secret looked up in it.
 */
#include "proxy/base/userlist.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads one double-quoted token, "" standing for a quote; advances *p. */
static char *userlist_token(const char **p)
{
    const char *s = *p;
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '"')
        return NULL;
    s++;
    size_t cap = strlen(s) + 1, n = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (;;) {
        if (*s == '\0') {
            free(out);
            return NULL;
        }
        if (*s == '"') {
            if (s[1] != '"')
                break;
            s++;
        }
        out[n++] = *s++;
    }
    out[n] = '\0';
    *p = s + 1;
    return out;
}

/*
 * Appends an entry that takes over user and secret; -1 (still the caller's to
 * free) when out of memory.
 */
static int userlist_add(struct userlist *ul, char *user, char *secret)
{
    struct userlist_entry *grown = realloc(ul->items, (ul->count + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    ul->items = grown;
    grown[ul->count].user = user;
    grown[ul->count].secret = secret;
    ul->count++;
    return 0;
}

int userlist_load(struct userlist *ul, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errcap, "could not open auth_file \"%s\": %m", path);
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        const char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || *p == '#' || *p == ';')
            continue;
        char *user = userlist_token(&p);
        char *secret = user ? userlist_token(&p) : NULL;
        if (secret == NULL || userlist_add(ul, user, secret) != 0) {
            free(user);
            free(secret);
            snprintf(err, errcap, "%s:%d: expected \"user\" \"secret\"", path, lineno);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

/* The secret of user, or NULL; the list is short (an auth_file), so a scan is enough. */
const char *userlist_find(const struct userlist *ul, const char *user)
{
    for (size_t i = 0; i < ul->count; i++)
        if (strcmp(ul->items[i].user, user) == 0)
            return ul->items[i].secret;
    return NULL;
}

/* Frees every entry; ul may be loaded again. */
void userlist_free(struct userlist *ul)
{
    for (size_t i = 0; i < ul->count; i++) {
        free(ul->items[i].user);
        free(ul->items[i].secret);
    }
    free(ul->items);
    ul->items = NULL;
    ul->count = 0;
}
