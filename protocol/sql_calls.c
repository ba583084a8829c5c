/*
 * sql_calls.c — the routines a text runs (sql_calls.h).
 *
 * The tokens come from sql_lex.c, comments skipped.  A name is given
 * once the token after it says where it stands: '(' a call (after a
 * U&"name" UESCAPE 'c', the string too), '.' a schema (the name after
 * it stands where this one would), else the place the tokens before
 * made for it (after FROM a relation, after :: a type).  The depths of
 * the parentheses that hold a FROM list, and those of EXTRACT(...) and
 * its kin (whose FROM is not a FROM list), are bits of a mask: deeper
 * than 64, no FROM list is followed (their names are given as names).
 * A ';' ends a statement, whose first word says DO or CALL and, for
 * CREATE, ALTER or DROP, whose words up to its first '(' say whether it
 * changes routines.
 */
#include "protocol/sql_calls.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/hex.h"
#include "protocol/sql_lex.h"

/* Where the next name stands, as the tokens before it made it. */
enum name_slot {
    SLOT_NONE,
    SLOT_RELATION, /* after FROM, JOIN, a FROM list's ',', TABLE */
    SLOT_TYPE,     /* after :: */
};

#define CTE_MAX 8
#define OP_MAX  63

/* What the scan knows of the statement and the tokens before this one. */
struct calls_scan {
    struct sql_lexer lx;
    unsigned tokens; /* the statement's tokens so far */
    bool ddl;        /* the statement begins CREATE, ALTER or DROP, no '(' yet */
    bool no_from;    /* its first word is one whose FROM names no relation (FETCH, COPY...) */
    bool have_name;  /* the token before (or before UESCAPE 'c') is a name, not given yet */
    struct sql_token name;
    uint8_t escape;      /* a U& name's escape character */
    bool escape_next;    /* UESCAPE came: the string that follows is the escape */
    enum name_slot slot; /* where the next name stands */
    enum name_slot name_slot;
    bool name_not_call;      /* the pending name followed by '(' is a column list */
    struct sql_token prev;   /* the token before this one */
    unsigned depth;          /* parentheses open */
    uint64_t from_lists;     /* bit d: a FROM list is open at depth d */
    uint64_t from_functions; /* bit d: depth d is EXTRACT(...)'s or its kin's */
    bool as_after_name;      /* AS after a name: a WITH's name when '(' or MATERIALIZED follows */
    struct sql_token as_name;
    char ctes[CTE_MAX][SQL_NAME_BUF];
    unsigned nctes;
    char op[OP_MAX + 1];   /* the operator bytes so far */
    size_t op_len, op_end; /* ... and where the last one ended */
    bool colon;            /* the token before is a ':' */
};

/* Words a DDL statement names before its first '(' when it changes routines. */
static const char *const routine_words[] = {
    "aggregate", "cast",    "domain", "extension", "function",  "language", "operator", "policy",
    "procedure", "routine", "rule",   "schema",    "transform", "type",     "view",
};

/*
 * PostgreSQL's reserved words and those that name no function unquoted
 * (its col_name_keyword list) that a '(' may follow without a call
 * (sorted): not given at all.  A function of such a name is called by its
 * quoted name, which is given.
 */
static const char *const grammar_words[] = {
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "between",
    "bigint",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "from",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "in",
    "initially",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "lateral",
    "leading",
    "least",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "nchar",
    "none",
    "not",
    "null",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "row",
    "select",
    "session_user",
    "setof",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
};

/*
 * Words the grammar puts before '(' (GROUP BY CUBE (...), PARTITION BY
 * HASH (...), LIKE (...)) that a function may also be named (sorted):
 * given as SQL_USE_KEYWORD, a name that no catalog need know.
 */
static const char *const keyword_words[] = {
    "brin",   "btree",     "by",       "cluster",    "columns", "conflict",     "copy",
    "cross",  "cube",      "escape",   "explain",    "filter",  "first",        "full",
    "gin",    "gist",      "hash",     "ilike",      "include", "inner",        "is",
    "join",   "key",       "last",     "like",       "list",    "materialized", "natural",
    "nullif", "nulls",     "operator", "ordinality", "outer",   "over",         "partition",
    "range",  "recursive", "reindex",  "repeatable", "return",  "rollup",       "rows",
    "set",    "sets",      "similar",  "spgist",     "vacuum",  "varying",      "within",
    "zone",
};

/* PostgreSQL's words that may name a function or type but no relation or column: a word
 * of the grammar unless '(' follows. */
static const char *const function_only_words[] = {
    "cross", "full", "ilike",   "inner", "is",    "join",
    "left",  "like", "natural", "outer", "right", "similar",
};

/* After these, a name followed by '(' is a column list, not a call. */
static const char *const list_words[] = {
    "as", "execute", "prepare", "recursive", "table", "view", "with",
};

/* Calls whose FROM (or IN) is not a FROM list. */
static const char *const from_functions[] = {
    "extract", "overlay", "position", "substring", "trim",
};

/* Words that end a FROM list at its depth. */
static const char *const from_ends[] = {
    "except", "fetch", "for",   "group", "having",    "intersect", "limit",
    "offset", "order", "union", "where", "returning", "window",
};

/* First words whose FROM is not a FROM list. */
static const char *const no_from_firsts[] = {
    "copy", "fetch", "import", "move", "revoke",
};

/* Type names that only the grammar knows (int for int4...), after :: : no catalog's. */
static const char *const type_words[] = {
    "bigint", "boolean", "character", "dec",   "decimal", "double",   "float",
    "int",    "integer", "national",  "nchar", "real",    "smallint",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int word_cmp(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

/* Whether token t of lx is an unquoted word of list (n of them, sorted when sorted). */
static bool word_in(const struct sql_lexer *lx, const struct sql_token *t, const char *const *list,
                    size_t n, bool sorted)
{
    char w[24];
    if (t->kind != SQL_TOK_WORD || t->body_len >= sizeof(w))
        return false;
    for (size_t i = 0; i < t->body_len; i++)
        w[i] = (char)sql_fold(lx->s[t->body + i]);
    w[t->body_len] = '\0';
    if (sorted)
        return bsearch(w, list, n, sizeof(*list), word_cmp) != NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}

/* A U&"name", whose escapes are decoded. */
static bool is_unicode_name(const uint8_t *text, const struct sql_token *t)
{
    return t->kind == SQL_TOK_QUOTED && t->body > t->start + 1 && sql_fold(text[t->start]) == 'u';
}

/* The code point of digits hex digits at p (n bytes there), or -1. */
static long hex_code(const uint8_t *p, size_t n, size_t digits)
{
    long v = 0;
    if (n < digits)
        return -1;
    for (size_t i = 0; i < digits; i++) {
        int d = hex_digit_value(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Appends code point cp to out (UTF-8) as room allows; the length after. */
static size_t put_utf8(char *out, size_t at, size_t cap, long cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | ((cp >> 18) & 0x07));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    for (size_t i = 0; i < n && at < cap; i++)
        out[at++] = (char)b[i];
    return at;
}

/*
 * The name token t of text as the catalog spells it, into out
 * (SQL_NAME_BUF bytes): folded, unquoted, unescaped (escape: a U& name's
 * escape character), cut at a character's start.
 */
static size_t name_decode(const uint8_t *text, const struct sql_token *t, uint8_t escape, char *out)
{
    const uint8_t *p = text + t->body;
    size_t n = t->body_len, len = 0;
    bool unicode = is_unicode_name(text, t);
    for (size_t i = 0; i < n && len < SQL_NAME_BUF - 1;) {
        uint8_t c = p[i];
        if (c == '\0')
            break; /* no text a server reads holds one: the name ends there */
        if (t->kind == SQL_TOK_WORD) {
            out[len++] = (char)sql_fold(c);
            i++;
        } else if (c == '"' && i + 1 < n && p[i + 1] == '"') {
            out[len++] = '"';
            i += 2;
        } else if (unicode && c == escape && i + 1 < n && p[i + 1] == escape) {
            out[len++] = (char)c;
            i += 2;
        } else if (unicode && c == escape) {
            bool wide = i + 1 < n && p[i + 1] == '+';
            long cp = hex_code(p + i + 1 + wide, n - i - 1 - wide, wide ? 6 : 4);
            if (cp <= 0 || cp > 0x10FFFF) {
                out[len++] = (char)c; /* the server refuses it: kept as written */
                i++;
                continue;
            }
            len = put_utf8(out, len, SQL_NAME_BUF - 1, cp);
            i += 1 + wide + (wide ? 6 : 4);
        } else {
            out[len++] = (char)c;
            i++;
        }
    }
    if (len > SQL_NAME_MAX) {
        len = SQL_NAME_MAX;
        while (len > 0 && ((uint8_t)out[len] & 0xC0) == 0x80)
            len--; /* PostgreSQL cuts a name at a character's start */
    }
    out[len] = '\0';
    return len;
}

size_t sql_name_of(const uint8_t *text, const struct sql_token *t, char *out)
{
    return name_decode(text, t, '\\', out);
}

/* Gives name (len bytes) where use says to the caller; the first it wants is found. */
static void give(sql_call_fn wanted, void *arg, enum sql_use use, const char *name, size_t len,
                 struct sql_calls *out)
{
    if (wanted == NULL || len == 0 || !wanted(arg, use, name, len) ||
        out->found != SQL_ROUTINE_NONE)
        return;
    out->found = SQL_ROUTINE_FUNCTION;
    out->use = use;
    memcpy(out->name, name, len + 1);
}

static bool is_cte(const struct calls_scan *sc, const char *name)
{
    for (unsigned i = 0; i < sc->nctes; i++)
        if (strcmp(sc->ctes[i], name) == 0)
            return true;
    return false;
}

/* The pending name given, now that next (the token after it) says where it stands. */
static void give_name(struct calls_scan *sc, const struct sql_token *next, sql_call_fn wanted,
                      void *arg, struct sql_calls *out)
{
    char name[SQL_NAME_BUF];
    sc->have_name = false;
    bool open = next->kind == SQL_TOK_OPEN, dot = next->kind == SQL_TOK_DOT;
    bool grammar = word_in(&sc->lx, &sc->name, grammar_words, COUNT(grammar_words), true) ||
                   (!open && word_in(&sc->lx, &sc->name, function_only_words,
                                     COUNT(function_only_words), false));
    bool keyword = open && word_in(&sc->lx, &sc->name, keyword_words, COUNT(keyword_words), true);
    if (open && word_in(&sc->lx, &sc->name, from_functions, COUNT(from_functions), false) &&
        sc->depth + 1 < 64)
        sc->from_functions |= 1ULL << (sc->depth + 1);
    if (grammar) {
        if (sc->slot != SLOT_RELATION)
            sc->slot = SLOT_NONE;
        return; /* FROM ONLY, JOIN LATERAL: the place of what follows kept */
    }
    if (open)
        sc->as_name = sc->name; /* x(a, b) AS (...): a WITH's query */
    if (!dot)
        sc->slot = SLOT_NONE;
    size_t len = name_decode(sc->lx.s, &sc->name, sc->escape, name);
    enum sql_use use = SQL_USE_NAME;
    if (open && keyword)
        use = SQL_USE_KEYWORD;
    else if (open && !sc->name_not_call)
        use = SQL_USE_CALL;
    else if (!open && !dot && sc->name_slot == SLOT_RELATION && !is_cte(sc, name))
        use = SQL_USE_RELATION;
    else if (!open && !dot && sc->name_slot == SLOT_TYPE &&
             !word_in(&sc->lx, &sc->name, type_words, COUNT(type_words), false))
        use = SQL_USE_TYPE;
    if (use == SQL_USE_CALL && strcmp(name, "pg_notify") == 0)
        out->notifies = true;
    give(wanted, arg, use, name, len, out);
}

/* A name token arrives: pending until the token after it. */
static void take_name(struct calls_scan *sc, const struct sql_token *t)
{
    bool in_list = sc->depth < 64 && (sc->from_lists >> sc->depth & 1);
    bool after_dot = sc->prev.kind == SQL_TOK_DOT;
    sc->have_name = true;
    sc->name = *t;
    sc->name_slot = sc->slot;
    sc->name_not_call = word_in(&sc->lx, &sc->prev, list_words, COUNT(list_words), false) ||
                        (in_list && sc->slot != SLOT_RELATION && !after_dot);
}

/* The operator bytes so far given (as PostgreSQL's lexer cuts them). */
static void give_operator(struct calls_scan *sc, sql_call_fn wanted, void *arg,
                          struct sql_calls *out)
{
    size_t n = sc->op_len;
    sc->op_len = 0;
    if (n == 0)
        return;
    sc->op[n] = '\0';
    if (strpbrk(sc->op, "~!@#%^&|`?") == NULL)
        while (n > 1 && (sc->op[n - 1] == '+' || sc->op[n - 1] == '-')) {
            give(wanted, arg, SQL_USE_OPERATOR, sc->op + n - 1, 1, out);
            sc->op[--n] = '\0';
        }
    if (strcmp(sc->op, "!=") == 0)
        give(wanted, arg, SQL_USE_OPERATOR, "<>", 2, out); /* the lexer's own spelling */
    else if (strcmp(sc->op, "=>") != 0)
        give(wanted, arg, SQL_USE_OPERATOR, sc->op, n, out);
}

/* An operator byte, or the ':' of a '::': true when t was one of them. */
static bool operator_byte(struct calls_scan *sc, const struct sql_token *t, sql_call_fn wanted,
                          void *arg, struct sql_calls *out)
{
    uint8_t c = t->kind == SQL_TOK_OTHER && t->end == t->start + 1 ? sc->lx.s[t->start] : 0;
    bool adjacent = t->start == sc->prev.end;
    if (sc->op_len > 0 && (c == 0 || strchr("+-*/<>=~!@#%^&|`?", c) == NULL || !adjacent))
        give_operator(sc, wanted, arg, out);
    if (c == ':') {
        if (sc->colon && adjacent)
            sc->slot = SLOT_TYPE;
        sc->colon = !(sc->colon && adjacent);
        return true;
    }
    sc->colon = false;
    if (c == 0 || strchr("+-*/<>=~!@#%^&|`?", c) == NULL)
        return false;
    if (sc->op_len < OP_MAX)
        sc->op[sc->op_len++] = (char)c;
    return true;
}

/* A word that opens or closes a FROM list, or names a WITH's query. */
static void from_word(struct calls_scan *sc, const struct sql_token *t)
{
    uint64_t here = sc->depth < 64 ? 1ULL << sc->depth : 0;
    if (sql_tok_is_word(&sc->lx, t, "from") && !sc->no_from && !(sc->from_functions & here) &&
        !sql_tok_is_word(&sc->lx, &sc->prev, "distinct")) {
        sc->from_lists |= here;
        sc->slot = here != 0 ? SLOT_RELATION : SLOT_NONE;
    } else if (sql_tok_is_word(&sc->lx, t, "join") && here != 0) {
        sc->slot = SLOT_RELATION;
    } else if (word_in(&sc->lx, t, from_ends, COUNT(from_ends), false)) {
        sc->from_lists &= ~here;
    }
}

/* name AS ( or AS [NOT] MATERIALIZED: a WITH's query, which FROM may name. */
static void with_name(struct calls_scan *sc, const struct sql_token *t)
{
    if (sc->as_after_name &&
        (t->kind == SQL_TOK_OPEN || sql_tok_is_word(&sc->lx, t, "not") ||
         sql_tok_is_word(&sc->lx, t, "materialized")) &&
        sc->nctes < CTE_MAX)
        (void)name_decode(sc->lx.s, &sc->as_name, '\\', sc->ctes[sc->nctes++]);
    sc->as_after_name = sql_tok_is_word(&sc->lx, t, "as") &&
                        (sc->prev.kind == SQL_TOK_WORD || sc->prev.kind == SQL_TOK_QUOTED ||
                         sc->prev.kind == SQL_TOK_CLOSE);
    if (sc->as_after_name)
        sc->as_name = sc->prev.kind == SQL_TOK_CLOSE ? sc->as_name : sc->prev;
}

/* The statement's first token: DO, CALL, or the verb of a DDL statement. */
static void first_token(struct calls_scan *sc, const struct sql_token *t, struct sql_calls *out)
{
    if (out->found == SQL_ROUTINE_NONE && sql_tok_is_word(&sc->lx, t, "do"))
        out->found = SQL_ROUTINE_DO;
    else if (out->found == SQL_ROUTINE_NONE && sql_tok_is_word(&sc->lx, t, "call"))
        out->found = SQL_ROUTINE_CALL;
    if (sql_tok_is_word(&sc->lx, t, "notify"))
        out->notifies = true;
    if (sql_tok_is_word(&sc->lx, t, "table"))
        sc->slot = SLOT_RELATION;
    sc->no_from = word_in(&sc->lx, t, no_from_firsts, COUNT(no_from_firsts), false);
    sc->ddl = sql_tok_is_word(&sc->lx, t, "create") || sql_tok_is_word(&sc->lx, t, "alter") ||
              sql_tok_is_word(&sc->lx, t, "drop");
}

static void ddl_token(struct calls_scan *sc, const struct sql_token *t, struct sql_calls *out)
{
    if (t->kind == SQL_TOK_OPEN) {
        sc->ddl = false;
        return;
    }
    if (word_in(&sc->lx, t, routine_words, COUNT(routine_words), true))
        out->changes_routines = true;
}

/* Whether t goes on a U& name's UESCAPE 'c' (the name stays the one pending). */
static bool escape_clause(struct calls_scan *sc, const struct sql_token *t)
{
    if (!sc->have_name || !is_unicode_name(sc->lx.s, &sc->name))
        return false;
    if (!sc->escape_next && sql_tok_is_word(&sc->lx, t, "uescape")) {
        sc->escape_next = true;
        return true;
    }
    if (sc->escape_next && t->kind == SQL_TOK_STRING && t->body_len == 1) {
        sc->escape_next = false;
        sc->escape = sc->lx.s[t->body];
        return true;
    }
    return false;
}

/* Parentheses and commas: the depth, and a FROM list's next relation. */
static void punctuation(struct calls_scan *sc, const struct sql_token *t)
{
    if (t->kind == SQL_TOK_OPEN) {
        sc->depth++;
    } else if (t->kind == SQL_TOK_CLOSE && sc->depth > 0) {
        sc->depth--;
        uint64_t above = sc->depth < 63 ? ~0ULL << (sc->depth + 1) : 0;
        sc->from_lists &= ~above;
        sc->from_functions &= ~above;
    } else if (t->kind == SQL_TOK_COMMA && sc->depth < 64 && (sc->from_lists >> sc->depth & 1)) {
        sc->slot = SLOT_RELATION;
    }
}

/* One code token of a statement. */
static void statement_token(struct calls_scan *sc, const struct sql_token *t, sql_call_fn wanted,
                            void *arg, struct sql_calls *out)
{
    if (sc->tokens++ == 0)
        first_token(sc, t, out);
    else if (sc->ddl)
        ddl_token(sc, t, out);
    if (escape_clause(sc, t))
        return;
    if (sc->have_name)
        give_name(sc, t, wanted, arg, out);
    sc->escape = '\\';
    sc->escape_next = false;
    bool op = operator_byte(sc, t, wanted, arg, out);
    with_name(sc, t);
    if (t->kind == SQL_TOK_WORD || t->kind == SQL_TOK_QUOTED) {
        from_word(sc, t);
        take_name(sc, t);
    } else if (!op && t->kind != SQL_TOK_DOT) {
        sc->slot = SLOT_NONE;
    }
    punctuation(sc, t);
    sc->prev = *t;
}

void sql_calls_scan(const uint8_t *sql, size_t len, sql_call_fn wanted, void *arg,
                    struct sql_calls *out)
{
    struct calls_scan sc = {.escape = '\\'};
    struct sql_token t;
    *out = (struct sql_calls){.found = SQL_ROUTINE_NONE};
    sql_lex_init(&sc.lx, sql, len);
    for (sql_lex_next_code(&sc.lx, &t);; sql_lex_next_code(&sc.lx, &t)) {
        if (t.kind == SQL_TOK_SEMI || t.kind == SQL_TOK_END) {
            if (sc.have_name)
                give_name(&sc, &t, wanted, arg, out);
            give_operator(&sc, wanted, arg, out);
            if (t.kind == SQL_TOK_END)
                break;
            sc = (struct calls_scan){.lx = sc.lx, .escape = '\\'};
            continue;
        }
        statement_token(&sc, &t, wanted, arg, out);
    }
}
