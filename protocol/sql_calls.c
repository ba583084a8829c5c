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
#include "protocol/utf8.h"

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
    bool name_not_call;         /* the pending name followed by '(' is a column list */
    struct sql_token prev;      /* the token before this one */
    unsigned flags, prev_flags; /* this token's word roles (word_flags), the one before's */
    unsigned name_flags;        /* the pending name's */
    unsigned depth;             /* parentheses open */
    uint64_t from_lists;        /* bit d: a FROM list is open at depth d */
    uint64_t from_functions;    /* bit d: depth d is EXTRACT(...)'s or its kin's */
    bool as_after_name; /* AS after a name: a WITH's name when '(' or MATERIALIZED follows */
    struct sql_token as_name;
    char ctes[CTE_MAX][SQL_NAME_BUF];
    unsigned nctes;
    char op[OP_MAX + 1];   /* the operator bytes so far */
    size_t op_len, op_end; /* ... and where the last one ended */
    bool colon;            /* the token before is a ':' */
};

/*
 * What the scan knows of a word (unquoted; folded), one bit a role, in
 * one sorted table, looked up once per word:
 *
 *   W_GRAMMAR: PostgreSQL's reserved words and those that name no
 *   function unquoted (its col_name_keyword list) that a '(' may follow
 *   without a call (IN (...), EXTRACT(...), float(8)): not given at all
 *   (a function of such a name is called by its quoted name, which is);
 *   W_KEYWORD: the grammar puts it before '(' (GROUP BY CUBE (...),
 *   PARTITION BY HASH (...)), and a function may be named so: given as
 *   SQL_USE_KEYWORD then;
 *   W_FUNCTION_ONLY: it may name a function or a type, never a relation
 *   or a column (JOIN, LIKE, LEFT): a word of the grammar unless '('
 *   follows;
 *   W_LIST: after it, name(...) is a column list, not a call;
 *   W_FROM_FUNCTION: a call whose FROM (or IN) is not a FROM list;
 *   W_FROM_END: it ends a FROM list at its depth;
 *   W_NO_FROM: as a statement's first word, its FROM is not a FROM list;
 *   W_TYPE: a type name only the grammar knows (int for int4), after ::;
 *   W_ROUTINE: a DDL statement that names it before its first '('
 *   changes routines (and what the catalog follows from them);
 *   and the words each looked for by one step of the scan.
 */
enum word_flag {
    W_GRAMMAR = 1u << 0,
    W_KEYWORD = 1u << 1,
    W_FUNCTION_ONLY = 1u << 2,
    W_LIST = 1u << 3,
    W_FROM_FUNCTION = 1u << 4,
    W_FROM_END = 1u << 5,
    W_NO_FROM = 1u << 6,
    W_TYPE = 1u << 7,
    W_ROUTINE = 1u << 8,
    W_FROM = 1u << 9,
    W_JOIN = 1u << 10,
    W_DISTINCT = 1u << 11,
    W_TABLE = 1u << 12,
    W_DO = 1u << 13,
    W_CALL = 1u << 14,
    W_NOTIFY = 1u << 15,
    W_DDL = 1u << 16, /* CREATE, ALTER, DROP */
    W_AS = 1u << 17,
    W_NOT = 1u << 18,
    W_MATERIALIZED = 1u << 19,
    W_UESCAPE = 1u << 20,
};

struct word_role {
    const char *word;
    unsigned flags;
};

static const struct word_role word_roles[] = {
    {"aggregate", W_ROUTINE},
    {"all", W_GRAMMAR},
    {"alter", W_DDL},
    {"analyse", W_GRAMMAR},
    {"analyze", W_GRAMMAR},
    {"and", W_GRAMMAR},
    {"any", W_GRAMMAR},
    {"array", W_GRAMMAR},
    {"as", W_AS | W_GRAMMAR | W_LIST},
    {"asc", W_GRAMMAR},
    {"asymmetric", W_GRAMMAR},
    {"between", W_GRAMMAR},
    {"bigint", W_GRAMMAR | W_TYPE},
    {"bit", W_GRAMMAR},
    {"boolean", W_GRAMMAR | W_TYPE},
    {"both", W_GRAMMAR},
    {"brin", W_KEYWORD},
    {"btree", W_KEYWORD},
    {"by", W_KEYWORD},
    {"call", W_CALL},
    {"case", W_GRAMMAR},
    {"cast", W_GRAMMAR | W_ROUTINE},
    {"char", W_GRAMMAR},
    {"character", W_GRAMMAR | W_TYPE},
    {"check", W_GRAMMAR},
    {"cluster", W_KEYWORD},
    {"coalesce", W_GRAMMAR},
    {"collate", W_GRAMMAR},
    {"column", W_GRAMMAR},
    {"columns", W_KEYWORD},
    {"conflict", W_KEYWORD},
    {"constraint", W_GRAMMAR},
    {"copy", W_KEYWORD | W_NO_FROM},
    {"create", W_DDL | W_GRAMMAR},
    {"cross", W_FUNCTION_ONLY | W_KEYWORD},
    {"cube", W_KEYWORD},
    {"current_catalog", W_GRAMMAR},
    {"current_date", W_GRAMMAR},
    {"current_role", W_GRAMMAR},
    {"current_time", W_GRAMMAR},
    {"current_timestamp", W_GRAMMAR},
    {"current_user", W_GRAMMAR},
    {"dec", W_GRAMMAR | W_TYPE},
    {"decimal", W_GRAMMAR | W_TYPE},
    {"default", W_GRAMMAR},
    {"deferrable", W_GRAMMAR},
    {"desc", W_GRAMMAR},
    {"distinct", W_DISTINCT | W_GRAMMAR},
    {"do", W_DO | W_GRAMMAR},
    {"domain", W_ROUTINE},
    {"double", W_TYPE},
    {"drop", W_DDL},
    {"else", W_GRAMMAR},
    {"end", W_GRAMMAR},
    {"escape", W_KEYWORD},
    {"except", W_FROM_END | W_GRAMMAR},
    {"execute", W_LIST},
    {"exists", W_GRAMMAR},
    {"explain", W_KEYWORD},
    {"extension", W_ROUTINE},
    {"extract", W_FROM_FUNCTION | W_GRAMMAR},
    {"false", W_GRAMMAR},
    {"fetch", W_FROM_END | W_GRAMMAR | W_NO_FROM},
    {"filter", W_KEYWORD},
    {"first", W_KEYWORD},
    {"float", W_GRAMMAR | W_TYPE},
    {"for", W_FROM_END | W_GRAMMAR},
    {"foreign", W_GRAMMAR},
    {"from", W_FROM | W_GRAMMAR},
    {"full", W_FUNCTION_ONLY | W_KEYWORD},
    {"function", W_ROUTINE},
    {"gin", W_KEYWORD},
    {"gist", W_KEYWORD},
    {"grant", W_GRAMMAR},
    {"greatest", W_GRAMMAR},
    {"group", W_FROM_END | W_GRAMMAR},
    {"grouping", W_GRAMMAR},
    {"hash", W_KEYWORD},
    {"having", W_FROM_END | W_GRAMMAR},
    {"ilike", W_FUNCTION_ONLY | W_KEYWORD},
    {"import", W_NO_FROM},
    {"in", W_GRAMMAR},
    {"include", W_KEYWORD},
    {"initially", W_GRAMMAR},
    {"inner", W_FUNCTION_ONLY | W_KEYWORD},
    {"inout", W_GRAMMAR},
    {"int", W_GRAMMAR | W_TYPE},
    {"integer", W_GRAMMAR | W_TYPE},
    {"intersect", W_FROM_END | W_GRAMMAR},
    {"interval", W_GRAMMAR},
    {"into", W_GRAMMAR},
    {"is", W_FUNCTION_ONLY | W_KEYWORD},
    {"join", W_FUNCTION_ONLY | W_JOIN | W_KEYWORD},
    {"key", W_KEYWORD},
    {"language", W_ROUTINE},
    {"last", W_KEYWORD},
    {"lateral", W_GRAMMAR},
    {"leading", W_GRAMMAR},
    {"least", W_GRAMMAR},
    {"left", W_FUNCTION_ONLY},
    {"like", W_FUNCTION_ONLY | W_KEYWORD},
    {"limit", W_FROM_END | W_GRAMMAR},
    {"list", W_KEYWORD},
    {"localtime", W_GRAMMAR},
    {"localtimestamp", W_GRAMMAR},
    {"materialized", W_KEYWORD | W_MATERIALIZED},
    {"move", W_NO_FROM},
    {"national", W_GRAMMAR | W_TYPE},
    {"natural", W_FUNCTION_ONLY | W_KEYWORD},
    {"nchar", W_GRAMMAR | W_TYPE},
    {"none", W_GRAMMAR},
    {"not", W_GRAMMAR | W_NOT},
    {"notify", W_NOTIFY},
    {"null", W_GRAMMAR},
    {"nullif", W_KEYWORD},
    {"nulls", W_KEYWORD},
    {"numeric", W_GRAMMAR},
    {"offset", W_FROM_END | W_GRAMMAR},
    {"on", W_GRAMMAR},
    {"only", W_GRAMMAR},
    {"operator", W_KEYWORD | W_ROUTINE},
    {"or", W_GRAMMAR},
    {"order", W_FROM_END | W_GRAMMAR},
    {"ordinality", W_KEYWORD},
    {"out", W_GRAMMAR},
    {"outer", W_FUNCTION_ONLY | W_KEYWORD},
    {"over", W_KEYWORD},
    {"overlay", W_FROM_FUNCTION | W_GRAMMAR},
    {"partition", W_KEYWORD},
    {"placing", W_GRAMMAR},
    {"policy", W_ROUTINE},
    {"position", W_FROM_FUNCTION | W_GRAMMAR},
    {"precision", W_GRAMMAR},
    {"prepare", W_LIST},
    {"primary", W_GRAMMAR},
    {"procedure", W_ROUTINE},
    {"range", W_KEYWORD},
    {"real", W_GRAMMAR | W_TYPE},
    {"recursive", W_KEYWORD | W_LIST},
    {"references", W_GRAMMAR},
    {"reindex", W_KEYWORD},
    {"repeatable", W_KEYWORD},
    {"return", W_KEYWORD},
    {"returning", W_FROM_END | W_GRAMMAR},
    {"revoke", W_NO_FROM},
    {"right", W_FUNCTION_ONLY},
    {"rollup", W_KEYWORD},
    {"routine", W_ROUTINE},
    {"row", W_GRAMMAR},
    {"rows", W_KEYWORD},
    {"rule", W_ROUTINE},
    {"schema", W_ROUTINE},
    {"select", W_GRAMMAR},
    {"session_user", W_GRAMMAR},
    {"set", W_KEYWORD},
    {"setof", W_GRAMMAR},
    {"sets", W_KEYWORD},
    {"similar", W_FUNCTION_ONLY | W_KEYWORD},
    {"smallint", W_GRAMMAR | W_TYPE},
    {"some", W_GRAMMAR},
    {"spgist", W_KEYWORD},
    {"substring", W_FROM_FUNCTION | W_GRAMMAR},
    {"symmetric", W_GRAMMAR},
    {"system_user", W_GRAMMAR},
    {"table", W_GRAMMAR | W_LIST | W_TABLE},
    {"then", W_GRAMMAR},
    {"time", W_GRAMMAR},
    {"timestamp", W_GRAMMAR},
    {"to", W_GRAMMAR},
    {"trailing", W_GRAMMAR},
    {"transform", W_ROUTINE},
    {"treat", W_GRAMMAR},
    {"trim", W_FROM_FUNCTION | W_GRAMMAR},
    {"true", W_GRAMMAR},
    {"type", W_ROUTINE},
    {"uescape", W_UESCAPE},
    {"union", W_FROM_END | W_GRAMMAR},
    {"unique", W_GRAMMAR},
    {"user", W_GRAMMAR},
    {"using", W_GRAMMAR},
    {"vacuum", W_KEYWORD},
    {"values", W_GRAMMAR},
    {"varchar", W_GRAMMAR},
    {"variadic", W_GRAMMAR},
    {"varying", W_KEYWORD},
    {"view", W_LIST | W_ROUTINE},
    {"when", W_GRAMMAR},
    {"where", W_FROM_END | W_GRAMMAR},
    {"window", W_FROM_END | W_GRAMMAR},
    {"with", W_GRAMMAR | W_LIST},
    {"within", W_KEYWORD},
    {"xmlattributes", W_GRAMMAR},
    {"xmlconcat", W_GRAMMAR},
    {"xmlelement", W_GRAMMAR},
    {"xmlexists", W_GRAMMAR},
    {"xmlforest", W_GRAMMAR},
    {"xmlnamespaces", W_GRAMMAR},
    {"xmlparse", W_GRAMMAR},
    {"xmlpi", W_GRAMMAR},
    {"xmlroot", W_GRAMMAR},
    {"xmlserialize", W_GRAMMAR},
    {"xmltable", W_GRAMMAR},
    {"zone", W_KEYWORD},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* bsearch's order over the word table: a folded word against an entry's. */
static int word_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct word_role *)elem)->word);
}

/* The roles of token t of lx: 0 for a word the table lacks, or a token that is no word. */
static unsigned word_flags(const struct sql_lexer *lx, const struct sql_token *t)
{
    char w[24];
    if (t->kind != SQL_TOK_WORD || t->body_len >= sizeof(w))
        return 0;
    for (size_t i = 0; i < t->body_len; i++)
        w[i] = (char)sql_fold(lx->s[t->body + i]);
    w[t->body_len] = '\0';
    const struct word_role *r = bsearch(w, word_roles, COUNT(word_roles), sizeof(*r), word_cmp);
    return r != NULL ? r->flags : 0;
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

/* Appends code point cp (1 to U+10FFFF) to out (UTF-8) as room allows; the length after. */
static size_t put_code_point(char *out, size_t at, size_t cap, long cp)
{
    uint8_t b[4];
    size_t n = utf8_put((uint32_t)cp, b);
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
            len = put_code_point(out, len, SQL_NAME_BUF - 1, cp);
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

/* Whether name is one the statement's WITH defined, so a relation of that name is no table. */
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
    unsigned f = sc->name_flags;
    bool grammar = (f & W_GRAMMAR) || (!open && (f & W_FUNCTION_ONLY));
    bool keyword = open && (f & W_KEYWORD);
    if (open && (f & W_FROM_FUNCTION) && sc->depth + 1 < 64)
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
    else if (!open && !dot && sc->name_slot == SLOT_TYPE && !(f & W_TYPE))
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
    sc->name_flags = sc->flags;
    sc->name_not_call =
        (sc->prev_flags & W_LIST) || (in_list && sc->slot != SLOT_RELATION && !after_dot);
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
    if ((sc->flags & W_FROM) && !sc->no_from && !(sc->from_functions & here) &&
        !(sc->prev_flags & W_DISTINCT)) {
        sc->from_lists |= here;
        sc->slot = here != 0 ? SLOT_RELATION : SLOT_NONE;
    } else if ((sc->flags & W_JOIN) && here != 0) {
        sc->slot = SLOT_RELATION;
    } else if (sc->flags & W_FROM_END) {
        sc->from_lists &= ~here;
    }
}

/* name AS ( or AS [NOT] MATERIALIZED: a WITH's query, which FROM may name. */
static void with_name(struct calls_scan *sc, const struct sql_token *t)
{
    if (sc->as_after_name && (t->kind == SQL_TOK_OPEN || (sc->flags & (W_NOT | W_MATERIALIZED))) &&
        sc->nctes < CTE_MAX)
        (void)name_decode(sc->lx.s, &sc->as_name, '\\', sc->ctes[sc->nctes++]);
    sc->as_after_name =
        (sc->flags & W_AS) && (sc->prev.kind == SQL_TOK_WORD || sc->prev.kind == SQL_TOK_QUOTED ||
                               sc->prev.kind == SQL_TOK_CLOSE);
    if (sc->as_after_name)
        sc->as_name = sc->prev.kind == SQL_TOK_CLOSE ? sc->as_name : sc->prev;
}

/* The statement's first token: DO, CALL, or the verb of a DDL statement. */
static void first_token(struct calls_scan *sc, const struct sql_token *t, struct sql_calls *out)
{
    unsigned f = sc->flags;
    if (out->found == SQL_ROUTINE_NONE && (f & W_DO))
        out->found = SQL_ROUTINE_DO;
    else if (out->found == SQL_ROUTINE_NONE && (f & W_CALL))
        out->found = SQL_ROUTINE_CALL;
    if (f & W_NOTIFY)
        out->notifies = true;
    if (f & W_TABLE)
        sc->slot = SLOT_RELATION;
    sc->no_from = f & W_NO_FROM;
    sc->ddl = f & W_DDL;
}

/*
 * A token after CREATE, ALTER or DROP until the first '(': a word of
 * routines among them (FUNCTION, PROCEDURE...) marks the text as changing
 * them.
 */
static void ddl_token(struct calls_scan *sc, const struct sql_token *t, struct sql_calls *out)
{
    if (t->kind == SQL_TOK_OPEN) {
        sc->ddl = false;
        return;
    }
    if (sc->flags & W_ROUTINE)
        out->changes_routines = true;
}

/* Whether t goes on a U& name's UESCAPE 'c' (the name stays the one pending). */
static bool escape_clause(struct calls_scan *sc, const struct sql_token *t)
{
    if (!sc->have_name || !is_unicode_name(sc->lx.s, &sc->name))
        return false;
    if (!sc->escape_next && (sc->flags & W_UESCAPE)) {
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
    sc->flags = word_flags(&sc->lx, t);
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
    sc->prev_flags = sc->flags;
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
