/*
 * txn_pin.c — SQL that leaves session state behind (txn_pin.h).
 *
 * The tokens come from sql_lex.c, as PostgreSQL's lexer cuts them;
 * comments between them are skipped.  The scan looks at each token once,
 * with a few facts about the statement it is in: its first word, the word
 * just before, its parenthesis depth, how many tokens it has had so far.
 *
 * set_config is the one rule that needs more than that: whether it pins
 * depends on its call's last argument, known only at the call's closing
 * parenthesis.  The calls still open are kept on a small stack (nested
 * calls are each followed); a reason found inside an open call waits
 * until the calls are closed, since the set_config before it comes first
 * in the text.  A set_config nested deeper than the stack holds pins,
 * to be safe.  Looking ahead one token (is the next one a '(' or a '.')
 * scans that token twice, never more: the scan stays linear.
 */
#include "protocol/txn_pin.h"

#include "protocol/bytes8.h"
#include "protocol/sql_calls.h"
#include "protocol/sql_lex.h"

#include <stdbool.h>
#include <string.h>

static const char WHY_SET[] = "a session-level SET";
static const char WHY_SET_CONFIG[] = "set_config() outside a transaction-local call";
static const char WHY_TEMP[] = "a temporary object";
static const char WHY_LISTEN[] = "LISTEN";
static const char WHY_PREPARE[] = "a SQL PREPARE";
static const char WHY_HOLD[] = "a WITH HOLD cursor";
static const char WHY_ADVISORY[] = "a session advisory lock";
static const char WHY_LOAD[] = "LOAD";
/* Not a pin: what a session whose state is carried between connections changes (txn_pin.h). */
static const char WHY_RESET[] = "a RESET, DISCARD or DEALLOCATE";
/* ... and what it pins for that the plain scan counts as SET: nothing can read it back. */
static const char WHY_CUSTOM[] = "a session-level custom setting (a name with a dot)";
/* ... nor replay it: the session's user changes, which a replay must not do on its own. */
static const char WHY_AUTHORIZATION[] = "SET SESSION AUTHORIZATION";

/* ---- tokens ---- */

/* The kind of the token after the lexer's position, the lexer left where it is. */
static enum sql_tok_kind peek_kind(const struct sql_lexer *lx)
{
    struct sql_lexer copy = *lx;
    struct sql_token t;
    sql_lex_next_code(&copy, &t);
    return t.kind;
}

/* An ASCII digit (isdigit() follows the locale). */
static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* ---- words ---- */

enum kw {
    KW_NONE,
    KW_SET,
    KW_LOCAL,
    KW_TRANSACTION,
    KW_CONSTRAINTS,
    KW_SET_CONFIG,
    KW_TRUE,
    KW_TEMP,
    KW_CREATE,
    KW_REPLACE,
    KW_GLOBAL,
    KW_INTO,
    KW_LISTEN,
    KW_PREPARE,
    KW_DECLARE,
    KW_WITH,
    KW_HOLD,
    KW_LOAD,
    KW_PG_TEMP,
    KW_ADVISORY, /* a session advisory lock function */
    KW_RESET,    /* RESET, DISCARD, DEALLOCATE: state undone (txn_pin_scan_carried) */
    KW_SESSION,
};

static const struct {
    const char *word; /* lower case */
    enum kw kw;
    /* the quick look finds it (needed_word_at), as test_txn_pin checks;
     * false: it matters only after a word the quick look finds */
    bool looked_for;
} keywords[] = {
    {"set", KW_SET, true},
    {"local", KW_LOCAL, false},
    {"transaction", KW_TRANSACTION, false},
    {"constraints", KW_CONSTRAINTS, false},
    {"set_config", KW_SET_CONFIG, true},
    {"true", KW_TRUE, false},
    {"temp", KW_TEMP, true},
    {"temporary", KW_TEMP, true},
    {"create", KW_CREATE, false},
    {"replace", KW_REPLACE, false},
    {"global", KW_GLOBAL, false},
    {"into", KW_INTO, false},
    {"listen", KW_LISTEN, true},
    {"prepare", KW_PREPARE, true},
    {"declare", KW_DECLARE, false},
    {"with", KW_WITH, false},
    {"hold", KW_HOLD, true},
    {"load", KW_LOAD, true},
    {"pg_temp", KW_PG_TEMP, true},
    {"pg_advisory_lock", KW_ADVISORY, true},
    {"pg_advisory_lock_shared", KW_ADVISORY, true},
    {"pg_try_advisory_lock", KW_ADVISORY, true},
    {"pg_try_advisory_lock_shared", KW_ADVISORY, true},
    {"reset", KW_RESET, true},
    {"discard", KW_RESET, true},
    {"deallocate", KW_RESET, true},
    {"session", KW_SESSION, false},
};

const char *txn_pin_keyword(size_t i, bool *looked_for)
{
    if (i >= sizeof(keywords) / sizeof(keywords[0]))
        return NULL;
    *looked_for = keywords[i].looked_for;
    return keywords[i].word;
}

/* pg_temp_3 and the like: another name of the session's temporary schema. */
static bool is_numbered_pg_temp(const uint8_t *w, size_t n)
{
    if (n < 9 || !sql_word_equals(w, 8, "pg_temp_"))
        return false;
    for (size_t i = 8; i < n; i++)
        if (!is_digit(w[i]))
            return false;
    return true;
}

/*
 * What a token is to the rules: a word by its letters in any case; a
 * quoted identifier only as a function name, spelt exactly (quoted, it
 * names the same function, and is never a keyword).
 */
/*
 * A U&"name": what its escapes spell, compared as a quoted name is, with
 * the functions that pin (U&"pg\005fadvisory_lock" is pg_advisory_lock).
 */
static enum kw unicode_keyword_of(const struct sql_lexer *lx, const struct sql_token *t)
{
    char name[SQL_NAME_BUF];
    sql_name_of(lx->s, t, name);
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if ((keywords[i].kw == KW_SET_CONFIG || keywords[i].kw == KW_ADVISORY) &&
            strcmp(name, keywords[i].word) == 0)
            return keywords[i].kw;
    return KW_NONE;
}

static enum kw keyword_of(const struct sql_lexer *lx, const struct sql_token *t)
{
    const uint8_t *w = lx->s + t->body;
    if (t->kind != SQL_TOK_WORD && t->kind != SQL_TOK_QUOTED)
        return KW_NONE;
    if (t->kind == SQL_TOK_QUOTED && t->body > t->start + 1)
        return unicode_keyword_of(lx, t);
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        const char *k = keywords[i].word;
        if (t->body_len == 0 || (w[0] | 0x20) != k[0])
            continue; /* the quick test: most words end here */
        if (t->kind == SQL_TOK_WORD && sql_word_equals(w, t->body_len, k))
            return keywords[i].kw;
        if (t->kind == SQL_TOK_QUOTED && t->body_len == strlen(k) &&
            memcmp(w, k, t->body_len) == 0 &&
            (keywords[i].kw == KW_SET_CONFIG || keywords[i].kw == KW_ADVISORY))
            return keywords[i].kw;
    }
    return t->kind == SQL_TOK_WORD && is_numbered_pg_temp(w, t->body_len) ? KW_PG_TEMP : KW_NONE;
}

/* ---- the scan ---- */

/* set_config calls followed at once, nested; a set_config in the innermost pins. */
#define SET_CONFIG_CALLS 8

/* An open call of set_config. */
struct set_config_call {
    unsigned depth;      /* the parenthesis depth inside it */
    unsigned arg_tokens; /* tokens of its argument so far, at that depth */
    bool arg_true;       /* that argument is one token that reads as true */
    unsigned arg_index;  /* which argument, from 0 */
    bool name_custom;    /* its first is not one string without a dot (a custom name, or unknown) */
};

struct pin_scan {
    struct sql_lexer lx;
    unsigned depth;       /* parentheses open in the statement */
    unsigned stmt_tokens; /* tokens of the statement so far, counted up to 3 */
    enum kw first;        /* the statement's first token, if a keyword */
    enum kw prev;         /* the token before this one, if a keyword */
    struct set_config_call calls[SET_CONFIG_CALLS];
    unsigned ncalls;
    const char *deferred; /* the first reason found inside an open call */
    bool carried;         /* txn_pin_scan_carried: RESET and the like count too */
    bool authorization;   /* ... and SET SESSION AUTHORIZATION came: its user is next */
};

/* A reason found now: returned, or kept while a set_config call before it is open. */
static const char *found(struct pin_scan *sc, const char *why)
{
    /* The carried scan reads on after each reason: it needs no order, only whether one pins. */
    if (why == NULL || sc->ncalls == 0 || sc->carried)
        return why;
    if (sc->deferred == NULL)
        sc->deferred = why;
    return NULL;
}

/* The keyword true, or a string 't', 'true' or 'on' (what boolin reads as true). */
static bool reads_true(const struct pin_scan *sc, const struct sql_token *t, enum kw kw)
{
    const uint8_t *body = sc->lx.s + t->body;
    if (t->kind == SQL_TOK_WORD)
        return kw == KW_TRUE;
    return t->kind == SQL_TOK_STRING &&
           (sql_word_equals(body, t->body_len, "t") || sql_word_equals(body, t->body_len, "true") ||
            sql_word_equals(body, t->body_len, "on"));
}

/*
 * The innermost open set_config call sees a token at its own depth: the
 * token is part of its current argument, begins the next one (','), or
 * closes the call (')'), which then pins unless that last argument read
 * as true.  When the last open call closes, a reason kept meanwhile is
 * the answer.
 */
static const char *follow_call(struct pin_scan *sc, const struct sql_token *t, enum kw kw)
{
    struct set_config_call *call = &sc->calls[sc->ncalls - 1];
    if (sc->depth != call->depth)
        return NULL;
    if (t->kind == SQL_TOK_COMMA) {
        call->name_custom |= call->arg_index == 0 && call->arg_tokens != 1;
        call->arg_tokens = 0;
        call->arg_true = false;
        call->arg_index++;
    } else if (t->kind == SQL_TOK_CLOSE) {
        /* Closed either way: a scan that reads on after a reason (carried) follows the rest. */
        sc->ncalls--;
        if (call->arg_tokens != 1 || !call->arg_true)
            return sc->carried && call->name_custom ? WHY_CUSTOM : WHY_SET_CONFIG;
        if (sc->ncalls > 0)
            return NULL;
        const char *why = sc->deferred;
        sc->deferred = NULL;
        return why;
    } else {
        call->arg_tokens++;
        call->arg_true = reads_true(sc, t, kw);
        if (call->arg_index == 0)
            call->name_custom |=
                t->kind != SQL_TOK_STRING || memchr(sc->lx.s + t->body, '.', t->body_len) != NULL;
    }
    return NULL;
}

/* The word set_config: a call of it is followed to its end; anything else pins. */
static const char *open_call(struct pin_scan *sc)
{
    if (peek_kind(&sc->lx) != SQL_TOK_OPEN || sc->ncalls == SET_CONFIG_CALLS)
        return WHY_SET_CONFIG;
    sc->calls[sc->ncalls++] = (struct set_config_call){.depth = sc->depth + 1};
    return NULL;
}

/*
 * SET [SESSION] a.b: the name the SET's second token (or third, after
 * SESSION) begins is qualified by a dot, as only custom settings are.
 */
static bool set_names_custom(const struct pin_scan *sc, const struct sql_token *t, enum kw kw)
{
    bool name_here;
    if (sc->stmt_tokens == 1)
        name_here =
            kw != KW_SESSION && kw != KW_LOCAL && kw != KW_TRANSACTION && kw != KW_CONSTRAINTS;
    else
        name_here = sc->stmt_tokens == 2 && sc->prev == KW_SESSION;
    return name_here && (t->kind == SQL_TOK_WORD || t->kind == SQL_TOK_QUOTED) &&
           peek_kind(&sc->lx) == SQL_TOK_DOT;
}

/* What the first tokens of a statement say. */
static const char *statement_start(struct pin_scan *sc, const struct sql_token *t, enum kw kw)
{
    if (sc->stmt_tokens == 0) {
        sc->first = t->kind == SQL_TOK_WORD ? kw : KW_NONE;
        if (sc->first == KW_LISTEN)
            return WHY_LISTEN;
        if (sc->first == KW_LOAD)
            return WHY_LOAD;
        if (sc->first == KW_RESET && sc->carried)
            return WHY_RESET;
        return NULL;
    }
    if (sc->carried && sc->first == KW_SET && set_names_custom(sc, t, kw))
        return WHY_CUSTOM;
    if (sc->carried && sc->first == KW_SET && sc->stmt_tokens == 2 && sc->prev == KW_SESSION &&
        sql_tok_is_word(&sc->lx, t, "authorization"))
        sc->authorization = true; /* the user it names decides, below */
    else if (sc->authorization) {
        sc->authorization = false;
        /* DEFAULT is the login's user again, which the replay has; another is not carried. */
        if (!sql_tok_is_word(&sc->lx, t, "default"))
            return WHY_AUTHORIZATION;
    }
    if (sc->stmt_tokens != 1)
        return NULL;
    bool is_word = t->kind == SQL_TOK_WORD;
    if (sc->first == KW_SET &&
        !(is_word && (kw == KW_LOCAL || kw == KW_TRANSACTION || kw == KW_CONSTRAINTS)))
        return WHY_SET;
    if (sc->first == KW_PREPARE && !(is_word && kw == KW_TRANSACTION))
        return WHY_PREPARE;
    return NULL;
}

/* What a word says wherever it stands. */
static const char *word_rules(struct pin_scan *sc, enum kw kw)
{
    enum kw prev = sc->prev;
    switch (kw) {
    case KW_ADVISORY:
        return WHY_ADVISORY;
    case KW_SET_CONFIG:
        return open_call(sc);
    case KW_TEMP:
        if (prev == KW_CREATE || prev == KW_REPLACE || prev == KW_GLOBAL || prev == KW_LOCAL ||
            prev == KW_INTO)
            return WHY_TEMP;
        return NULL;
    case KW_PG_TEMP:
        if ((sc->first == KW_CREATE || prev == KW_INTO) && peek_kind(&sc->lx) == SQL_TOK_DOT)
            return WHY_TEMP;
        return NULL;
    case KW_HOLD:
        return sc->first == KW_DECLARE && prev == KW_WITH ? WHY_HOLD : NULL;
    default:
        return NULL;
    }
}

/*
 * A ';' or the end of the text.  A set_config call still open never
 * closed (pins); a SET or PREPARE with nothing after it pins too.
 */
static const char *statement_end(struct pin_scan *sc)
{
    const char *why = NULL;
    if (sc->ncalls > 0)
        why = WHY_SET_CONFIG;
    else if (sc->stmt_tokens == 1 && sc->first == KW_SET)
        why = WHY_SET;
    else if (sc->stmt_tokens == 1 && sc->first == KW_PREPARE)
        why = WHY_PREPARE;
    sc->depth = 0;
    sc->stmt_tokens = 0;
    sc->first = KW_NONE;
    sc->prev = KW_NONE;
    sc->authorization = false;
    return why;
}

/* One token: its reason, if one is known now. */
static const char *scan_token(struct pin_scan *sc, const struct sql_token *t)
{
    if (t->kind == SQL_TOK_SEMI || t->kind == SQL_TOK_END)
        return statement_end(sc);
    enum kw kw = keyword_of(&sc->lx, t);
    const char *why = sc->ncalls > 0 ? follow_call(sc, t, kw) : NULL;
    if (why == NULL)
        why = found(sc, statement_start(sc, t, kw));
    if (why == NULL && kw != KW_NONE)
        why = found(sc, word_rules(sc, kw));
    if (t->kind == SQL_TOK_OPEN && sc->depth < ~0u)
        sc->depth++;
    else if (t->kind == SQL_TOK_CLOSE && sc->depth > 0)
        sc->depth--;
    sc->prev = kw;
    if (sc->stmt_tokens < 3)
        sc->stmt_tokens++;
    return why;
}

/* ---- the quick look (txn_pin_rules_out) ---- */

/* The bytes a word goes on over, so that no token begins right after one: letters, '_', >= 0x80. */
static const bool word_byte[256] = {
    ['A' ... 'Z'] = true,
    ['a' ... 'z'] = true,
    ['_'] = true,
    [0x80 ... 0xff] = true,
};

static bool continues_word(uint8_t c)
{
    return word_byte[c];
}

/*
 * The n bytes at s begin with word (lower case letters and '_'; ASCII
 * letters in any case): only an upper case letter becomes its lower case
 * with bit 0x20 set.
 */
static bool begins_with(const uint8_t *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; word[i] != '\0' && i < n; i++) {
        uint8_t c = s[i], want = (uint8_t)word[i];
        if (c != want && (c | 0x20) != want)
            return false;
    }
    return word[i] == '\0';
}

/*
 * The word SET at i, whole, right after a name or a number (UPDATE t
 * SET a = 1): no statement's first word, unless a line comment ends just
 * before it (the caller looks for "--").  Before a statement's first
 * word there is nothing, a ';' or a comment, and a block comment ends
 * with '/'.
 */
static bool set_after_name(const uint8_t *s, size_t len, size_t i)
{
    uint8_t next = i + 3 < len ? s[i + 3] : ' ';
    if (continues_word(next) || (next >= '0' && next <= '9') || next == '$')
        return false; /* set_config, or a longer word */
    while (i > 0 && sql_lex_is_blank(s[i - 1]))
        i--;
    if (i == 0)
        return false;
    uint8_t before = s[i - 1];
    return continues_word(before) || (before >= '0' && before <= '9') || before == '"';
}

/*
 * Whether a word a reason needs begins at i, a byte no word goes on
 * into: SET and set_config, TEMP and TEMPORARY, pg_temp, the advisory
 * lock functions, LISTEN, LOAD, PREPARE, HOLD, and for the carried scan
 * RESET, DISCARD and DEALLOCATE (no rule above gives a reason without
 * one of them among the tokens).  A whole SET right after a name only
 * marks *set_late.  The first letter picks the words to compare.
 */
static bool needed_word_at(const uint8_t *s, size_t len, size_t i, bool *set_late)
{
    const uint8_t *w = s + i;
    size_t n = len - i;
    switch (w[0] | 0x20) {
    case 's':
        if (!begins_with(w, n, "set"))
            return false;
        if (!set_after_name(s, len, i))
            return true;
        *set_late = true;
        return false;
    case 't':
        return begins_with(w, n, "temp");
    case 'p':
        if (!begins_with(w, n, "pg_"))
            return begins_with(w, n, "prepare");
        return begins_with(w + 3, n - 3, "temp") || begins_with(w + 3, n - 3, "advisory_lock") ||
               begins_with(w + 3, n - 3, "try_advisory_lock");
    case 'l':
        return begins_with(w, n, "listen") || begins_with(w, n, "load");
    case 'h':
        return begins_with(w, n, "hold");
    case 'r':
        return begins_with(w, n, "reset");
    case 'd':
        return begins_with(w, n, "discard") || begins_with(w, n, "deallocate");
    case 'u':
        return n >= 3 && w[1] == '&' && w[2] == '"'; /* U&"...": its escapes may spell one */
    default:
        return false;
    }
}

/*
 * The raw bytes, strings and comments included, looked at where a token
 * could begin: a word a reason needs there, or none.  Reading strings as
 * text can only find more.  A SET after a name is found too when the
 * text has a "--" anywhere (a line comment may end before it).  Eight
 * bytes a step: the bytes that go on a word marked at once
 * (bytes8_word), a word's start is a marked byte after an unmarked one,
 * and only the starts are compared (byte by byte, pgbench's query cost
 * ~540 instructions).
 */
bool txn_pin_rules_out(const uint8_t *sql, size_t len)
{
    bool set_late = false;
    uint64_t before = 0; /* the top bit: the byte before this step's goes on a word */
    for (size_t i = 0; i < len; i += 8) {
        size_t n = len - i < 8 ? len - i : 8;
        uint64_t word =
            bytes8_word(n == 8 ? bytes8_load(sql + i, 8) : bytes8_load_tail(sql + i, n, i));
        uint64_t starts = word & ~((word << 8) | before);
        before = (word >> 56) & 0x80;
        for (; starts != 0; starts &= starts - 1) {
            size_t at = i + (size_t)__builtin_ctzll(starts) / 8;
            if (at < len && needed_word_at(sql, len, at, &set_late))
                return false;
        }
    }
    return !(set_late && memmem(sql, len, "--", 2) != NULL);
}

const char *txn_pin_scan(const uint8_t *sql, size_t len)
{
    if (txn_pin_rules_out(sql, len))
        return NULL;
    struct pin_scan sc = {.lx = {.s = sql, .len = len}};
    struct sql_token t;
    do {
        sql_lex_next_code(&sc.lx, &t);
        const char *why = scan_token(&sc, &t);
        if (why != NULL)
            return why;
    } while (t.kind != SQL_TOK_END);
    return NULL;
}

/* Whether a reason is state a session's state read carries to another connection. */
static bool carried_reason(const char *why)
{
    return why == WHY_SET || why == WHY_SET_CONFIG || why == WHY_PREPARE || why == WHY_RESET;
}

const char *txn_pin_scan_carried(const uint8_t *sql, size_t len, bool *changes)
{
    if (txn_pin_rules_out(sql, len))
        return NULL;
    struct pin_scan sc = {.lx = {.s = sql, .len = len}, .carried = true};
    struct sql_token t;
    do {
        sql_lex_next_code(&sc.lx, &t);
        const char *why = scan_token(&sc, &t);
        if (why != NULL && !carried_reason(why))
            return why;
        if (why != NULL)
            *changes = true;
    } while (t.kind != SQL_TOK_END);
    return NULL;
}
