/*
 * userlist.h — "user" "SCRAM-SHA-256$..." lines of auth_file.
 */
#ifndef PGNEAR_PROXY_USERLIST_H
#define PGNEAR_PROXY_USERLIST_H

#include <stddef.h>

struct userlist_entry {
    char *user;
    char *secret;
};

struct userlist {
    size_t count;
    struct userlist_entry *items;
};

/* Loads PgBouncer-style lines: "name" "secret", with "" for a literal quote. */
int userlist_load(struct userlist *ul, const char *path, char *err, size_t errcap);
const char *userlist_find(const struct userlist *ul, const char *user);
void userlist_free(struct userlist *ul);

#endif
