/*
 * txn_pin.c — SQL that leaves session state behind (txn_pin.h).
 *
 * Two layers.  The lexer cuts the text into tokens as PostgreSQL's does,
 * as far as it matters here: words, strings and quoted identifiers (with
 * their bodies, to compare), parameters, parentheses, ',', '.', ';' and
 * single other bytes; blanks and comments between tokens are skipped.
 * The scan looks at each token once, with a few facts about the
 * statement it is in: its first word, the word just before, its
 * parenthesis depth, how many tokens it has had so far.
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

/* ---- the lexer ---- */

enum tok_kind {
    TOK_END,    /* no more text */
    TOK_WORD,   /* a keyword or an unquoted name */
    TOK_QUOTED, /* a quoted identifier: body is between the quotes */
    TOK_STRING, /* a string constant of any kind: body is between the quotes */
    TOK_PARAM,  /* $1 */
    TOK_OPEN,
    TOK_CLOSE,
    TOK_COMMA,
    TOK_DOT,
    TOK_SEMI,
    TOK_OTHER, /* an operator byte, a number, a lone '$' */
};

struct token {
    enum tok_kind kind;
    size_t start, len; /* the word, or the body of a string or quoted identifier */
};

struct lexer {
    const uint8_t *s;
    size_t len, pos;
};

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_ident_start(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* A dollar quote's tag goes on over these; a word also over '$'. */
static bool is_tag_cont(uint8_t c)
{
    return is_ident_start(c) || is_digit(c);
}

static bool is_ident_cont(uint8_t c)
{
    return is_tag_cont(c) || c == '$';
}

/* The byte at i, or 0 past the end (0 is none of the bytes looked for). */
static uint8_t at(const struct lexer *lx, size_t i)
{
    return i < lx->len ? lx->s[i] : 0;
}

/* A block comment at lx->pos, nested as PostgreSQL nests them; unterminated: to the end. */
static void skip_block_comment(struct lexer *lx)
{
    size_t depth = 0;
    size_t i = lx->pos;
    while (i + 1 < lx->len) {
        if (lx->s[i] == '*' && lx->s[i + 1] == '/') {
            i += 2;
            if (--depth == 0) {
                lx->pos = i;
                return;
            }
        } else if (lx->s[i] == '/' && lx->s[i + 1] == '*') {
            i += 2;
            depth++;
        } else {
            i++;
        }
    }
    lx->pos = lx->len;
}

/* Blanks and comments up to the next token. */
static void skip_blanks(struct lexer *lx)
{
    while (lx->pos < lx->len) {
        uint8_t c = lx->s[lx->pos], next = at(lx, lx->pos + 1);
        if (is_space(c)) {
            lx->pos++;
        } else if (c == '-' && next == '-') {
            const uint8_t *nl = memchr(lx->s + lx->pos, '\n', lx->len - lx->pos);
            lx->pos = nl ? (size_t)(nl - lx->s) : lx->len;
        } else if (c == '/' && next == '*') {
            skip_block_comment(lx);
        } else {
            return;
        }
    }
}

/*
 * A string or quoted identifier whose opening quote is at lx->pos: a
 * doubled quote stands for one, and with backslashes a backslash hides
 * the byte after it.  Unterminated: the body runs to the end.
 */
static void scan_quoted(struct lexer *lx, enum tok_kind kind, bool backslashes, struct token *t)
{
    uint8_t quote = lx->s[lx->pos];
    size_t i = lx->pos + 1;
    t->kind = kind;
    t->start = i;
    while (i < lx->len) {
        uint8_t c = lx->s[i];
        if (backslashes && c == '\\') {
            i += 2;
        } else if (c != quote) {
            i++;
        } else if (at(lx, i + 1) == quote) {
            i += 2;
        } else {
            t->len = i - t->start;
            lx->pos = i + 1;
            return;
        }
    }
    t->len = lx->len - t->start;
    lx->pos = lx->len;
}

/* The length of a dollar-quote delimiter ($$ or $tag$) at i, or 0. */
static size_t dollar_delimiter(const struct lexer *lx, size_t i)
{
    size_t j = i + 1;
    if (is_ident_start(at(lx, j)))
        while (is_tag_cont(at(lx, j)))
            j++;
    return at(lx, j) == '$' ? j + 1 - i : 0;
}

/* A '$' at lx->pos: a parameter ($1), a dollar-quoted string, or a lone '$'. */
static void scan_dollar(struct lexer *lx, struct token *t)
{
    size_t open = lx->pos;
    if (is_digit(at(lx, open + 1))) {
        t->kind = TOK_PARAM;
        for (lx->pos++; is_digit(at(lx, lx->pos)); lx->pos++)
            ;
        return;
    }
    size_t dlen = dollar_delimiter(lx, open);
    if (dlen == 0) {
        t->kind = TOK_OTHER;
        lx->pos++;
        return;
    }
    t->kind = TOK_STRING;
    t->start = open + dlen;
    const uint8_t *close = memmem(lx->s + t->start, lx->len - t->start, lx->s + open, dlen);
    size_t end = close ? (size_t)(close - lx->s) : lx->len;
    t->len = end - t->start;
    lx->pos = close ? end + dlen : lx->len;
}

/*
 * A token that starts with a letter: a word, or one of the prefixed
 * strings E'...' (backslash escapes), B'...', X'...', N'...', U&'...'
 * and the quoted identifier U&"...".
 */
static void scan_word(struct lexer *lx, struct token *t)
{
    uint8_t c = lx->s[lx->pos], next = at(lx, lx->pos + 1);
    if (next == '\'' && strchr("eEbBxXnN", c) != NULL) {
        lx->pos++;
        scan_quoted(lx, TOK_STRING, c == 'e' || c == 'E', t);
        return;
    }
    if ((c == 'u' || c == 'U') && next == '&' &&
        (at(lx, lx->pos + 2) == '\'' || at(lx, lx->pos + 2) == '"')) {
        lx->pos += 2;
        scan_quoted(lx, lx->s[lx->pos] == '"' ? TOK_QUOTED : TOK_STRING, false, t);
        return;
    }
    t->kind = TOK_WORD;
    t->start = lx->pos;
    while (is_ident_cont(at(lx, lx->pos)))
        lx->pos++;
    t->len = lx->pos - t->start;
}

/* A number, with any letters run into it (1e5, or 1abc which the server refuses). */
static void scan_number(struct lexer *lx, struct token *t)
{
    t->kind = TOK_OTHER;
    while (is_digit(at(lx, lx->pos)) || at(lx, lx->pos) == '.')
        lx->pos++;
    if (is_ident_start(at(lx, lx->pos))) /* a '$' right after the digits is not in it */
        while (is_ident_cont(at(lx, lx->pos)))
            lx->pos++;
}

/* One byte that is a token of its own. */
static enum tok_kind punctuation(uint8_t c)
{
    switch (c) {
    case '(':
        return TOK_OPEN;
    case ')':
        return TOK_CLOSE;
    case ',':
        return TOK_COMMA;
    case '.':
        return TOK_DOT;
    case ';':
        return TOK_SEMI;
    default:
        return TOK_OTHER;
    }
}

static void next_token(struct lexer *lx, struct token *t)
{
    skip_blanks(lx);
    t->start = lx->pos;
    t->len = 0;
    if (lx->pos >= lx->len) {
        t->kind = TOK_END;
        return;
    }
    uint8_t c = lx->s[lx->pos];
    if (c == '\'' || c == '"') {
        scan_quoted(lx, c == '"' ? TOK_QUOTED : TOK_STRING, false, t);
    } else if (c == '$') {
        scan_dollar(lx, t);
    } else if (is_ident_start(c)) {
        scan_word(lx, t);
    } else if (is_digit(c)) {
        scan_number(lx, t);
    } else {
        t->kind = punctuation(c);
        lx->pos++;
    }
}

/* The kind of the token after the lexer's position, the lexer left where it is. */
static enum tok_kind peek_kind(const struct lexer *lx)
{
    struct lexer copy = *lx;
    struct token t;
    next_token(&copy, &t);
    return t.kind;
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
};

static const struct {
    const char *word; /* lower case */
    enum kw kw;
} keywords[] = {
    {"set", KW_SET},
    {"local", KW_LOCAL},
    {"transaction", KW_TRANSACTION},
    {"constraints", KW_CONSTRAINTS},
    {"set_config", KW_SET_CONFIG},
    {"true", KW_TRUE},
    {"temp", KW_TEMP},
    {"temporary", KW_TEMP},
    {"create", KW_CREATE},
    {"replace", KW_REPLACE},
    {"global", KW_GLOBAL},
    {"into", KW_INTO},
    {"listen", KW_LISTEN},
    {"prepare", KW_PREPARE},
    {"declare", KW_DECLARE},
    {"with", KW_WITH},
    {"hold", KW_HOLD},
    {"load", KW_LOAD},
    {"pg_temp", KW_PG_TEMP},
    {"pg_advisory_lock", KW_ADVISORY},
    {"pg_advisory_lock_shared", KW_ADVISORY},
    {"pg_try_advisory_lock", KW_ADVISORY},
    {"pg_try_advisory_lock_shared", KW_ADVISORY},
};

/* The n bytes at w equal lower, ASCII letters compared without case. */
static bool equals_folded(const uint8_t *w, size_t n, const char *lower)
{
    size_t i = 0;
    for (; i < n && lower[i] != '\0'; i++) {
        uint8_t c = w[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (c != (uint8_t)lower[i])
            return false;
    }
    return i == n && lower[i] == '\0';
}

/* pg_temp_3 and the like: another name of the session's temporary schema. */
static bool is_numbered_pg_temp(const uint8_t *w, size_t n)
{
    if (n < 9 || !equals_folded(w, 8, "pg_temp_"))
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
static enum kw keyword_of(const struct lexer *lx, const struct token *t)
{
    const uint8_t *w = lx->s + t->start;
    if (t->kind != TOK_WORD && t->kind != TOK_QUOTED)
        return KW_NONE;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        const char *k = keywords[i].word;
        if (t->len == 0 || (w[0] | 0x20) != k[0])
            continue; /* the quick test: most words end here */
        if (t->kind == TOK_WORD && equals_folded(w, t->len, k))
            return keywords[i].kw;
        if (t->kind == TOK_QUOTED && t->len == strlen(k) && memcmp(w, k, t->len) == 0 &&
            (keywords[i].kw == KW_SET_CONFIG || keywords[i].kw == KW_ADVISORY))
            return keywords[i].kw;
    }
    return t->kind == TOK_WORD && is_numbered_pg_temp(w, t->len) ? KW_PG_TEMP : KW_NONE;
}

/* ---- the scan ---- */

/* set_config calls followed at once, nested; a set_config in the innermost pins. */
#define SET_CONFIG_CALLS 8

/* An open call of set_config. */
struct set_config_call {
    unsigned depth;      /* the parenthesis depth inside it */
    unsigned arg_tokens; /* tokens of its argument so far, at that depth */
    bool arg_true;       /* that argument is one token that reads as true */
};

struct pin_scan {
    struct lexer lx;
    unsigned depth;       /* parentheses open in the statement */
    unsigned stmt_tokens; /* tokens of the statement so far, counted up to 2 */
    enum kw first;        /* the statement's first token, if a keyword */
    enum kw prev;         /* the token before this one, if a keyword */
    struct set_config_call calls[SET_CONFIG_CALLS];
    unsigned ncalls;
    const char *deferred; /* the first reason found inside an open call */
};

/* A reason found now: returned, or kept while a set_config call before it is open. */
static const char *found(struct pin_scan *sc, const char *why)
{
    if (why == NULL || sc->ncalls == 0)
        return why;
    if (sc->deferred == NULL)
        sc->deferred = why;
    return NULL;
}

/* The keyword true, or a string 't', 'true' or 'on' (what boolin reads as true). */
static bool reads_true(const struct pin_scan *sc, const struct token *t, enum kw kw)
{
    const uint8_t *body = sc->lx.s + t->start;
    if (t->kind == TOK_WORD)
        return kw == KW_TRUE;
    return t->kind == TOK_STRING &&
           (equals_folded(body, t->len, "t") || equals_folded(body, t->len, "true") ||
            equals_folded(body, t->len, "on"));
}

/*
 * The innermost open set_config call sees a token at its own depth: the
 * token is part of its current argument, begins the next one (','), or
 * closes the call (')'), which then pins unless that last argument read
 * as true.  When the last open call closes, a reason kept meanwhile is
 * the answer.
 */
static const char *follow_call(struct pin_scan *sc, const struct token *t, enum kw kw)
{
    struct set_config_call *call = &sc->calls[sc->ncalls - 1];
    if (sc->depth != call->depth)
        return NULL;
    if (t->kind == TOK_COMMA) {
        call->arg_tokens = 0;
        call->arg_true = false;
    } else if (t->kind == TOK_CLOSE) {
        if (call->arg_tokens != 1 || !call->arg_true)
            return WHY_SET_CONFIG;
        sc->ncalls--;
        return sc->ncalls == 0 ? sc->deferred : NULL;
    } else {
        call->arg_tokens++;
        call->arg_true = reads_true(sc, t, kw);
    }
    return NULL;
}

/* The word set_config: a call of it is followed to its end; anything else pins. */
static const char *open_call(struct pin_scan *sc)
{
    if (peek_kind(&sc->lx) != TOK_OPEN || sc->ncalls == SET_CONFIG_CALLS)
        return WHY_SET_CONFIG;
    sc->calls[sc->ncalls++] = (struct set_config_call){.depth = sc->depth + 1};
    return NULL;
}

/* What the first two tokens of a statement say. */
static const char *statement_start(struct pin_scan *sc, const struct token *t, enum kw kw)
{
    if (sc->stmt_tokens == 0) {
        sc->first = t->kind == TOK_WORD ? kw : KW_NONE;
        if (sc->first == KW_LISTEN)
            return WHY_LISTEN;
        if (sc->first == KW_LOAD)
            return WHY_LOAD;
        return NULL;
    }
    if (sc->stmt_tokens != 1)
        return NULL;
    bool is_word = t->kind == TOK_WORD;
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
        if ((sc->first == KW_CREATE || prev == KW_INTO) && peek_kind(&sc->lx) == TOK_DOT)
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
    return why;
}

/* One token: its reason, if one is known now. */
static const char *scan_token(struct pin_scan *sc, const struct token *t)
{
    if (t->kind == TOK_SEMI || t->kind == TOK_END)
        return statement_end(sc);
    enum kw kw = keyword_of(&sc->lx, t);
    const char *why = sc->ncalls > 0 ? follow_call(sc, t, kw) : NULL;
    if (why == NULL)
        why = found(sc, statement_start(sc, t, kw));
    if (why == NULL && kw != KW_NONE)
        why = found(sc, word_rules(sc, kw));
    if (t->kind == TOK_OPEN && sc->depth < ~0u)
        sc->depth++;
    else if (t->kind == TOK_CLOSE && sc->depth > 0)
        sc->depth--;
    sc->prev = kw;
    if (sc->stmt_tokens < 2)
        sc->stmt_tokens++;
    return why;
}

const char *txn_pin_scan(const uint8_t *sql, size_t len)
{
    struct pin_scan sc = {.lx = {.s = sql, .len = len}};
    struct token t;
    do {
        next_token(&sc.lx, &t);
        const char *why = scan_token(&sc, &t);
        if (why != NULL)
            return why;
    } while (t.kind != TOK_END);
    return NULL;
}
