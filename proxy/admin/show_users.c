/*
 * show_users.c — SHOW USERS: per user and region, whether pgnear's SCRAM
 * key for the user fits that region's server, as the logins there told
 * (proxy/base/scram_fit.h).  A user whose key does not fit a region can
 * neither log in there nor follow a move there.
 */
#include <stdlib.h>

#include "proxy/admin/show.h"
#include "proxy/base/scram_fit.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

static const struct admin_column show_users_cols[] = {{"user", ADMIN_TEXT, 0},
                                                      {"region", ADMIN_TEXT, 0},
                                                      {"secret_fits", ADMIN_BOOL, 0},
                                                      {"logins", ADMIN_INT8, 0},
                                                      {"last_login", ADMIN_TIMESTAMPTZ, 0},
                                                      {"last_error", ADMIN_TEXT, 0}};

/*
 * SHOW USERS: a copy of the shared fit table, taken under its lock
 * (scram_fits_copy), then rendered unlocked.
 */
static int show_users(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    (void)cmd;
    struct admin_result *res = &wait->res;
    struct scram_fit *rows = calloc(SCRAM_FIT_MAX, sizeof(*rows));
    if (rows == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    size_t n = scram_fits_copy(&s->w->shared->scram_fits, rows, SCRAM_FIT_MAX);
    result_init(res, ADMIN_COLS(show_users_cols));
    for (size_t i = 0; i < n; i++) {
        const struct scram_fit *f = &rows[i];
        result_text(res, f->user);
        result_text(res, f->region);
        result_bool(res, f->fits);
        result_int(res, (int64_t)f->logins);
        result_time(res, f->at);
        if (f->last_error[0] != '\0')
            result_text(res, f->last_error);
        else
            result_null(res);
    }
    free(rows);
    result_set_tag(res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_users_command = {
    .cols = show_users_cols,
    .ncols = ADMIN_NCOLS(show_users_cols),
    .run = show_users,
};
