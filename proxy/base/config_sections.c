/*
 * config_sections.c — the [database NAME] and [user NAME] sections: the
 * table of their keys, their load into struct need_rule, and what they say
 * for one user's sessions on one database.  A new key of these sections
 * is a row of section_keys[] (and, for a choice, its enum section_key).
 */
#include "proxy/base/config_int.h"

#include "routing/need.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <iniparser/iniparser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A need's name (need.h) as the int the key table stores. */
static bool parse_need(const char *text, int *out)
{
    enum session_need need;
    if (!need_parse(text, &need))
        return false;
    *out = (int)need;
    return true;
}

/* on/off, true/false, yes/no or 1/0 (config_parse_bool) as the int the key table stores. */
static bool parse_on_off(const char *text, int *out)
{
    bool on;
    if (!config_parse_bool(text, &on))
        return false;
    *out = on;
    return true;
}

/* A limit (max_user_connections and the like): 0 (no limit) or more, as the int stored. */
static bool parse_limit(const char *text, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (end == text || *end != '\0' || errno != 0 || n < 0 || n > INT_MAX)
        return false;
    *out = (int)n;
    return true;
}

/* home_by's column: a plain identifier (no quoting needed where pgnear names it in SQL). */
static bool column_name_valid(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > 63 || (text[0] >= '0' && text[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)text[i]) && text[i] != '_')
            return false;
    return true;
}

/*
 * Every key of the sections, in the order the "takes ..." message names
 * them.  A choice is parsed into need_rule.value[slot] (-1: not set), and
 * the [pgnear] setting at fallback (an int, or a bool when fallback_bool)
 * applies where no section sets it.  A text key (slot TEXT_KEY) is kept
 * as written in the need_rule's string at text_at, once text_valid (when
 * it has one) accepts it: regions, checked once the regions are known
 * (config_check_placement), and home_by, an identifier.  The message of an
 * invalid value lists choices, or "one of: " choices_of's list.
 */
#define TEXT_KEY         (-1)
#define DURATION_CHOICES "a duration: 15s, 1500ms, 2min, 1h; 0: off"
#define COLUMN_CHOICES                                                                             \
    "a column name: letters, digits and underscores, not starting with a digit, at most 63"

static const struct section_key_def {
    const char *name;
    bool database_only;
    int slot; /* enum section_key, or TEXT_KEY */
    bool (*parse)(const char *text, int *out);
    size_t text_at;                       /* TEXT_KEY: offsetof the char * in struct need_rule */
    bool (*text_valid)(const char *text); /* TEXT_KEY: NULL when any text is kept */
    const char *choices;
    const char *(*choices_of)(void);
    size_t fallback;
    bool fallback_bool;
} section_keys[] = {
    {"regions", true, TEXT_KEY, NULL, offsetof(struct need_rule, regions), NULL, NULL, NULL, 0,
     false},
    {"target_session_attrs", false, SECTION_NEED, parse_need, 0, NULL, NULL, need_choices,
     offsetof(struct config, target_session_attrs), false},
    {"movable", false, SECTION_MOVABLE, parse_on_off, 0, NULL, "on or off", NULL,
     offsetof(struct config, movable), true},
    {"pool_mode", false, SECTION_POOL_MODE, config_parse_section_pool_mode, 0, NULL,
     "session or transaction", NULL, offsetof(struct config, pool_mode), false},
    {"home_by", true, TEXT_KEY, NULL, offsetof(struct need_rule, home_by), column_name_valid,
     COLUMN_CHOICES, NULL, 0, false},
    {"max_user_connections", false, SECTION_MAX_USER_CONNECTIONS, parse_limit, 0, NULL,
     "0 for no limit, or more", NULL, offsetof(struct config, max_user_connections), false},
    {"max_user_client_connections", false, SECTION_MAX_USER_CLIENT_CONNECTIONS, parse_limit, 0,
     NULL, "0 for no limit, or more", NULL, offsetof(struct config, max_user_client_connections),
     false},
    {"max_db_client_connections", false, SECTION_MAX_DB_CLIENT_CONNECTIONS, parse_limit, 0, NULL,
     "0 for no limit, or more", NULL, offsetof(struct config, max_db_client_connections), false},
    {"query_timeout", false, SECTION_QUERY_TIMEOUT, config_parse_duration_ms, 0, NULL,
     DURATION_CHOICES, NULL, offsetof(struct config, query_timeout_ms), false},
    {"transaction_timeout", false, SECTION_TRANSACTION_TIMEOUT, config_parse_duration_ms, 0, NULL,
     DURATION_CHOICES, NULL, offsetof(struct config, transaction_timeout_ms), false},
    {"idle_transaction_timeout", false, SECTION_IDLE_TRANSACTION_TIMEOUT, config_parse_duration_ms,
     0, NULL, DURATION_CHOICES, NULL, offsetof(struct config, idle_transaction_timeout_ms), false},
    {"client_idle_timeout", false, SECTION_CLIENT_IDLE_TIMEOUT, config_parse_duration_ms, 0, NULL,
     DURATION_CHOICES, NULL, offsetof(struct config, client_idle_timeout_ms), false},
};
#define N_SECTION_KEYS (sizeof(section_keys) / sizeof(section_keys[0]))

/* "a, b and c": the keys a user's or a database's section takes. */
static const char *section_keys_taken(bool is_user, char *buf, size_t cap)
{
    size_t len = 0, n = 0, total = 0;
    for (size_t i = 0; i < N_SECTION_KEYS; i++)
        total += !(is_user && section_keys[i].database_only);
    buf[0] = '\0';
    for (size_t i = 0; i < N_SECTION_KEYS && len < cap; i++) {
        if (is_user && section_keys[i].database_only)
            continue;
        n++;
        const char *sep = n == 1 ? "" : n == total ? " and " : ", ";
        int w = snprintf(buf + len, cap - len, "%s%s", sep, section_keys[i].name);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return buf;
}

/* An invalid value, with the values the key takes. */
static void section_key_problem(struct load_ctx *lc, const char *at,
                                const struct section_key_def *k, const char *text)
{
    if (k->choices_of != NULL)
        config_problem(lc, at, "invalid %s \"%s\" (one of: %s)", k->name, text, k->choices_of());
    else
        config_problem(lc, at, "invalid %s \"%s\" (%s)", k->name, text, k->choices);
}

/* The string of a rule that text key k keeps. */
static char **rule_text(struct need_rule *r, const struct section_key_def *k)
{
    return (char **)((char *)r + k->text_at);
}

/* A key's text read into its place in a rule; false: not valid. */
static bool section_key_parse(const struct section_key_def *k, const char *text,
                              struct need_rule *r)
{
    if (k->slot != TEXT_KEY)
        return k->parse(text, &r->value[k->slot]);
    *rule_text(r, k) = (char *)text; /* iniparser's: add_need_rule copies it */
    return k->text_valid == NULL || k->text_valid(text);
}

/* Appends a copy of rule (its strings duplicated); false when out of memory, cfg unchanged. */
static bool add_need_rule(struct config *cfg, const struct need_rule *rule)
{
    struct need_rule *grown = realloc(cfg->need_rules, (cfg->n_need_rules + 1) * sizeof(*grown));
    if (grown == NULL)
        return false;
    cfg->need_rules = grown;
    struct need_rule *r = &grown[cfg->n_need_rules];
    *r = *rule;
    bool copied = (r->name = strdup(rule->name)) != NULL;
    for (size_t i = 0; i < N_SECTION_KEYS; i++) {
        char **text = section_keys[i].slot == TEXT_KEY ? rule_text(r, &section_keys[i]) : NULL;
        if (text == NULL || *text == NULL)
            continue;
        *text = copied ? strdup(*text) : NULL; /* past a failure, none: nothing to free */
        copied = copied && *text != NULL;
    }
    if (copied) {
        cfg->n_need_rules++;
        return true;
    }
    free(r->name);
    for (size_t i = 0; i < N_SECTION_KEYS; i++)
        if (section_keys[i].slot == TEXT_KEY)
            free(*rule_text(r, &section_keys[i]));
    return false;
}

/* One [database NAME] or [user NAME] section, read through section_keys[]. */
static void load_need_section(struct load_ctx *lc, dictionary *d, const char *section, bool is_user,
                              const char *name)
{
    struct need_rule rule = {.is_user = is_user, .name = (char *)name};
    for (int i = 0; i < SECTION_CHOICES; i++)
        rule.value[i] = -1;
    int given = 0;
    for (size_t i = 0; i < N_SECTION_KEYS; i++) {
        const struct section_key_def *k = &section_keys[i];
        char key[400];
        if (is_user && k->database_only)
            continue;
        snprintf(key, sizeof(key), "%s:%s", section, k->name);
        const char *text = iniparser_getstring(d, key, NULL);
        if (text == NULL)
            continue;
        given++;
        if (!section_key_parse(k, text, &rule)) {
            section_key_problem(lc, key, k, text);
            return;
        }
    }
    char taken[400];
    if (rule.home_by != NULL && rule.regions == NULL)
        config_problem(lc, NULL,
                       "[%s]: home_by needs regions: the region the rows live in before any "
                       "city is moved (its primary's)",
                       section);
    else if (given == 0 || iniparser_getsecnkeys(d, section) != given)
        config_problem(lc, NULL, "[%s]: a %s section takes %s, nothing else", section,
                       is_user ? "user" : "database",
                       section_keys_taken(is_user, taken, sizeof(taken)));
    else if (!add_need_rule(lc->cfg, &rule))
        config_problem(lc, NULL, "out of memory");
}

/*
 * [user NAME] and [database NAME]: true when section is one (loaded only in the
 * full scope), false to let the caller try others.
 */
bool config_load_need_sections(struct load_ctx *lc, dictionary *d, const char *section)
{
    bool is_user = strncmp(section, "user ", 5) == 0;
    if (!is_user && strncmp(section, "database ", 9) != 0)
        return false;
    const char *name = section + (is_user ? 5 : 9);
    while (*name == ' ')
        name++;
    if (lc->scope != CONFIG_SCOPE_ALL)
        return true;
    if (*name == '\0')
        config_problem(lc, NULL, "[%s]: the section needs a name", section);
    else
        load_need_section(lc, d, section, is_user, name);
    return true;
}

/* The [pgnear] setting that applies where no section sets key. */
static int section_key_fallback(const struct config *cfg, enum section_key key)
{
    for (size_t i = 0; i < N_SECTION_KEYS; i++) {
        const struct section_key_def *k = &section_keys[i];
        if (k->slot != (int)key)
            continue;
        const char *at = (const char *)cfg + k->fallback;
        return k->fallback_bool ? *(const bool *)at : *(const int *)at;
    }
    return -1;
}

int config_section_value(const struct config *cfg, enum section_key key, const char *user,
                         const char *database)
{
    int by_db = -1;
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        const struct need_rule *r = &cfg->need_rules[i];
        int v = r->value[key];
        if (v < 0 || strcasecmp(r->name, r->is_user ? user : database) != 0)
            continue;
        if (r->is_user)
            return v;
        by_db = v;
    }
    return by_db >= 0 ? by_db : section_key_fallback(cfg, key);
}

int config_session_need(const struct config *cfg, const char *user, const char *database)
{
    return config_section_value(cfg, SECTION_NEED, user, database);
}

bool config_session_movable(const struct config *cfg, const char *user, const char *database)
{
    return config_section_value(cfg, SECTION_MOVABLE, user, database) != 0;
}

int config_session_pool_mode(const struct config *cfg, const char *user, const char *database)
{
    if (!config_pooling(cfg))
        return POOL_NONE;
    return config_section_value(cfg, SECTION_POOL_MODE, user, database);
}

bool config_parse_section_pool_mode(const char *text, int *mode)
{
    if (strcasecmp(text, "session") == 0)
        *mode = POOL_SESSION;
    else if (strcasecmp(text, "transaction") == 0)
        *mode = POOL_TRANSACTION;
    else
        return false;
    return true;
}

const char *config_database_regions(const struct config *cfg, const char *database)
{
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        const struct need_rule *r = &cfg->need_rules[i];
        if (!r->is_user && r->regions != NULL && strcasecmp(r->name, database) == 0)
            return r->regions;
    }
    return NULL;
}

const char *config_database_home_by(const struct config *cfg, const char *database)
{
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        const struct need_rule *r = &cfg->need_rules[i];
        if (!r->is_user && r->home_by != NULL && strcasecmp(r->name, database) == 0)
            return r->home_by;
    }
    return NULL;
}

const struct region_subset *
config_database_placement(const struct config *cfg, const char *database, struct region_subset *out)
{
    const char *list = config_database_regions(cfg, database);
    char why[200];
    if (list == NULL || region_subset_parse(&cfg->regions, list, out, why, sizeof(why)) != 0)
        return NULL; /* the load refused a list that does not parse */
    return out;
}
