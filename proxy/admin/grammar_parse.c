/*
 * grammar_parse.c — the admin console's command language (grammar.h): the parse
 * of a command's text.
 *
 * The lexer (grammar_lex.c) turns the text into tokens; a command is the longest
 * row of the table (grammar_table.c) whose keywords the first words match,
 * and its row says how its arguments are read (grammar_args.c).  Every
 * fault names its place in the text.
 */
#include "proxy/admin/grammar.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "protocol/utf8.h"
#include "proxy/admin/grammar_int.h"

/*
 * A word SQL begins with that, with the word after it, is a two-word
 * command of the table (grammar_table.c): MOVE CLIENT(S), MOVE DATABASE,
 * MOVE CITY are the console's, not SQL's MOVE of a cursor.  A new MOVE
 * row needs nothing here.
 */
static bool sql_word_starts_command(const struct parser *ps)
{
    struct token next;
    if (!gram_peek(ps, &next) || next.type != TOK_WORD)
        return false;
    const struct admin_command_def *def = gram_match_command(&ps->tok, &next);
    return def != NULL && def->words[1] != NULL;
}

/* 42601 naming what was typed, with the closest command as a hint. */
static int unknown_command(struct parser *ps, const struct token *w0, const struct token *w1)
{
    char typed[160], hint[256];
    /* SHOW takes a second keyword; the other commands are one word. */
    if (w1->type == TOK_WORD && strcasecmp(w0->text, "SHOW") == 0)
        snprintf(typed, sizeof(typed), "%.63s %.63s", w0->text, w1->text);
    else
        snprintf(typed, sizeof(typed), "%.63s", w0->text);
    gram_closest_hint(typed, hint, sizeof(hint));
    return gram_fail(&ps->lx, w0->start, "42601", hint, "unrecognized admin command \"%s\"", typed);
}

/* After the command: optional ';'s, then nothing but blanks. */
static int take_end(struct parser *ps)
{
    bool semi = false;
    while (ps->tok.type == TOK_SEMI) {
        semi = true;
        if (gram_advance(ps) < 0)
            return ADMIN_PARSE_ERROR;
    }
    if (ps->tok.type == TOK_END)
        return ADMIN_PARSE_OK;
    if (semi)
        return gram_fail(&ps->lx, ps->tok.start, "0A000", "Send one command per query.",
                         "the admin console runs one command at a time");
    return gram_syntax_error(&ps->lx, &ps->tok, NULL);
}

/*
 * One command: its words, then its arguments by the command table, then the
 * end; SQL gets 0A000 (ADMIN_PARSE_SQL) so it is told apart.
 */
static int parse_command(struct parser *ps)
{
    struct token w0 = ps->tok, w1;
    if (w0.type != TOK_WORD)
        return gram_syntax_error(&ps->lx, &w0, "Type SHOW HELP for the list of commands.");
    if (gram_is_sql_word(w0.text) && !sql_word_starts_command(ps)) {
        gram_fail(&ps->lx, w0.start, "0A000", "Type SHOW HELP for the list of commands.",
                  "the pgnear admin console does not run SQL");
        return ADMIN_PARSE_SQL;
    }
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    w1 = ps->tok;
    const struct admin_command_def *def = gram_match_command(&w0, &w1);
    if (def == NULL)
        return unknown_command(ps, &w0, &w1);
    ps->out->kind = def->kind;
    if (def->words[1] != NULL && gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (gram_take_args(ps, def->args) < 0)
        return ADMIN_PARSE_ERROR;
    return take_end(ps);
}

/*
 * Bounds and encoding first, so the lexer reads valid UTF-8 of bounded length;
 * blanks and semicolons only are ADMIN_PARSE_EMPTY.
 */
int admin_parse(const char *text, size_t len, struct admin_cmd *out, struct pg_error *err)
{
    struct parser *ps = &(struct parser){.lx = {text, len, 0, err}, .out = out};
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (len > ADMIN_TEXT_MAX)
        return gram_fail(&ps->lx, 0, "54000", "Admin commands are short; this is not one.",
                         "admin command text is too long (%zu bytes, at most %d)", len,
                         ADMIN_TEXT_MAX);
    size_t bad = utf8_invalid_at((const uint8_t *)text, len);
    if (bad < len) {
        char bytes[24];
        size_t n = len - bad < 4 ? len - bad : 4, used = 0;
        for (size_t i = 0; i < n; i++)
            used += (size_t)snprintf(bytes + used, sizeof(bytes) - used, "%s0x%02x", i ? " " : "",
                                     (unsigned char)text[bad + i]);
        return gram_fail(&ps->lx, bad, "22021", NULL,
                         "invalid byte sequence for encoding \"UTF8\": %s", bytes);
    }
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (ps->tok.type == TOK_END || ps->tok.type == TOK_SEMI) {
        /* Blanks, comments and semicolons only. */
        while (ps->tok.type == TOK_SEMI)
            if (gram_advance(ps) < 0)
                return ADMIN_PARSE_ERROR;
        if (ps->tok.type == TOK_END)
            return ADMIN_PARSE_EMPTY;
    }
    return parse_command(ps);
}
