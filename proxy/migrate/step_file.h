/*
 * step_file.h — the steps of a migrations directory, read and checked.
 *
 * A step is a file NNNN_name.sql (the version: the leading decimal number,
 * 1 to 18 digits, not 0; the name: letters, digits, '_' and '-') and
 * optionally its down script NNNN_name.down.sql.  Comment lines at the top
 * of a file, before its first other line, may hold directives:
 *
 *     -- pgnear: no-transaction
 *     -- pgnear: pause
 *     -- pgnear: lock_timeout = 5s
 *     -- pgnear: statement_timeout = 10min
 *
 * Any other "-- pgnear:" comment (an unknown directive, one given twice,
 * or one below the top) is an error, never ignored.
 *
 * The text of a file is normalised before anything else: UTF-8 byte order
 * marks at its start are dropped, CR LF becomes LF, blanks (space, tab,
 * CR, VT, FF) at the end of every line are removed, and the file ends with
 * exactly one LF (none if it is empty).  The normalised text is what
 * is split into statements, what would run, and what the SHA-256 checksum
 * is taken of: a change of line endings or trailing blanks by an editor
 * does not change it, any other edit does.  The number of lines, and so
 * the line numbers of messages, stay those of the file.
 */
#ifndef PGNEAR_PROXY_MIGRATE_STEP_FILE_H
#define PGNEAR_PROXY_MIGRATE_STEP_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/migrate/sql_split.h"

#define MIGRATE_NAME_MAX        63 /* a step's name, as PostgreSQL's NAMEDATALEN - 1 */
#define MIGRATE_VERSION_DIGITS  18 /* at most, so that a version fits an int64 */
#define MIGRATE_MAX_FILE_BYTES  SQL_SPLIT_MAX_BYTES
#define MIGRATE_MAX_STEP_FILES  10000                /* .sql files in the directory */
#define MIGRATE_MAX_DIR_ENTRIES 100000               /* entries of any kind read from it */
#define MIGRATE_MAX_TOTAL_BYTES (256u * 1024 * 1024) /* all step files together */
#define MIGRATE_CHECKSUM_HEX    64                   /* SHA-256, lower-case hex */

/* A file name's meaning. */
enum migrate_name_kind {
    MIGRATE_NAME_OTHER, /* not a .sql file, or hidden: not a step, ignored */
    MIGRATE_NAME_UP,
    MIGRATE_NAME_DOWN,
    MIGRATE_NAME_BAD, /* a .sql file that is no step's: an error */
};

struct migrate_name {
    enum migrate_name_kind kind;
    int64_t version;
    char name[MIGRATE_NAME_MAX + 1];
};

/* What the header directives of a script say. */
struct migrate_directives {
    bool no_transaction;
    bool pause;
    int64_t lock_timeout_ms;      /* -1: not set */
    int64_t statement_timeout_ms; /* -1: not set */
};

/* One file: a step's up or down script. */
struct migrate_script {
    char *file; /* its path, for messages */
    char *text; /* normalised, NUL-terminated */
    size_t len; /* of text */
    struct sql_script sql;
    struct migrate_directives directives;
    char checksum[MIGRATE_CHECKSUM_HEX + 1];
};

struct migrate_step {
    int64_t version;
    char name[MIGRATE_NAME_MAX + 1];
    struct migrate_script up;
    bool has_down;
    struct migrate_script down;
};

struct migrate_steps {
    struct migrate_step *steps; /* by version, ascending */
    size_t count;
};

/* What a directory entry name is; only name[0..len) is read. */
void migrate_name_parse(const char *name, size_t len, struct migrate_name *out);

/*
 * Normalises text[0..len) (see above) into a new NUL-terminated buffer:
 * *out and *out_len, NULL and -1 when out of memory.
 */
int migrate_text_normalise(const char *text, size_t len, char **out, size_t *out_len);

/*
 * The directives of a normalised text; 0, or -1 with err holding
 * "file:line: why".
 */
int migrate_directives_parse(const char *text, size_t len, const char *file,
                             struct migrate_directives *out, char *err, size_t errcap);

/*
 * A whole file from its raw bytes: normalised, its directives read, split
 * into statements (at least one), checksummed.  file names it in
 * messages.  0, or -1 with err set; *out is freed with
 * migrate_script_free either way.
 */
int migrate_script_parse(const char *raw, size_t len, const char *file, struct migrate_script *out,
                         char *err, size_t errcap);
void migrate_script_free(struct migrate_script *script);

/*
 * Reads every step of dir: 0 with *out sorted by version, or -1 with err
 * saying what is wrong, naming the file (and line).  *out is freed with
 * migrate_steps_free either way.
 */
int migrate_steps_load(const char *dir, struct migrate_steps *out, char *err, size_t errcap);
void migrate_steps_free(struct migrate_steps *steps);

#endif
