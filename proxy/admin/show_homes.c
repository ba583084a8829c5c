/*
 * show_homes.c — SHOW HOMES: for each database whose rows are homed by a
 * city column ([database] home_by), where each city with a move of its
 * own lives, and where the others do (the database's place), from the
 * homes the follower last read in the record of moves (placement.h).
 */
#include <stdlib.h>
#include <strings.h>

#include "proxy/admin/show.h"
#include "proxy/base/config.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"
#include "routing/region.h"

static const struct admin_column show_homes_cols[] = {
    {"database", ADMIN_TEXT, 0}, {"column", ADMIN_TEXT, 0},       {"city", ADMIN_TEXT, 0},
    {"region", ADMIN_TEXT, 0},   {"since", ADMIN_TIMESTAMPTZ, 0}, {"move_id", ADMIN_INT8, 0},
    {"state", ADMIN_TEXT, 0}};

/* since, move_id and state of a move's record; NULLs where there is none. */
static void move_columns(struct admin_result *res, const struct placement_home *h)
{
    if (h == NULL) {
        result_null(res);
        result_null(res);
        result_null(res);
        return;
    }
    result_time_us(res, h->since_us);
    result_int(res, h->move_id);
    result_text(res, h->state);
}

/* One database's rows: a row per city with a home, then the row of every other city. */
static void database_rows(struct admin_result *res, struct placement_table *t,
                          const struct config *cfg, const struct need_rule *rule,
                          const struct placement_home *homes, size_t n)
{
    struct region_subset where;
    char rest[256] = "every region";
    const struct region_subset *placed = placement_of(t, cfg, rule->name, &where);
    if (placed != NULL)
        region_subset_format(placed, rest, sizeof(rest));
    const struct placement_home *whole = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct placement_home *h = &homes[i];
        if (strcasecmp(h->database, rule->name) != 0)
            continue;
        if (h->city[0] == '\0') {
            whole = h;
            continue;
        }
        result_text(res, rule->name);
        result_text(res, rule->home_by);
        result_text(res, h->city);
        result_text(res, h->region[0] != '\0' ? h->region : rest); /* aborted: with the rest */
        move_columns(res, h);
    }
    result_text(res, rule->name);
    result_text(res, rule->home_by);
    result_null(res); /* every other city */
    result_text(res, rest);
    move_columns(res, whole);
}

/* A copy of the homes, taken under the table's lock, rendered unlocked. */
static int show_homes(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    (void)cmd;
    struct admin_result *res = &wait->res;
    const struct config *cfg = s->w->cfg;
    struct placement_table *t = &s->w->shared->placement;
    struct placement_home *homes = calloc(PLACEMENT_HOMES_MAX, sizeof(*homes));
    if (homes == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    size_t n = placement_homes(t, homes, PLACEMENT_HOMES_MAX);
    result_init(res, ADMIN_COLS(show_homes_cols));
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        const struct need_rule *rule = &cfg->need_rules[i];
        if (!rule->is_user && rule->home_by != NULL)
            database_rows(res, t, cfg, rule, homes, n);
    }
    free(homes);
    result_set_tag(res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_homes_command = {
    .cols = show_homes_cols,
    .ncols = ADMIN_NCOLS(show_homes_cols),
    .run = show_homes,
};
