/*
 * grammar_table.c — the admin console's commands (grammar.h): each one's
 * keywords, how its arguments are read, its syntax and help as SHOW HELP
 * shows them; the closest commands to a word typed wrong; the first words
 * of SQL, which the console does not run.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/admin/grammar.h"
#include "proxy/admin/grammar_int.h"

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
    {ADMIN_SHOW_RTT,
     {"SHOW", "RTT"},
     ARGS_NONE,
     "SHOW RTT",
     "each host's round trips as routing measures them (last, average, samples, cold, slow), and "
     "the region that callers nearest its region try first, since when"},
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
    {ADMIN_SHOW_USERS,
     {"SHOW", "USERS"},
     ARGS_NONE,
     "SHOW USERS",
     "per user and region: whether pgnear's SCRAM key for the user fits that region's server, as "
     "its logins there told; where it does not, the user's sessions cannot log in or be moved "
     "there; the user's client sessions and server connections, and their limits"},
    {ADMIN_SHOW_DATABASES,
     {"SHOW", "DATABASES"},
     ARGS_NONE,
     "SHOW DATABASES",
     "per database: its client sessions now and max_db_client_connections"},
    {ADMIN_SHOW_ROUTE,
     {"SHOW", "ROUTE"},
     ARGS_ROUTE,
     "SHOW ROUTE FOR CITY 'x' | IP 'a.b.c.d' | LOCATION 'lat,lon' | REGION 'r' [NEEDING "
     "read-write | read-only | primary | standby | prefer-standby | prefer-primary | nearest | "
     "any]",
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
    {ADMIN_MOVE_CITY,
     {"MOVE", "CITY"},
     ARGS_MOVE_CITY,
     "MOVE CITY 'city' OF DATABASE database TO REGION region | ... CUTOVER | ... REVERT | ... "
     "FINISH | ... ABORT",
     "checks, then copies one city's rows of a database homed by city (home_by), and its tables "
     "without the column, to the region's primary by logical replication; CUTOVER switches the "
     "city there, holding its sessions alone; REVERT switches it back; FINISH deletes its rows "
     "in the source; ABORT removes what the move made before a cutover"},
    {ADMIN_SHOW_MOVES,
     {"SHOW", "MOVES"},
     ARGS_NONE,
     "SHOW MOVES",
     "one row per move of a database or of a city's rows: regions, state, tables copied, size, "
     "lag, who started it"},
    {ADMIN_SHOW_HOMES,
     {"SHOW", "HOMES"},
     ARGS_NONE,
     "SHOW HOMES",
     "per database homed by a city column (home_by): each city with a home of its own and its "
     "region, then where every other city lives, with the record's move, state and time"},
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
void gram_closest_hint(const char *typed, char *hint, size_t cap)
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

/* The table row whose keywords the words from here match, longest first; NULL when none. */
const struct admin_command_def *gram_match_command(const struct token *w0, const struct token *w1)
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

bool gram_is_sql_word(const char *w)
{
    for (size_t i = 0; i < sizeof(sql_words) / sizeof(sql_words[0]); i++)
        if (strcasecmp(w, sql_words[i]) == 0)
            return true;
    return false;
}
