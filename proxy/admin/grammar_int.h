/*
 * grammar_int.h — what the parts of the admin console's grammar share
 * (grammar.h): the tokens, the parser, and the helpers each part uses.
 * grammar_lex.c lexes, grammar_table.c holds the commands' words and help,
 * grammar_args.c reads each command's arguments, and grammar_parse.c drives a
 * parse over the three; none of the three calls it.
 */
#ifndef PGNEAR_PROXY_ADMIN_GRAMMAR_INT_H
#define PGNEAR_PROXY_ADMIN_GRAMMAR_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/admin/grammar.h"

/* How a command's arguments are read. */
enum args {
    ARGS_NONE,
    ARGS_OPT_REGION, /* [region] */
    ARGS_REGION,     /* region */
    ARGS_ROUTE,      /* FOR CITY|IP|LOCATION|REGION value */
    ARGS_CLIENT,     /* client_id */
    ARGS_SET,        /* setting = value */
    ARGS_PLAN,       /* [TO version] [IN REGION region] */
    ARGS_UP,         /* [TO version] [IN REGION region] [FORCE] */
    ARGS_NEXT,       /* [IN REGION region] [FORCE] */
    ARGS_RESOLVE,    /* version AS applied|failed [IN REGION region] */
    ARGS_RETRY,      /* version [IN REGION region] [FORCE] */
    ARGS_DOWN,       /* TO version [IN REGION region] [FORCE] */
    ARGS_MOVE_ONE,   /* client_id TO REGION region */
    ARGS_MOVE_MANY,  /* FROM REGION region [TO REGION region] | HOME */
    ARGS_MOVE_DB,    /* database TO REGION region | CUTOVER | REVERT | FINISH | ABORT */
    ARGS_MOVE_CITY,  /* 'city' OF DATABASE database, then as ARGS_MOVE_DB */
};

enum tok_type { TOK_END, TOK_WORD, TOK_STRING, TOK_NAME, TOK_EQUALS, TOK_SEMI, TOK_OTHER };

struct token {
    enum tok_type type;
    size_t start, len; /* where it is in the text */
    size_t text_len;
    char text[ADMIN_VALUE_MAX + 1]; /* last: lex_next clears what comes before */
};

struct lexer {
    const char *p;
    size_t len, pos;
    struct pg_error *err;
};

struct parser {
    struct lexer lx;
    struct token tok; /* the current token */
    struct admin_cmd *out;
};

/* grammar_lex.c: the lexer and the words every command reads alike. */
int gram_fail(struct lexer *lx, size_t pos, const char *sqlstate, const char *hint, const char *fmt,
              ...) __attribute__((format(printf, 5, 6)));
/* "syntax error at or near ..." for the token, as PostgreSQL words it. */
int gram_syntax_error(struct lexer *lx, const struct token *t, const char *hint);
int gram_advance(struct parser *ps);
/* The token after the current one, read ahead without moving on; false at a fault. */
bool gram_peek(const struct parser *ps, struct token *next);
/* The keyword w here; false (nothing read) when the token is something else. */
bool gram_at_keyword(const struct parser *ps, const char *w);
/* A region or setting name: a bare word or a "quoted name". */
int gram_take_name(struct parser *ps, char *dst, const char *what);
/* REGION name, after FROM or TO: into dst. */
int gram_take_keyword_region(struct parser *ps, char *dst);

/* grammar_table.c: the commands. */
/* The table row whose keywords the words from here match, longest first; NULL when none. */
const struct admin_command_def *gram_match_command(const struct token *w0, const struct token *w1);
/* The first word of an SQL statement (psql and drivers send them). */
bool gram_is_sql_word(const char *w);
/* 'Did you mean "SHOW CLIENTS"?' for what the user typed (one or two words), or the list hint. */
void gram_closest_hint(const char *typed, char *hint, size_t cap);

/* grammar_args.c: a command's arguments, read as its row's args (enum args) say. */
int gram_take_args(struct parser *ps, int args);

#endif
