/*
 * fuzz_migration_file.c
 *    libFuzzer target for proxy/migrate/: a migration step file's parsers
 *    on any bytes, taken as a file name and as a file's contents.
 *    Besides not crashing or leaking:
 *    - sql_split: the statements lie in order inside the text, apart, each
 *      starting and ending with a token and on the line it says; a
 *      statement split again is that one statement; -- comments reported
 *      start with "--" and hold no newline; an error names a line that
 *      exists; the same text always splits the same way;
 *    - normalisation is idempotent and leaves no trailing blanks;
 *    - the header directives parse, or fail with "file:line: why";
 *    - a whole file that parses has statements and a checksum of 64
 *      lower-case hex digits, and its normalised text parses to the same
 *      statements and checksum.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/migrate/sql_split.h"
#include "proxy/migrate/step_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static unsigned lines_before(const char *text, size_t offset)
{
    unsigned line = 1;
    for (size_t i = 0; i < offset; i++)
        line += text[i] == '\n';
    return line;
}

struct comments {
    const char *text;
    size_t last_end;
};

static int check_comment(void *ctx, size_t offset, size_t length, unsigned line)
{
    struct comments *c = ctx;
    check(offset >= c->last_end && length >= 2);
    check(memcmp(c->text + offset, "--", 2) == 0);
    check(memchr(c->text + offset, '\n', length) == NULL);
    check(line == lines_before(c->text, offset));
    c->last_end = offset + length;
    return 0;
}

/* One statement, split alone, is itself. */
static void check_alone(const char *stmt, size_t length)
{
    struct sql_script one;
    struct sql_split_error err;
    check(sql_split(stmt, length, &one, &err, NULL, NULL) == SQL_SPLIT_OK);
    check(one.count == 1 && one.stmts[0].offset == 0 && one.stmts[0].length == length);
    sql_script_free(&one);
}

static void check_statements(const char *text, size_t size, const struct sql_script *s)
{
    size_t end = 0;
    for (size_t i = 0; i < s->count; i++) {
        const struct sql_statement *st = &s->stmts[i];
        check(st->length > 0 && st->offset <= size && st->length <= size - st->offset);
        check(i == 0 ? st->offset >= end : st->offset > end);
        check(!is_space(text[st->offset]) && !is_space(text[st->offset + st->length - 1]));
        check(st->line == lines_before(text, st->offset));
        check_alone(text + st->offset, st->length);
        end = st->offset + st->length;
    }
}

static void fuzz_split(const char *text, size_t size)
{
    struct sql_script s, again;
    struct sql_split_error err, err2;
    struct comments c = {text, 0};
    int rc = sql_split(text, size, &s, &err, check_comment, &c);
    check(rc <= 0 && rc >= SQL_SPLIT_OUT_OF_MEMORY);
    if (rc == SQL_SPLIT_OK) {
        check_statements(text, size, &s);
    } else {
        check(err.message[0] != '\0' && memchr(err.message, '\0', sizeof(err.message)) != NULL);
        check(err.line >= 1 && err.line <= lines_before(text, size));
    }
    check(sql_split(text, size, &again, &err2, NULL, NULL) == rc);
    check(again.count == s.count);
    for (size_t i = 0; i < s.count; i++) /* field by field: the padding is not set */
        check(again.stmts[i].offset == s.stmts[i].offset &&
              again.stmts[i].length == s.stmts[i].length && again.stmts[i].line == s.stmts[i].line);
    sql_script_free(&s);
    sql_script_free(&again);
}

static void fuzz_normalise(const char *text, size_t size)
{
    char *out, *again;
    size_t len, again_len;
    check(migrate_text_normalise(text, size, &out, &len) == 0);
    check(len <= size + 1 && out[len] == '\0');
    check(len == 0 || (out[len - 1] == '\n' && (len == 1 || !is_space(out[len - 2]))));
    check(migrate_text_normalise(out, len, &again, &again_len) == 0);
    check(again_len == len && memcmp(again, out, len) == 0);
    free(again);
    free(out);
}

static void fuzz_directives(const char *text, size_t size)
{
    struct migrate_directives d;
    char err[256] = "";
    if (migrate_directives_parse(text, size, "f.sql", &d, err, sizeof(err)) != 0) {
        check(strncmp(err, "f.sql:", 6) == 0);
        return;
    }
    check(d.lock_timeout_ms >= -1 && d.lock_timeout_ms <= INT32_MAX);
    check(d.statement_timeout_ms >= -1 && d.statement_timeout_ms <= INT32_MAX);
}

static void fuzz_script(const char *text, size_t size)
{
    struct migrate_script s, again;
    char err[256] = "";
    int rc = migrate_script_parse(text, size, "f.sql", &s, err, sizeof(err));
    if (rc != 0) {
        check(strncmp(err, "f.sql", 5) == 0);
        migrate_script_free(&s);
        return;
    }
    check(s.sql.count > 0 && strlen(s.checksum) == MIGRATE_CHECKSUM_HEX);
    for (size_t i = 0; i < MIGRATE_CHECKSUM_HEX; i++)
        check(strchr("0123456789abcdef", s.checksum[i]) != NULL);
    check(migrate_script_parse(s.text, s.len, "f.sql", &again, err, sizeof(err)) == 0);
    check(strcmp(again.checksum, s.checksum) == 0 && again.sql.count == s.sql.count);
    const struct migrate_directives *a = &again.directives, *b = &s.directives;
    check(a->no_transaction == b->no_transaction && a->pause == b->pause &&
          a->lock_timeout_ms == b->lock_timeout_ms &&
          a->statement_timeout_ms == b->statement_timeout_ms);
    migrate_script_free(&again);
    migrate_script_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct migrate_name name;
    migrate_name_parse(text, size, &name);
    check(name.kind >= MIGRATE_NAME_OTHER && name.kind <= MIGRATE_NAME_BAD);
    if (name.kind == MIGRATE_NAME_UP || name.kind == MIGRATE_NAME_DOWN)
        check(name.version > 0 && name.name[0] != '\0');
    fuzz_split(text, size);
    fuzz_normalise(text, size);
    fuzz_directives(text, size);
    fuzz_script(text, size);
    return 0;
}
