/*
 * startup_options.c — finds pgnear.* hints in a StartupMessage's options.
 *
 * The server reads "options" in two steps: pg_split_opts() cuts it into
 * words (whitespace separates, a backslash escapes the next character,
 * itself included), then process_postgres_switches() runs getopt over the
 * words with the backend's switch string.  Both steps are mirrored here,
 * on the raw bytes and without allocating, so that the words handed back
 * keep their escaping byte for byte and a hint can never be hidden from
 * us in a way the server would still read as a setting.
 */
#include "protocol/startup_options.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HINT_PREFIX     "pgnear."
#define HINT_PREFIX_LEN 7
/* Enough for any name pgnear knows; longer ones are only kept for messages. */
#define HINT_NAME_BUF 64

/* The backend's switches that take an argument ("B:bC:c:D:d:...W:-:"). */
static const char opt_arg_switches[] = "BCcDdfhkNprStvW-";

enum {
    HINT_CITY,
    HINT_REGION,
    HINT_LOCATION,
    HINT_NEED,
    HINT_MIN_LSN,
    HINT_REPORT_FENCE,
    HINT_MOVABLE,
    HINT_NONE
};

/* One word of the options string: raw bytes, escapes still in. */
struct opt_word {
    const char *p;
    size_t n;
};

/* Reads a word's characters with their escapes removed. */
struct opt_cur {
    const char *p, *end;
};

struct opt_state {
    const char *in;
    size_t len, pos;
    struct startup_hints *hints;
    char *out;
    size_t cap, outlen;
    bool full;
    char *errname;
    size_t errcap;
    int last_hint; /* the hint the previous word set, else HINT_NONE */
};

void startup_hints_init(struct startup_hints *hints)
{
    memset(hints, 0, sizeof(*hints));
}

/* A phrase for any HINTS_* code, for the client's error message. */
const char *startup_hints_strerror(int rc)
{
    switch (rc) {
    case HINTS_OK:
        return "ok";
    case HINTS_EUNKNOWN:
        return "unrecognized pgnear setting";
    case HINTS_ETOOLONG:
        return "pgnear setting value too long";
    case HINTS_ESYNTAX:
        return "malformed options";
    case HINTS_ENOSPACE:
        return "options do not fit";
    case HINTS_ESTRAY:
        return "unescaped space in a pgnear setting value";
    default:
        return "unknown options error";
    }
}

/* isspace() in the C locale, as pg_split_opts() sees it. */
static bool opt_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* The options end at len or at the first NUL, as a StartupMessage value does. */
static bool opt_at_end(const struct opt_state *s)
{
    return s->pos >= s->len || s->in[s->pos] == '\0';
}

/* The next word as pg_split_opts() cuts it; false when none is left. */
static bool opt_next_word(struct opt_state *s, struct opt_word *w)
{
    bool escaped = false;

    while (!opt_at_end(s) && opt_is_space(s->in[s->pos]))
        s->pos++;
    if (opt_at_end(s))
        return false;
    w->p = s->in + s->pos;
    while (!opt_at_end(s)) {
        char c = s->in[s->pos];

        if (!escaped && opt_is_space(c))
            break;
        escaped = !escaped && c == '\\';
        s->pos++;
    }
    w->n = (size_t)(s->in + s->pos - w->p);
    return true;
}

/* A cursor reading w's characters with its escapes undone (opt_getc). */
static struct opt_cur opt_cursor(const struct opt_word *w)
{
    struct opt_cur c = {w->p, w->p + w->n};
    return c;
}

/* Next character, unescaped; -1 at the end.  A trailing lone backslash stands for nothing. */
static int opt_getc(struct opt_cur *c)
{
    if (c->p < c->end && *c->p == '\\')
        c->p++;
    if (c->p >= c->end)
        return -1;
    return (unsigned char)*c->p++;
}

/* Is the rest of the word empty once escapes are undone (a lone trailing backslash is)? */
static bool opt_cur_empty(struct opt_cur c)
{
    return opt_getc(&c) < 0;
}

/* Appends a word to out, a single space before all but the first. */
static void opt_emit(struct opt_state *s, const char *p, size_t n)
{
    size_t need = n + (s->outlen > 0 ? 1 : 0) + 1;

    if (s->full || need > s->cap - s->outlen) {
        s->full = true;
        return;
    }
    if (s->outlen > 0)
        s->out[s->outlen++] = ' ';
    memcpy(s->out + s->outlen, p, n);
    s->outlen += n;
    s->out[s->outlen] = '\0';
}

/* Returns rc, keeping the setting's name (cut to fit) for the error message. */
static int opt_fail(struct opt_state *s, const char *name, int rc)
{
    if (s->errcap > 0) {
        size_t n = strlen(name);

        if (n >= s->errcap)
            n = s->errcap - 1;
        memcpy(s->errname, name, n);
        s->errname[n] = '\0';
    }
    return rc;
}

/* Does the name start with "pgnear." in any case? Those are pgnear's hints, not the server's. */
static bool hint_has_prefix(const char *name, size_t n)
{
    return n >= HINT_PREFIX_LEN && strncasecmp(name, HINT_PREFIX, HINT_PREFIX_LEN) == 0;
}

/* Every hint: its name after "pgnear.", and where struct startup_hints keeps it. */
#define HINT_ROW(word, field)                                                                      \
    {                                                                                              \
        word, offsetof(struct startup_hints, has_##field), offsetof(struct startup_hints, field)   \
    }
static const struct {
    const char *name;
    size_t has, value; /* offsets of its bool and of its value */
} hint_table[HINT_NONE] = {
    [HINT_CITY] = HINT_ROW("city", city),
    [HINT_REGION] = HINT_ROW("region", region),
    [HINT_LOCATION] = HINT_ROW("location", location),
    [HINT_NEED] = HINT_ROW("target_session_attrs", need),
    [HINT_MIN_LSN] = HINT_ROW("min_lsn", min_lsn),
    [HINT_REPORT_FENCE] = HINT_ROW("report_fence", report_fence),
    [HINT_MOVABLE] = HINT_ROW("movable", movable),
};

/* Which hint a pgnear.* name is, or HINT_NONE. */
static int hint_which(const char *name)
{
    for (int i = 0; i < HINT_NONE; i++) {
        if (strcasecmp(name + HINT_PREFIX_LEN, hint_table[i].name) == 0)
            return i;
    }
    return HINT_NONE;
}

/* Where one hint is kept. */
static void hint_slot(struct startup_hints *h, int which, bool **has, char **value)
{
    *has = (bool *)((char *)h + hint_table[which].has);
    *value = (char *)h + hint_table[which].value;
}

const char *startup_hints_known(char *buf, size_t cap)
{
    size_t len = 0;
    if (cap > 0)
        buf[0] = '\0';
    for (int i = 0; i < HINT_NONE && len < cap; i++) {
        const char *sep = i == 0 ? "" : i == HINT_NONE - 1 ? " and " : ", ";
        int n = snprintf(buf + len, cap - len, "%s" HINT_PREFIX "%s", sep, hint_table[i].name);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    return buf;
}

/* Sets one hint; the server's last-one-wins rule applies, and "" clears it. */
static int hint_store(struct startup_hints *h, int which, const char *val, size_t n)
{
    bool *has;
    char *dst;
    hint_slot(h, which, &has, &dst);
    if (n > HINT_VALUE_MAX)
        return HINTS_ETOOLONG;
    memcpy(dst, val, n);
    dst[n] = '\0';
    *has = n > 0;
    return HINTS_OK;
}

/*
 * Reads a setting's name up to the first '=' as ParseLongOption() does
 * ('-' becomes '_'), keeping what fits in dst; returns the full length.
 */
static size_t opt_read_name(struct opt_cur *c, char *dst, size_t cap, bool *has_value)
{
    size_t n = 0;
    int ch;

    *has_value = false;
    while ((ch = opt_getc(c)) >= 0) {
        if (ch == '=') {
            *has_value = true;
            break;
        }
        if (n + 1 < cap)
            dst[n] = (char)(ch == '-' ? '_' : ch);
        n++;
    }
    dst[n < cap ? n : cap - 1] = '\0';
    return n;
}

/*
 * One "name=value" argument of -c or --.  *ours tells whether it was a
 * pgnear.* setting, now taken, or anything else, left for the server.
 */
static int opt_setting(struct opt_state *s, struct opt_cur c, bool *ours)
{
    char name[HINT_NAME_BUF];
    char val[HINT_VALUE_MAX + 1];
    bool has_value;
    size_t n = opt_read_name(&c, name, sizeof(name), &has_value);
    size_t vlen = 0;
    int which, ch;

    *ours = hint_has_prefix(name, n);
    if (!*ours)
        return HINTS_OK;
    which = hint_which(name);
    if (which == HINT_NONE)
        return opt_fail(s, name, HINTS_EUNKNOWN);
    if (!has_value)
        return opt_fail(s, name, HINTS_ESYNTAX);
    while ((ch = opt_getc(&c)) >= 0) {
        if (vlen == HINT_VALUE_MAX)
            return opt_fail(s, name, HINTS_ETOOLONG);
        val[vlen++] = (char)ch;
    }
    s->last_hint = which;
    return hint_store(s->hints, which, val, vlen);
}

/*
 * Switch sw of word w takes an argument: the rest of the word (rest) or,
 * when that is empty, the whole next word, as getopt does.  Only -c and
 * -- carry settings; a pgnear.* one goes away together with its switch,
 * and the first keep bytes of w, switches before it ("-Fc..."), stay.
 */
static int opt_switch_arg(struct opt_state *s, const struct opt_word *w, int sw, size_t keep,
                          struct opt_cur rest)
{
    struct opt_word next;
    bool has_next = false, ours = false;
    struct opt_cur arg = rest;
    int rc;

    if (opt_cur_empty(rest)) {
        char swname[3] = {'-', (char)sw, '\0'};

        if (!opt_next_word(s, &next))
            return opt_fail(s, swname, HINTS_ESYNTAX);
        has_next = true;
        arg = opt_cursor(&next);
    }
    if (sw == 'c' || sw == '-') {
        rc = opt_setting(s, arg, &ours);
        if (rc != HINTS_OK)
            return rc;
    }
    if (!ours) {
        opt_emit(s, w->p, w->n);
        if (has_next)
            opt_emit(s, next.p, next.n);
    } else if (keep > 0) {
        opt_emit(s, w->p, keep);
    }
    return HINTS_OK;
}

/* A word starting with '-': getopt reads it as a cluster of switches. */
static int opt_switches(struct opt_state *s, const struct opt_word *w)
{
    struct opt_cur c = opt_cursor(w);
    bool first = true;

    opt_getc(&c); /* the '-' */
    for (;;) {
        size_t before = (size_t)(c.p - w->p);
        int ch = opt_getc(&c);

        if (ch < 0) {
            opt_emit(s, w->p, w->n);
            return HINTS_OK;
        }
        if (ch != 0 && strchr(opt_arg_switches, ch) != NULL)
            return opt_switch_arg(s, w, ch, first ? 0 : before, c);
        first = false;
    }
}

/* "-x...": a switch word; "-" alone and anything else are plain arguments. */
static bool opt_is_switch(const struct opt_word *w)
{
    struct opt_cur c = opt_cursor(w);

    return opt_getc(&c) == '-' && !opt_cur_empty(c);
}

/* "--" alone ends getopt's switches: what follows goes to the server as it is. */
static bool opt_is_end_marker(const struct opt_word *w)
{
    struct opt_cur c = opt_cursor(w);

    return opt_getc(&c) == '-' && opt_getc(&c) == '-' && opt_cur_empty(c);
}

/* A word the server would refuse: not a switch, or "-" and a digit (it has no such switch). */
static bool opt_is_stray(const struct opt_word *w)
{
    struct opt_cur c = opt_cursor(w);
    int first = opt_getc(&c), second = opt_getc(&c);

    return !opt_is_switch(w) || (first == '-' && second >= '0' && second <= '9');
}

/* errname: "pgnear.city York", the hint and the word cut off its value. */
static int opt_fail_stray(struct opt_state *s, const struct opt_word *w)
{
    char name[HINT_NAME_BUF + HINT_VALUE_MAX + 2];
    const char *hint = hint_table[s->last_hint].name;
    struct opt_cur c = opt_cursor(w);
    size_t n = 0;
    int ch;

    memcpy(name, HINT_PREFIX, HINT_PREFIX_LEN);
    n += HINT_PREFIX_LEN;
    memcpy(name + n, hint, strlen(hint));
    n += strlen(hint);
    name[n++] = ' ';
    while (n + 1 < sizeof(name) && (ch = opt_getc(&c)) >= 0)
        name[n++] = (char)ch;
    name[n] = '\0';
    return opt_fail(s, name, HINTS_ESTRAY);
}

/*
 * Every word in turn: pgnear's hints are taken, the rest copied to out for the
 * server; after "--" nothing is a hint. HINTS_ENOSPACE when out was too small.
 */
static int opt_run(struct opt_state *s)
{
    struct opt_word w;
    bool ended = false;
    int rc;

    while (opt_next_word(s, &w)) {
        if (!ended && opt_is_end_marker(&w))
            ended = true;
        if (!ended && s->last_hint != HINT_NONE && opt_is_stray(&w))
            return opt_fail_stray(s, &w);
        s->last_hint = HINT_NONE;
        if (ended || !opt_is_switch(&w)) {
            opt_emit(s, w.p, w.n);
            continue;
        }
        rc = opt_switches(s, &w);
        if (rc != HINTS_OK)
            return rc;
    }
    return s->full ? HINTS_ENOSPACE : HINTS_OK;
}

int startup_hints_extract(const char *in, size_t len, struct startup_hints *hints, char *out,
                          size_t cap, char *errname, size_t errcap)
{
    struct opt_state s = {
        .in = in,
        .len = len,
        .hints = hints,
        .out = out,
        .cap = cap,
        .errname = errname,
        .errcap = errname != NULL ? errcap : 0,
        .last_hint = HINT_NONE,
    };
    int rc;

    if (s.errcap > 0)
        errname[0] = '\0';
    if (cap == 0)
        return HINTS_ENOSPACE;
    out[0] = '\0';
    rc = opt_run(&s);
    if (rc != HINTS_OK)
        out[0] = '\0';
    return rc;
}

int startup_hints_from_param(const char *name, const char *value, struct startup_hints *hints)
{
    int which, rc;

    if (!hint_has_prefix(name, strlen(name)))
        return 0;
    which = hint_which(name);
    if (which == HINT_NONE)
        return HINTS_EUNKNOWN;
    rc = hint_store(hints, which, value, strlen(value));
    return rc == HINTS_OK ? 1 : rc;
}
