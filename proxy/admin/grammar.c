/*
 * grammar.c — the admin console's command language (grammar.h).
 *
 * A small lexer turns the text into tokens (words, quoted strings, quoted
 * names, `=`, `;`), skipping blanks and comments; a command is the longest
 * row of the table whose keywords the first words match, and its row says
 * how its arguments are read.  Every fault names its place in the text.
 */
#include "proxy/admin/grammar.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/utf8.h"
#include "routing/need.h"

/* How a command's arguments are read. */
enum args {
    ARGS_NONE,
    ARGS_OPT_REGION, /* [region] */
    ARGS_REGION,     /* region */
    ARGS_ROUTE,      /* FOR CITY|IP|LOCATION|REGION value */
    ARGS_CLIENT,     /* client_id */
    ARGS_SET,        /* setting = value */
    ARGS_PLAN,       /* [TO version] [IN REGION region] */
    ARGS_UP,         /* [TO version] [IN REGION region] [FORCE] */
    ARGS_NEXT,       /* [IN REGION region] [FORCE] */
    ARGS_RESOLVE,    /* version AS applied|failed [IN REGION region] */
    ARGS_RETRY,      /* version [IN REGION region] [FORCE] */
    ARGS_DOWN,       /* TO version [IN REGION region] [FORCE] */
    ARGS_MOVE_ONE,   /* client_id TO REGION region */
    ARGS_MOVE_MANY,  /* FROM REGION region [TO REGION region] | HOME */
    ARGS_MOVE_DB,    /* database TO REGION region | ABORT */
};

static const struct admin_command_def commands[] = {
    {ADMIN_SHOW_HELP, {"SHOW", "HELP"}, ARGS_NONE, "SHOW HELP", "lists the commands"},
    {ADMIN_SHOW_VERSION, {"SHOW", "VERSION"}, ARGS_NONE, "SHOW VERSION", "pgnear's version"},
    {ADMIN_SHOW_CONFIG,
     {"SHOW", "CONFIG"},
     ARGS_NONE,
     "SHOW CONFIG",
     "every setting with its value, and whether a reload can change it"},
    {ADMIN_SHOW_REGIONS,
     {"SHOW", "REGIONS"},
     ARGS_NONE,
     "SHOW REGIONS",
     "each host of each region: the admin's state, location, role, health, last check, sessions"},
    {ADMIN_SHOW_CLIENTS,
     {"SHOW", "CLIENTS"},
     ARGS_NONE,
     "SHOW CLIENTS",
     "one row a client: address, user, database, state, region, server, where it was placed "
     "and how, bytes"},
    {ADMIN_SHOW_SERVERS,
     {"SHOW", "SERVERS"},
     ARGS_NONE,
     "SHOW SERVERS",
     "one row a server connection: region, host, state, client, age, bytes"},
    {ADMIN_SHOW_POOLS,
     {"SHOW", "POOLS"},
     ARGS_NONE,
     "SHOW POOLS",
     "per region, database and user: clients and servers"},
    {ADMIN_SHOW_STATS,
     {"SHOW", "STATS"},
     ARGS_NONE,
     "SHOW STATS",
     "counters since start: sessions, logins, routing decisions by source, failovers, bytes"},
    {ADMIN_SHOW_LISTS,
     {"SHOW", "LISTS"},
     ARGS_NONE,
     "SHOW LISTS",
     "how many clients, admin sessions, hosts and workers there are"},
    {ADMIN_SHOW_PEERS,
     {"SHOW", "PEERS"},
     ARGS_NONE,
     "SHOW PEERS",
     "the fleet's instances (peers): address, reachable, cancel requests forwarded each way, "
     "failures"},
    {ADMIN_SHOW_ROUTE,
     {"SHOW", "ROUTE"},
     ARGS_ROUTE,
     "SHOW ROUTE FOR CITY 'x' | IP 'a.b.c.d' | LOCATION 'lat,lon' | REGION 'r' [NEEDING "
     "read-write | read-only | primary | standby | prefer-standby | prefer-primary | any]",
     "the regions a session with this evidence would try now, in order, and why"},
    {ADMIN_RELOAD,
     {"RELOAD"},
     ARGS_NONE,
     "RELOAD",
     "re-reads the configuration for new sessions; says what waits for a restart"},
    {ADMIN_SET,
     {"SET"},
     ARGS_SET,
     "SET setting = value",
     "changes a reloadable setting until the next reload"},
    {ADMIN_RECONNECT,
     {"RECONNECT"},
     ARGS_OPT_REGION,
     "RECONNECT [region]",
     "replaces server connections once their clients are done with them"},
    {ADMIN_PAUSE,
     {"PAUSE"},
     ARGS_OPT_REGION,
     "PAUSE [region]",
     "holds each session's next query once its transaction has ended; returns when all are held"},
    {ADMIN_RESUME, {"RESUME"}, ARGS_OPT_REGION, "RESUME [region]", "lets held queries go"},
    {ADMIN_DISABLE,
     {"DISABLE"},
     ARGS_REGION,
     "DISABLE region",
     "routes no new sessions to the region; the next nearest takes them"},
    {ADMIN_ENABLE, {"ENABLE"}, ARGS_REGION, "ENABLE region", "routes new sessions there again"},
    {ADMIN_DRAIN,
     {"DRAIN"},
     ARGS_REGION,
     "DRAIN region",
     "disables the region, then closes each of its sessions once it is idle"},
    {ADMIN_KILL, {"KILL"}, ARGS_CLIENT, "KILL client_id", "closes one client session"},
    {ADMIN_SHUTDOWN,
     {"SHUTDOWN"},
     ARGS_NONE,
     "SHUTDOWN",
     "stops accepting and ends once sessions have (as SIGTERM)"},
    {ADMIN_SHUTDOWN_WAIT,
     {"SHUTDOWN", "WAIT"},
     ARGS_NONE,
     "SHUTDOWN WAIT",
     "stops accepting and ends once sessions have, however long they take (as SIGUSR2: an "
     "upgrade, another pgnear taking the new connections)"},
    {ADMIN_SHOW_MIGRATIONS,
     {"SHOW", "MIGRATIONS"},
     ARGS_NONE,
     "SHOW MIGRATIONS",
     "each step of migrations_dir with its state in each region, from the regions' histories"},
    {ADMIN_MIGRATE_PLAN,
     {"MIGRATE", "PLAN"},
     ARGS_PLAN,
     "MIGRATE PLAN [TO version] [IN REGION region]",
     "the steps MIGRATE UP would run, region by region, in order; runs nothing"},
    {ADMIN_MIGRATE_NEXT,
     {"MIGRATE", "NEXT"},
     ARGS_NEXT,
     "MIGRATE NEXT [IN REGION region] [FORCE]",
     "runs the lowest pending step in each region where it is pending, region by region"},
    {ADMIN_MIGRATE_UP,
     {"MIGRATE", "UP"},
     ARGS_UP,
     "MIGRATE UP [TO version] [IN REGION region] [FORCE]",
     "runs every pending step up to the version, region by region in migration order, each "
     "region fully before the next; FORCE ends the sessions that keep a pause step waiting"},
    {ADMIN_MIGRATE_RESOLVE,
     {"MIGRATE", "RESOLVE"},
     ARGS_RESOLVE,
     "MIGRATE RESOLVE version AS applied|failed|reverted [IN REGION region]",
     "settles the step where it is uncertain, or failed without a transaction, as the admin says "
     "(recorded in the history)"},
    {ADMIN_MIGRATE_RETRY,
     {"MIGRATE", "RETRY"},
     ARGS_RETRY,
     "MIGRATE RETRY version [IN REGION region] [FORCE]",
     "runs the step again where it is uncertain or failed: a no-transaction step from its first "
     "statement not done"},
    {ADMIN_MIGRATE_DOWN,
     {"MIGRATE", "DOWN"},
     ARGS_DOWN,
     "MIGRATE DOWN TO version [IN REGION region] [FORCE]",
     "runs the down scripts of the steps applied above the version, newest first, region by "
     "region in reverse migration order"},
    {ADMIN_MOVE_CLIENT,
     {"MOVE", "CLIENT"},
     ARGS_MOVE_ONE,
     "MOVE CLIENT client_id TO REGION region",
     "moves the session to a server of the region at its next transaction boundary; the client "
     "keeps its connection"},
    {ADMIN_MOVE_CLIENTS,
     {"MOVE", "CLIENTS"},
     ARGS_MOVE_MANY,
     "MOVE CLIENTS FROM REGION region [TO REGION region] | MOVE CLIENTS HOME",
     "moves every movable session of the region (to its next region by its route, without TO); "
     "HOME: every session whose route now picks another region than the one it is on"},
    {ADMIN_MOVE_DATABASE,
     {"MOVE", "DATABASE"},
     ARGS_MOVE_DB,
     "MOVE DATABASE database TO REGION region | ... CUTOVER | ... REVERT | ... FINISH | ... ABORT",
     "checks, then copies the database to the region's primary by logical replication while its "
     "clients keep working; CUTOVER switches it there at a transaction boundary, moving its "
     "sessions; REVERT switches it back; FINISH ends the move; ABORT removes what the move made "
     "before a cutover"},
    {ADMIN_SHOW_MOVES,
     {"SHOW", "MOVES"},
     ARGS_NONE,
     "SHOW MOVES",
     "one row per database move: regions, state, tables copied, size, lag, who started it"},
    {ADMIN_MIGRATE_ABORT,
     {"MIGRATE", "ABORT"},
     ARGS_NONE,
     "MIGRATE ABORT",
     "stops the migration running on this pgnear: cancels its statement, rolls back its step, "
     "lets held sessions go"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* First words of SQL statements: psql and drivers send these, the console does not run them. */
static const char *const sql_words[] = {
    "SELECT",  "WITH",       "INSERT",    "UPDATE",  "DELETE",   "BEGIN",   "START",
    "COMMIT",  "ROLLBACK",   "END",       "ABORT",   "VALUES",   "TABLE",   "CREATE",
    "DROP",    "ALTER",      "COPY",      "LISTEN",  "UNLISTEN", "NOTIFY",  "PREPARE",
    "EXECUTE", "DEALLOCATE", "FETCH",     "DECLARE", "CLOSE",    "DISCARD", "EXPLAIN",
    "GRANT",   "REVOKE",     "TRUNCATE",  "ANALYZE", "VACUUM",   "LOCK",    "CALL",
    "DO",      "COMMENT",    "SAVEPOINT", "RELEASE", "RESET",    "MOVE",    "CHECKPOINT",
    "REINDEX", "CLUSTER",    "SECURITY",  "REFRESH", "IMPORT",   "MERGE",
};

void admin_error_setv(struct admin_error *e, const char *sqlstate, const char *detail,
                      const char *hint, const char *fmt, va_list ap)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    snprintf(e->detail, sizeof(e->detail), "%s", detail != NULL ? detail : "");
    snprintf(e->hint, sizeof(e->hint), "%s", hint != NULL ? hint : "");
}

void admin_error_set(struct admin_error *e, const char *sqlstate, const char *detail,
                     const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    admin_error_setv(e, sqlstate, detail, hint, fmt, ap);
    va_end(ap);
}

const struct admin_command_def *admin_commands(size_t *n)
{
    *n = N_COMMANDS;
    return commands;
}

const char *admin_command_name(enum admin_cmd_kind kind, char *buf, size_t cap)
{
    snprintf(buf, cap, "?");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].kind == kind)
            snprintf(buf, cap, "%s%s%s", commands[i].words[0], commands[i].words[1] ? " " : "",
                     commands[i].words[1] ? commands[i].words[1] : "");
    return buf;
}

/* ---- lexer ---- */

enum tok_type { TOK_END, TOK_WORD, TOK_STRING, TOK_NAME, TOK_EQUALS, TOK_SEMI, TOK_OTHER };

struct token {
    enum tok_type type;
    size_t start, len; /* where it is in the text */
    size_t text_len;
    char text[ADMIN_VALUE_MAX + 1]; /* last: lex_next clears what comes before */
};

struct lexer {
    const char *p;
    size_t len, pos;
    struct admin_error *err;
};

static int lex_fail(struct lexer *lx, size_t pos, const char *sqlstate, const char *hint,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int lex_fail(struct lexer *lx, size_t pos, const char *sqlstate, const char *hint,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    admin_error_setv(lx->err, sqlstate, NULL, hint, fmt, ap);
    va_end(ap);
    lx->err->position = (int)pos + 1;
    return ADMIN_PARSE_ERROR;
}

/* Skips blanks and comments; -1 on a comment that never ends. */
static int lex_skip(struct lexer *lx)
{
    while (lx->pos < lx->len) {
        const char *c = lx->p + lx->pos;
        size_t left = lx->len - lx->pos;
        if (isspace((unsigned char)c[0])) {
            lx->pos++;
        } else if (left >= 2 && c[0] == '-' && c[1] == '-') {
            while (lx->pos < lx->len && lx->p[lx->pos] != '\n')
                lx->pos++;
        } else if (left >= 2 && c[0] == '/' && c[1] == '*') {
            size_t start = lx->pos;
            lx->pos += 2;
            while (lx->pos + 1 < lx->len && !(lx->p[lx->pos] == '*' && lx->p[lx->pos + 1] == '/'))
                lx->pos++;
            if (lx->pos + 1 >= lx->len)
                return lex_fail(lx, start, "42601", NULL, "unterminated /* comment");
            lx->pos += 2;
        } else {
            return 0;
        }
    }
    return 0;
}

static bool word_char(const struct lexer *lx, size_t i)
{
    unsigned char c = (unsigned char)lx->p[i];
    if (c == '-' && i + 1 < lx->len && lx->p[i + 1] == '-')
        return false; /* a comment starts */
    return isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '+' || c >= 0x80;
}

/* 'text' or "name": the doubled quote stands for itself. */
static int lex_quoted(struct lexer *lx, struct token *t, char quote)
{
    size_t max = quote == '"' ? ADMIN_NAME_MAX : ADMIN_VALUE_MAX;
    lx->pos++;
    for (;;) {
        if (lx->pos >= lx->len)
            return lex_fail(lx, t->start, "42601", NULL,
                            quote == '"' ? "unterminated quoted identifier"
                                         : "unterminated quoted string");
        char c = lx->p[lx->pos++];
        if (c == quote) {
            if (lx->pos < lx->len && lx->p[lx->pos] == quote)
                lx->pos++;
            else
                break;
        }
        if (t->text_len == max)
            return quote == '"'
                       ? lex_fail(lx, t->start, "42622", NULL, "name is too long (over %d bytes)",
                                  ADMIN_NAME_MAX)
                       : lex_fail(lx, t->start, "54000", NULL,
                                  "quoted string is too long (over %d bytes)", ADMIN_VALUE_MAX);
        t->text[t->text_len++] = c;
    }
    t->text[t->text_len] = '\0';
    t->type = quote == '"' ? TOK_NAME : TOK_STRING;
    return 0;
}

static int lex_next(struct lexer *lx, struct token *t)
{
    memset(t, 0, sizeof(*t) - sizeof(t->text));
    t->text[0] = '\0';
    if (lex_skip(lx) < 0)
        return ADMIN_PARSE_ERROR;
    t->start = lx->pos;
    if (lx->pos >= lx->len) {
        t->type = TOK_END;
        return 0;
    }
    char c = lx->p[lx->pos];
    int rc = 0;
    if (c == '\'' || c == '"') {
        rc = lex_quoted(lx, t, c);
    } else if (c == '=' || c == ';') {
        t->type = c == '=' ? TOK_EQUALS : TOK_SEMI;
        lx->pos++;
    } else if (word_char(lx, lx->pos)) {
        while (lx->pos < lx->len && word_char(lx, lx->pos)) {
            if (t->text_len == ADMIN_VALUE_MAX)
                return lex_fail(lx, t->start, "54000", NULL, "word is too long");
            t->text[t->text_len++] = lx->p[lx->pos++];
        }
        t->text[t->text_len] = '\0';
        t->type = TOK_WORD;
    } else {
        t->type = TOK_OTHER;
        t->text[0] = c;
        t->text[1] = '\0';
        lx->pos++;
    }
    t->len = lx->pos - t->start;
    return rc;
}

/* "syntax error at or near ..." for the token, as PostgreSQL words it. */
static int syntax_error(struct lexer *lx, const struct token *t, const char *hint)
{
    if (t->type == TOK_END)
        return lex_fail(lx, t->start, "42601", hint, "syntax error at end of input");
    return lex_fail(lx, t->start, "42601", hint, "syntax error at or near \"%.*s\"",
                    (int)(t->len < 64 ? t->len : 64), lx->p + t->start);
}

/* ---- the closest commands, for a hint ---- */

/* Edit distance (insert, delete, substitute), case-insensitively, over at most 63 bytes. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strnlen(a, 63), lb = strnlen(b, 63);
    int row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = toupper((unsigned char)a[i - 1]) != toupper((unsigned char)b[j - 1]);
            int best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The command's keywords, "SHOW CLIENTS". */
static void command_words(const struct admin_command_def *def, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", def->words[0], def->words[1] ? " " : "",
             def->words[1] ? def->words[1] : "");
}

/* 'Did you mean "SHOW CLIENTS"?' for what the user typed (one or two words), or the list hint. */
static void closest_hint(const char *typed, char *hint, size_t cap)
{
    int best = 1 << 30;
    const char *found[3];
    int nfound = 0;
    char words[64];
    for (size_t i = 0; i < N_COMMANDS; i++) {
        command_words(&commands[i], words, sizeof(words));
        int d = edit_distance(typed, words);
        if (d < best) {
            best = d;
            nfound = 0;
        }
        if (d == best && nfound < 3)
            found[nfound++] = commands[i].syntax;
    }
    int allowed = (int)strlen(typed) / 3 > 2 ? (int)strlen(typed) / 3 : 2;
    if (best > allowed || nfound == 0) {
        snprintf(hint, cap, "Type SHOW HELP for the list of commands.");
        return;
    }
    if (nfound == 1)
        snprintf(hint, cap, "Did you mean \"%s\"?", found[0]);
    else if (nfound == 2)
        snprintf(hint, cap, "Did you mean \"%s\" or \"%s\"?", found[0], found[1]);
    else
        snprintf(hint, cap, "Did you mean \"%s\", \"%s\" or \"%s\"?", found[0], found[1], found[2]);
}

/* ---- commands and their arguments ---- */

struct parser {
    struct lexer lx;
    struct token tok; /* the current token */
    struct admin_cmd *out;
};

static int advance(struct parser *ps)
{
    return lex_next(&ps->lx, &ps->tok);
}

/* The table row whose keywords the words from here match, longest first; NULL when none. */
static const struct admin_command_def *match_command(const struct token *w0, const struct token *w1)
{
    const struct admin_command_def *best = NULL;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct admin_command_def *def = &commands[i];
        if (strcasecmp(def->words[0], w0->text) != 0)
            continue;
        if (def->words[1] == NULL) {
            if (best == NULL)
                best = def;
        } else if (w1->type == TOK_WORD && strcasecmp(def->words[1], w1->text) == 0) {
            best = def;
        }
    }
    return best;
}

static bool is_sql_word(const char *w)
{
    for (size_t i = 0; i < sizeof(sql_words) / sizeof(sql_words[0]); i++)
        if (strcasecmp(w, sql_words[i]) == 0)
            return true;
    return false;
}

/* MOVE CLIENT, MOVE CLIENTS, MOVE DATABASE: the console's, not SQL's MOVE of a cursor. */
static bool moves_clients(const struct parser *ps)
{
    if (strcasecmp(ps->tok.text, "MOVE") != 0)
        return false;
    struct parser ahead = *ps;
    struct admin_error err;
    ahead.lx.err = &err;
    if (lex_next(&ahead.lx, &ahead.tok) < 0 || ahead.tok.type != TOK_WORD)
        return false;
    return strcasecmp(ahead.tok.text, "CLIENT") == 0 ||
           strcasecmp(ahead.tok.text, "CLIENTS") == 0 ||
           strcasecmp(ahead.tok.text, "DATABASE") == 0;
}

static int unknown_command(struct parser *ps, const struct token *w0, const struct token *w1)
{
    char typed[160], hint[256];
    /* SHOW takes a second keyword; the other commands are one word. */
    if (w1->type == TOK_WORD && strcasecmp(w0->text, "SHOW") == 0)
        snprintf(typed, sizeof(typed), "%.63s %.63s", w0->text, w1->text);
    else
        snprintf(typed, sizeof(typed), "%.63s", w0->text);
    closest_hint(typed, hint, sizeof(hint));
    return lex_fail(&ps->lx, w0->start, "42601", hint, "unrecognized admin command \"%s\"", typed);
}

/* A region or setting name: a bare word or a "quoted name". */
static int take_name(struct parser *ps, char *dst, const char *what)
{
    const struct token *t = &ps->tok;
    if (t->type != TOK_WORD && t->type != TOK_NAME) {
        char hint[96];
        snprintf(hint, sizeof(hint), "Name the %s.", what);
        return syntax_error(&ps->lx, t, hint);
    }
    if (t->text_len > ADMIN_NAME_MAX)
        return lex_fail(&ps->lx, t->start, "42622", NULL, "%s name is too long (over %d bytes)",
                        what, ADMIN_NAME_MAX);
    memcpy(dst, t->text, t->text_len + 1);
    return advance(ps);
}

/* "lat,lon" within the globe. */
static bool valid_location(const char *v)
{
    char *end;
    errno = 0;
    double lat = strtod(v, &end);
    if (end == v || errno != 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end++ != ',')
        return false;
    const char *lon_text = end;
    double lon = strtod(lon_text, &end);
    if (end == lon_text || errno != 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    return *end == '\0' && isfinite(lat) && isfinite(lon) && lat >= -90 && lat <= 90 &&
           lon >= -180 && lon <= 180;
}

/* [NEEDING target_session_attrs] after SHOW ROUTE's place. */
static int take_route_need(struct parser *ps)
{
    ps->out->need = NEED_ANY;
    if (ps->tok.type != TOK_WORD || strcasecmp(ps->tok.text, "NEEDING") != 0)
        return 0;
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    const struct token *t = &ps->tok;
    enum session_need need;
    if ((t->type != TOK_WORD && t->type != TOK_STRING) || !need_parse(t->text, &need))
        return lex_fail(&ps->lx, t->start, "22023", NULL,
                        "invalid target_session_attrs: \"%.64s\" (one of: %s)", t->text,
                        need_choices());
    ps->out->need = (int)need;
    return advance(ps);
}

/* FOR CITY|IP|LOCATION|REGION value [NEEDING need] */
static int take_route(struct parser *ps)
{
    static const char *const targets[] = {"CITY", "IP", "LOCATION", "REGION"};
    const char *hint = "Write SHOW ROUTE FOR CITY 'x', IP 'a.b.c.d', LOCATION 'lat,lon' or "
                       "REGION 'r'.";
    if (ps->tok.type != TOK_WORD || strcasecmp(ps->tok.text, "FOR") != 0)
        return syntax_error(&ps->lx, &ps->tok, hint);
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    int target = -1;
    for (int i = 0; i < 4 && ps->tok.type == TOK_WORD; i++)
        if (strcasecmp(ps->tok.text, targets[i]) == 0)
            target = i;
    if (target < 0)
        return syntax_error(&ps->lx, &ps->tok, hint);
    ps->out->route_target = (enum admin_route_target)target;
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    const struct token *t = &ps->tok;
    if (t->type != TOK_STRING && t->type != TOK_WORD && t->type != TOK_NAME)
        return syntax_error(&ps->lx, t, hint);
    memcpy(ps->out->value, t->text, t->text_len + 1);
    struct in6_addr a;
    if (target == ADMIN_ROUTE_IP && inet_pton(AF_INET, t->text, &a) != 1 &&
        inet_pton(AF_INET6, t->text, &a) != 1)
        return lex_fail(&ps->lx, t->start, "22P02", NULL,
                        "invalid input syntax for an IP address: \"%.64s\"", t->text);
    if (target == ADMIN_ROUTE_LOCATION && !valid_location(t->text))
        return lex_fail(&ps->lx, t->start, "22023",
                        "A location is 'latitude,longitude' in degrees, latitude from -90 to 90, "
                        "longitude from -180 to 180.",
                        "invalid location: \"%.64s\"", t->text);
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return take_route_need(ps);
}

static int take_client_id(struct parser *ps)
{
    const struct token *t = &ps->tok;
    if (t->type != TOK_WORD && t->type != TOK_STRING)
        return syntax_error(&ps->lx, t, "Name the client by its id (SHOW CLIENTS lists them).");
    char *end;
    errno = 0;
    unsigned long long id = strtoull(t->text, &end, 10);
    if (t->text_len == 0 || !isdigit((unsigned char)t->text[0]) || *end != '\0' || errno != 0)
        return lex_fail(&ps->lx, t->start, "22023",
                        "A client id is a whole number from SHOW CLIENTS.",
                        "invalid client id: \"%.64s\"", t->text);
    ps->out->client_id = id;
    return advance(ps);
}

/* setting = value, or setting TO value */
static int take_setting(struct parser *ps)
{
    if (take_name(ps, ps->out->setting, "setting") < 0)
        return ADMIN_PARSE_ERROR;
    const struct token *t = &ps->tok;
    if (t->type != TOK_EQUALS && !(t->type == TOK_WORD && strcasecmp(t->text, "TO") == 0))
        return syntax_error(&ps->lx, t, "Write SET setting = value.");
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (t->type != TOK_STRING && t->type != TOK_WORD)
        return syntax_error(&ps->lx, t, "Write SET setting = value.");
    memcpy(ps->out->value, t->text, t->text_len + 1);
    ps->out->value_quoted = t->type == TOK_STRING;
    return advance(ps);
}

/* A step's version: a whole number from 1, as the step files number them. */
/* A step's version, at least min (0: MIGRATE DOWN TO 0 undoes every step). */
static int take_version(struct parser *ps, long long min)
{
    const struct token *t = &ps->tok;
    if (t->type != TOK_WORD)
        return syntax_error(&ps->lx, t, "Write TO and a step's version.");
    char *end;
    errno = 0;
    long long v = strtoll(t->text, &end, 10);
    if (!isdigit((unsigned char)t->text[0]) || *end != '\0' || errno != 0 || v < min)
        return lex_fail(&ps->lx, t->start, "22023",
                        "A version is the whole number a step's file name starts with.",
                        "invalid step version: \"%.64s\"", t->text);
    ps->out->has_version = true;
    ps->out->version = v;
    return advance(ps);
}

/* The keyword w here; false (nothing read) when the token is something else. */
static bool at_keyword(const struct parser *ps, const char *w)
{
    return ps->tok.type == TOK_WORD && strcasecmp(ps->tok.text, w) == 0;
}

/* [FORCE], after a command that runs steps */
static int take_force(struct parser *ps, bool allowed)
{
    if (!allowed || !at_keyword(ps, "FORCE"))
        return 0;
    ps->out->force = true;
    return advance(ps) < 0 ? ADMIN_PARSE_ERROR : 0;
}

/*
 * [TO version] [IN REGION region] [FORCE], as far as the command takes
 * them: TO when to_min >= 0, with a version of at least to_min.
 */
static int take_migrate(struct parser *ps, int to_min, bool force_allowed)
{
    if (to_min >= 0 && at_keyword(ps, "TO") && (advance(ps) < 0 || take_version(ps, to_min) < 0))
        return ADMIN_PARSE_ERROR;
    if (!at_keyword(ps, "IN"))
        return take_force(ps, force_allowed);
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (!at_keyword(ps, "REGION"))
        return syntax_error(&ps->lx, &ps->tok, "Write IN REGION and the region's name.");
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    ps->out->has_region = true;
    if (take_name(ps, ps->out->region, "region") < 0)
        return ADMIN_PARSE_ERROR;
    return take_force(ps, force_allowed);
}

/* version AS applied|failed, or version alone; then [IN REGION region] */
static int take_settle(struct parser *ps, bool resolve)
{
    if (take_version(ps, 1) < 0)
        return ADMIN_PARSE_ERROR;
    if (resolve) {
        if (!at_keyword(ps, "AS") || advance(ps) < 0)
            return at_keyword(ps, "AS")
                       ? ADMIN_PARSE_ERROR
                       : syntax_error(&ps->lx, &ps->tok,
                                      "Write AS applied, AS failed or AS reverted.");
        if (!at_keyword(ps, "applied") && !at_keyword(ps, "failed") && !at_keyword(ps, "reverted"))
            return syntax_error(&ps->lx, &ps->tok, "Write AS applied, AS failed or AS reverted.");
        ps->out->resolve_applied = at_keyword(ps, "applied");
        ps->out->resolve_reverted = at_keyword(ps, "reverted");
        if (advance(ps) < 0)
            return ADMIN_PARSE_ERROR;
    }
    return take_migrate(ps, -1, !resolve);
}

/* REGION name, after FROM or TO: into dst. */
static int take_keyword_region(struct parser *ps, char *dst)
{
    if (!at_keyword(ps, "REGION"))
        return syntax_error(&ps->lx, &ps->tok, "Write REGION and the region's name.");
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return take_name(ps, dst, "region");
}

/* MOVE CLIENT id TO REGION r; MOVE CLIENTS FROM REGION r [TO REGION r2] | HOME */
static int take_move(struct parser *ps, bool one)
{
    struct admin_cmd *out = ps->out;
    if (one) {
        if (take_client_id(ps) < 0)
            return ADMIN_PARSE_ERROR;
    } else if (at_keyword(ps, "HOME")) {
        out->move_home = true;
        return advance(ps);
    } else {
        if (!at_keyword(ps, "FROM"))
            return syntax_error(&ps->lx, &ps->tok, "Write FROM REGION and a region, or HOME.");
        if (advance(ps) < 0 || take_keyword_region(ps, out->region) < 0)
            return ADMIN_PARSE_ERROR;
        out->has_region = true;
        if (!at_keyword(ps, "TO"))
            return 0;
    }
    if (!at_keyword(ps, "TO"))
        return syntax_error(&ps->lx, &ps->tok, "Write TO REGION and the region to move it to.");
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return take_keyword_region(ps, out->to_region);
}

/* MOVE DATABASE db TO REGION r | CUTOVER | REVERT | FINISH | ABORT */
static int take_move_database(struct parser *ps)
{
    static const char *const steps[] = {[ADMIN_DB_CUTOVER] = "CUTOVER",
                                        [ADMIN_DB_REVERT] = "REVERT",
                                        [ADMIN_DB_FINISH] = "FINISH",
                                        [ADMIN_DB_ABORT] = "ABORT"};
    struct admin_cmd *out = ps->out;
    if (take_name(ps, out->database, "database") < 0)
        return ADMIN_PARSE_ERROR;
    for (int a = ADMIN_DB_CUTOVER; a <= ADMIN_DB_ABORT; a++)
        if (at_keyword(ps, steps[a])) {
            out->db_action = (enum admin_db_action)a;
            return advance(ps);
        }
    if (!at_keyword(ps, "TO"))
        return syntax_error(&ps->lx, &ps->tok,
                            "Write TO REGION and a region, or CUTOVER, REVERT, FINISH or ABORT.");
    out->db_action = ADMIN_DB_MOVE;
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return take_keyword_region(ps, out->to_region);
}

static int take_args(struct parser *ps, int args)
{
    switch (args) {
    case ARGS_OPT_REGION:
        if (ps->tok.type != TOK_WORD && ps->tok.type != TOK_NAME)
            return 0;
        ps->out->has_region = true;
        return take_name(ps, ps->out->region, "region");
    case ARGS_REGION:
        ps->out->has_region = true;
        return take_name(ps, ps->out->region, "region");
    case ARGS_ROUTE:
        return take_route(ps);
    case ARGS_CLIENT:
        return take_client_id(ps);
    case ARGS_SET:
        return take_setting(ps);
    case ARGS_PLAN:
    case ARGS_UP:
    case ARGS_NEXT:
        return take_migrate(ps, args != ARGS_NEXT ? 1 : -1, args != ARGS_PLAN);
    case ARGS_DOWN:
        if (!at_keyword(ps, "TO"))
            return syntax_error(&ps->lx, &ps->tok, "Write TO and the version to go down to.");
        return take_migrate(ps, 0, true);
    case ARGS_RESOLVE:
    case ARGS_RETRY:
        return take_settle(ps, args == ARGS_RESOLVE);
    case ARGS_MOVE_ONE:
    case ARGS_MOVE_MANY:
        return take_move(ps, args == ARGS_MOVE_ONE);
    case ARGS_MOVE_DB:
        return take_move_database(ps);
    default:
        return 0;
    }
}

/* After the command: optional ';'s, then nothing but blanks. */
static int take_end(struct parser *ps)
{
    bool semi = false;
    while (ps->tok.type == TOK_SEMI) {
        semi = true;
        if (advance(ps) < 0)
            return ADMIN_PARSE_ERROR;
    }
    if (ps->tok.type == TOK_END)
        return ADMIN_PARSE_OK;
    if (semi)
        return lex_fail(&ps->lx, ps->tok.start, "0A000", "Send one command per query.",
                        "the admin console runs one command at a time");
    return syntax_error(&ps->lx, &ps->tok, NULL);
}

static int parse_command(struct parser *ps)
{
    struct token w0 = ps->tok, w1;
    if (w0.type != TOK_WORD)
        return syntax_error(&ps->lx, &w0, "Type SHOW HELP for the list of commands.");
    if (is_sql_word(w0.text) && !moves_clients(ps)) {
        lex_fail(&ps->lx, w0.start, "0A000", "Type SHOW HELP for the list of commands.",
                 "the pgnear admin console does not run SQL");
        return ADMIN_PARSE_SQL;
    }
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    w1 = ps->tok;
    const struct admin_command_def *def = match_command(&w0, &w1);
    if (def == NULL)
        return unknown_command(ps, &w0, &w1);
    ps->out->kind = def->kind;
    if (def->words[1] != NULL && advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (take_args(ps, def->args) < 0)
        return ADMIN_PARSE_ERROR;
    return take_end(ps);
}

int admin_parse(const char *text, size_t len, struct admin_cmd *out, struct admin_error *err)
{
    struct parser *ps = &(struct parser){.lx = {text, len, 0, err}, .out = out};
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (len > ADMIN_TEXT_MAX)
        return lex_fail(&ps->lx, 0, "54000", "Admin commands are short; this is not one.",
                        "admin command text is too long (%zu bytes, at most %d)", len,
                        ADMIN_TEXT_MAX);
    size_t bad = utf8_invalid_at((const uint8_t *)text, len);
    if (bad < len) {
        char bytes[24];
        size_t n = len - bad < 4 ? len - bad : 4, used = 0;
        for (size_t i = 0; i < n; i++)
            used += (size_t)snprintf(bytes + used, sizeof(bytes) - used, "%s0x%02x", i ? " " : "",
                                     (unsigned char)text[bad + i]);
        return lex_fail(&ps->lx, bad, "22021", NULL,
                        "invalid byte sequence for encoding \"UTF8\": %s", bytes);
    }
    if (advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (ps->tok.type == TOK_END || ps->tok.type == TOK_SEMI) {
        /* Blanks, comments and semicolons only. */
        while (ps->tok.type == TOK_SEMI)
            if (advance(ps) < 0)
                return ADMIN_PARSE_ERROR;
        if (ps->tok.type == TOK_END)
            return ADMIN_PARSE_EMPTY;
    }
    return parse_command(ps);
}
