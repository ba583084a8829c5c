/*
 * config_problem.c — the problems of a load, "file:line: why", each at the
 * line of the section or key it is about (the names config_ini.c noted as
 * it read the file).  The parsers and checks of the load record here and
 * call nothing else of it: the loader (config_load.c) runs them in order.
 */
#include "proxy/base/config_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One problem, prefixed with the file and line; past CONFIG_MAX_PROBLEMS they are only counted. */
static void problem_v(struct load_ctx *lc, int line, const char *fmt, va_list ap)
{
    struct config_problems *p = lc->problems;
    if (p->count == CONFIG_MAX_PROBLEMS) {
        p->dropped++;
        return;
    }
    char *out = p->items[p->count++];
    size_t cap = sizeof(p->items[0]);
    int n = line > 0 ? snprintf(out, cap, "%s:%d: ", lc->cfg->path, line)
                     : snprintf(out, cap, "%s: ", lc->cfg->path);
    if (n > 0 && (size_t)n < cap)
        vsnprintf(out + n, cap - (size_t)n, fmt, ap);
}

int config_line_of(const struct ini_names *names, const char *name)
{
    for (size_t i = 0; name != NULL && i < names->count; i++)
        if (strcmp(names->items[i].name, name) == 0)
            return names->items[i].line;
    return 0;
}

bool config_problem_at(struct load_ctx *lc, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(lc, line, fmt, ap);
    va_end(ap);
    return false;
}

bool config_problem(struct load_ctx *lc, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(lc, config_line_of(&lc->names, name), fmt, ap);
    va_end(ap);
    return false;
}
