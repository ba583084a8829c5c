/*
 * grammar.h — the admin console's command language: text in, a parsed
 * command out.  Pure: no allocation, nothing from the rest of pgnear, so a
 * fuzz target links it alone.
 *
 * Keywords are case-insensitive words separated by any blanks and SQL's
 * two kinds of comment; one command per text, an optional `;` at its end.
 * Region and setting names are bare words (letters, digits, `_`, `-`,
 * `.`) or "double-quoted"; values are 'single-quoted' ('' for a quote,
 * backslash literal, as standard_conforming_strings = on), numbers with an
 * optional unit, or bare words.
 */
#ifndef PGNEAR_PROXY_ADMIN_GRAMMAR_H
#define PGNEAR_PROXY_ADMIN_GRAMMAR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pg_error.h"

#define ADMIN_NAME_MAX  63          /* as PostgreSQL's NAMEDATALEN - 1 */
#define ADMIN_VALUE_MAX 1024        /* a quoted value */
#define ADMIN_TEXT_MAX  (64 * 1024) /* a longer command text is refused unread */

enum admin_cmd_kind {
    ADMIN_SHOW_HELP,
    ADMIN_SHOW_VERSION,
    ADMIN_SHOW_CONFIG,
    ADMIN_SHOW_REGIONS,
    ADMIN_SHOW_CLIENTS,
    ADMIN_SHOW_SERVERS,
    ADMIN_SHOW_POOLS,
    ADMIN_SHOW_STATS,
    ADMIN_SHOW_LISTS,
    ADMIN_SHOW_ROUTE,
    ADMIN_SHOW_PEERS,
    ADMIN_RELOAD,
    ADMIN_SET,
    ADMIN_RECONNECT,
    ADMIN_PAUSE,
    ADMIN_RESUME,
    ADMIN_DISABLE,
    ADMIN_ENABLE,
    ADMIN_DRAIN,
    ADMIN_KILL,
    ADMIN_SHUTDOWN,
    ADMIN_SHUTDOWN_WAIT,
    ADMIN_SHOW_MIGRATIONS,
    ADMIN_MIGRATE_PLAN,
    ADMIN_MIGRATE_NEXT,
    ADMIN_MIGRATE_UP,
    ADMIN_MIGRATE_RESOLVE,
    ADMIN_MIGRATE_RETRY,
    ADMIN_MIGRATE_DOWN,
    ADMIN_MIGRATE_ABORT,
    ADMIN_MOVE_CLIENT,
    ADMIN_MOVE_CLIENTS,
    ADMIN_MOVE_DATABASE,
    ADMIN_SHOW_MOVES,
    ADMIN_SHOW_USERS,
    ADMIN_SHOW_DATABASES,
    ADMIN_SHOW_RTT,
    ADMIN_SHOW_HOMES,
    ADMIN_MOVE_CITY,
    ADMIN_CMD_KINDS
};

/* What SHOW ROUTE FOR names. */
enum admin_route_target {
    ADMIN_ROUTE_CITY,
    ADMIN_ROUTE_IP,
    ADMIN_ROUTE_LOCATION,
    ADMIN_ROUTE_REGION,
};

struct admin_cmd {
    enum admin_cmd_kind kind;
    bool has_region; /* PAUSE, RESUME, RECONNECT, MIGRATE PLAN: a region was named */
    char region[ADMIN_NAME_MAX + 1]; /* DISABLE, ENABLE, DRAIN, and the optional ones */
    enum admin_route_target route_target;
    char value[ADMIN_VALUE_MAX + 1];  /* SHOW ROUTE's place; SET's value */
    int need;                         /* SHOW ROUTE ... NEEDING: session_need, or -1 */
    bool value_quoted;                /* SET: the value was a quoted literal */
    char setting[ADMIN_NAME_MAX + 1]; /* SET */
    uint64_t client_id;               /* KILL */
    bool has_version;                 /* MIGRATE PLAN, MIGRATE UP: TO version */
    int64_t version;
    bool resolve_applied;  /* MIGRATE RESOLVE version AS applied */
    bool resolve_reverted; /* MIGRATE RESOLVE version AS reverted (neither: AS failed) */
    bool force;            /* MIGRATE NEXT|UP|RETRY|DOWN ... FORCE */
    /* MOVE CLIENT id TO REGION to; MOVE CLIENTS FROM REGION region [TO REGION to]; ... HOME */
    char to_region[ADMIN_NAME_MAX + 1]; /* "": each session's next region by its route */
    bool move_home;
    /* MOVE DATABASE database TO REGION to_region | CUTOVER | REVERT | FINISH | ABORT */
    char database[ADMIN_NAME_MAX + 1];
    char city[ADMIN_NAME_MAX + 1]; /* MOVE CITY 'city' OF DATABASE database ..., as written */
    enum admin_db_action {
        ADMIN_DB_MOVE,
        ADMIN_DB_CUTOVER,
        ADMIN_DB_REVERT,
        ADMIN_DB_FINISH,
        ADMIN_DB_ABORT
    } db_action;
};

/* admin_parse's results. */
enum admin_parse_result {
    ADMIN_PARSE_OK = 0,
    ADMIN_PARSE_EMPTY = 1,  /* blanks and comments only: PostgreSQL answers EmptyQueryResponse */
    ADMIN_PARSE_ERROR = -1, /* err says what and where */
    ADMIN_PARSE_SQL = -2,   /* SQL (psql's own queries): err says the console does not run it */
};

/* One command of the language, as SHOW HELP shows it. */
struct admin_command_def {
    enum admin_cmd_kind kind;
    const char *words[3]; /* keywords, upper case; NULL after the last */
    int args;             /* how its arguments are read (grammar_args.c) */
    const char *syntax;   /* "PAUSE [region]" */
    const char *help;
};

int admin_parse(const char *text, size_t len, struct admin_cmd *out, struct pg_error *err);

/* Every command, in SHOW HELP's order. */
const struct admin_command_def *admin_commands(size_t *n);

/* The keywords of a kind ("SHOW CLIENTS", "MIGRATE UP") into buf; returns buf. */
const char *admin_command_name(enum admin_cmd_kind kind, char *buf, size_t cap);

#endif
