/*
 * client_limits.h — client sessions counted per user and per database
 * across workers, for max_user_client_connections and
 * max_db_client_connections, and for SHOW USERS, SHOW DATABASES and the
 * metrics.
 *
 * One lock, taken only as a session is admitted (its login, after the
 * client authenticated) and as it closes, never per message.  A count that
 * falls to zero is removed, so the table holds the users and databases
 * that have sessions now.
 */
#ifndef PGNEAR_PROXY_CLIENT_LIMITS_H
#define PGNEAR_PROXY_CLIENT_LIMITS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "proxy/base/count_table.h"

/* A user's or a database's name, as counted (longer names are cut: PostgreSQL's are < 64). */
#define CLIENT_NAME_MAX 128

struct client_count {
    char name[CLIENT_NAME_MAX]; /* first: count_table keys it */
    bool is_user;               /* a user's count; else a database's */
    int clients;
};

struct client_limits {
    pthread_mutex_t lock;
    struct count_table users, databases; /* of struct client_count */
};

int client_limits_init(struct client_limits *cl);
void client_limits_free(struct client_limits *cl);

/* What client_limits_enter found. */
enum client_admit {
    CLIENT_ADMITTED,  /* counted */
    CLIENT_USER_FULL, /* max_user_client_connections reached */
    CLIENT_DB_FULL,   /* max_db_client_connections reached */
    CLIENT_NO_MEMORY, /* no room to count it */
};

/*
 * Counts one more session of user on database unless a limit says no
 * (0: no limit); nothing is counted then, and *now says how many sessions
 * the full user or database has.
 */
enum client_admit client_limits_enter(struct client_limits *cl, const char *user,
                                      const char *database, int max_user, int max_db, int *now);

/* A session client_limits_enter counted closed. */
void client_limits_leave(struct client_limits *cl, const char *user, const char *database);

/* The sessions of a user (is_user) or a database now. */
int client_limits_of(struct client_limits *cl, bool is_user, const char *name);

/* Copies up to cap counts (the users', then the databases', each in no order); returns how many. */
size_t client_limits_copy(struct client_limits *cl, struct client_count *out, size_t cap);

#endif
