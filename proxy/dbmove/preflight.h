/*
 * preflight.h — what MOVE DATABASE checks before it changes anything.
 *
 * Two queries gather the facts: one on the source region's primary,
 * connected to the database that moves, and one on the target region's
 * primary, connected to moves_db (the database may not exist there yet).
 * When the target holds the database, a third query, connected to it,
 * counts what is in it.  Then dbmove_judge, which is pure, turns the facts
 * into the first refusal, each with its SQLSTATE, a detail and a hint: the
 * order below is the order in which an admin can fix them.
 */
#ifndef PGNEAR_PROXY_DBMOVE_PREFLIGHT_H
#define PGNEAR_PROXY_DBMOVE_PREFLIGHT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "protocol/pg_error.h"

#define DBMOVE_LIST_MAX  480  /* a list of names for a message, cut with "..." past this */
#define DBMOVE_ARRAY_MAX 8192 /* a text[] passed on to the target: refused when longer */

/* The source primary, connected to the database. */
struct dbmove_source_facts {
    bool in_recovery;
    char wal_level[16];
    bool superuser; /* the user of server_conninfo */
    int free_slots, free_senders;
    int server_version; /* server_version_num */
    int64_t tables;     /* ordinary and partitioned tables outside the system schemas */
    int64_t bytes;      /* pg_database_size */
    char no_identity[DBMOVE_LIST_MAX]; /* tables that cannot publish updates and deletes */
    char unlogged[DBMOVE_LIST_MAX];    /* unlogged tables: logical replication skips them */
    /* Installed extensions (plpgsql aside) and the roles that own or are granted something in it,
     * as text[] literals for the target's query. */
    char extensions[DBMOVE_ARRAY_MAX];
    char roles[DBMOVE_ARRAY_MAX];
    /* What CREATE DATABASE on the target copies. */
    char owner[64], encoding[64], collate[128], ctype[128];
};

/* The target primary, connected to moves_db. */
struct dbmove_target_facts {
    bool in_recovery;
    char wal_level[16];
    bool superuser;
    int free_slots, free_workers; /* replication origins / logical replication workers left */
    int server_version;
    bool has_database;
    int64_t relations; /* in the database, when has_database (third query) */
    bool holds_cities; /* other cities of the database live in it: not empty, by design */
    char missing_ext[DBMOVE_LIST_MAX];   /* of the source's extensions, those it cannot install */
    char missing_roles[DBMOVE_LIST_MAX]; /* of the source's roles, those it lacks */
};

/* The source's facts ($1: nothing); its one row is what dbmove_source_parse reads. */
extern const char dbmove_source_sql[];
/*
 * The target's facts: $1 the database, $2 the source's extensions, $3 the
 * source's roles (as the source query gave them).
 */
extern const char dbmove_target_sql[];
/* What the target's copy of the database holds: one row, one count. */
extern const char dbmove_target_relations_sql[];

/* 0, or -1 with why (the result is not the query's shape). */
int dbmove_source_parse(const PGresult *res, struct dbmove_source_facts *out, char *why,
                        size_t cap);
int dbmove_target_parse(const PGresult *res, struct dbmove_target_facts *out, char *why,
                        size_t cap);

/*
 * The first reason not to move database from source to target (region
 * names, for the messages); false when there is none.
 */
bool dbmove_judge(const char *database, const char *source, const char *target,
                  const struct dbmove_source_facts *src, const struct dbmove_target_facts *dst,
                  struct pg_error *out);

#endif
