/*
 * step_dir.c — migrate_steps_load: every step of a migrations directory.
 *
 * The names are listed first and checked all together (sorted, so that
 * the error reported does not depend on the order readdir returns them);
 * only then are the files read, each through migrate_script_parse.
 * Files are opened by path and must be regular files once open, so a
 * symbolic link to a regular file (as in a Kubernetes ConfigMap volume) is
 * read, and a FIFO neither blocks nor passes.
 */
#include "proxy/migrate/step_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct entry {
    char *path;
    struct migrate_name name;
};

struct listing {
    const char *dir;
    struct entry *entries;
    size_t count;
    size_t cap;
};

/* dir/name, with one slash; malloc'd, NULL when out of memory. */
static char *join_path(const char *dir, const char *name)
{
    size_t dlen = strlen(dir);
    bool slash = dlen > 0 && dir[dlen - 1] != '/';
    char *path = malloc(dlen + slash + strlen(name) + 1);
    if (path != NULL)
        sprintf(path, "%s%s%s", dir, slash ? "/" : "", name);
    return path;
}

/*
 * Keeps a .sql file and its parsed name; a directory with more than
 * MIGRATE_MAX_STEP_FILES is refused, not cut.
 */
static int add_entry(struct listing *ls, const char *file, const struct migrate_name *name,
                     char *err, size_t errcap)
{
    if (ls->count == MIGRATE_MAX_STEP_FILES) {
        snprintf(err, errcap, "%s: more than %d .sql files", ls->dir, MIGRATE_MAX_STEP_FILES);
        return -1;
    }
    if (ls->count == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 32;
        struct entry *grown = realloc(ls->entries, cap * sizeof(*grown));
        if (grown == NULL)
            goto oom;
        ls->entries = grown;
        ls->cap = cap;
    }
    struct entry *e = &ls->entries[ls->count];
    e->path = join_path(ls->dir, file);
    if (e->path == NULL)
        goto oom;
    e->name = *name;
    ls->count++;
    return 0;
oom:
    snprintf(err, errcap, "%s: out of memory", ls->dir);
    return -1;
}

/* Frees the paths and the listing's array. */
static void free_listing(struct listing *ls)
{
    for (size_t i = 0; i < ls->count; i++)
        free(ls->entries[i].path);
    free(ls->entries);
}

/* Every .sql entry of the directory into ls, bounded. */
static int list_dir(struct listing *ls, char *err, size_t errcap)
{
    DIR *d = opendir(ls->dir);
    if (d == NULL) {
        snprintf(err, errcap, "%s: cannot open the migrations directory: %s", ls->dir,
                 strerror(errno));
        return -1;
    }
    size_t seen = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                snprintf(err, errcap, "%s: cannot read the directory: %s", ls->dir,
                         strerror(errno));
                rc = -1;
            }
            break;
        }
        if (++seen > MIGRATE_MAX_DIR_ENTRIES) {
            snprintf(err, errcap, "%s: more than %d directory entries", ls->dir,
                     MIGRATE_MAX_DIR_ENTRIES);
            rc = -1;
            break;
        }
        struct migrate_name name;
        migrate_name_parse(de->d_name, strlen(de->d_name), &name);
        if (name.kind != MIGRATE_NAME_OTHER &&
            (rc = add_entry(ls, de->d_name, &name, err, errcap)) != 0)
            break;
    }
    closedir(d);
    return rc;
}

/* qsort's order: by path, so the bad name reported first is the same on every system. */
static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* By version, the up file before the down file, then by path. */
static int by_version(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->name.version != y->name.version)
        return x->name.version < y->name.version ? -1 : 1;
    if (x->name.kind != y->name.kind)
        return x->name.kind == MIGRATE_NAME_UP ? -1 : 1;
    return strcmp(x->path, y->path);
}

/*
 * Sorts the listing, then refuses the first file named like a step but not one,
 * saying what a name must be.
 */
static int check_names(struct listing *ls, char *err, size_t errcap)
{
    if (ls->count > 1) /* qsort may not be given NULL, even for nothing */
        qsort(ls->entries, ls->count, sizeof(*ls->entries), by_path);
    for (size_t i = 0; i < ls->count; i++) {
        if (ls->entries[i].name.kind != MIGRATE_NAME_BAD)
            continue;
        snprintf(err, errcap,
                 "%s: not a step file name: expected NNNN_name.sql or NNNN_name.down.sql "
                 "(NNNN: a version of 1 to %d digits, not 0; name: letters, digits, _ and -, at "
                 "most %d)",
                 ls->entries[i].path, MIGRATE_VERSION_DIGITS, MIGRATE_NAME_MAX);
        return -1;
    }
    return 0;
}

/* A down script goes with the step just before it in the sorted list, of the same version. */
static int pair_down(struct migrate_steps *out, const struct entry *e, const char **down_paths,
                     char *err, size_t errcap)
{
    struct migrate_step *st = out->count > 0 ? &out->steps[out->count - 1] : NULL;
    if (st == NULL || st->version != e->name.version) {
        int stem = (int)(strlen(e->path) - strlen(".down.sql"));
        snprintf(err, errcap, "%s: a down script without its step %.*s.sql", e->path, stem,
                 e->path);
        return -1;
    }
    if (st->has_down) {
        snprintf(err, errcap, "%s and %s: two down scripts for version %" PRId64,
                 down_paths[out->count - 1], e->path, e->name.version);
        return -1;
    }
    if (strcmp(st->name, e->name.name) != 0) {
        snprintf(err, errcap, "%s: the step of version %" PRId64 " is named \"%s\", not \"%s\"",
                 e->path, e->name.version, st->name, e->name.name);
        return -1;
    }
    st->has_down = true;
    down_paths[out->count - 1] = e->path;
    return 0;
}

/*
 * The steps, from the sorted entries: up_paths[i] and down_paths[i] are
 * the files of steps[i] (down_paths[i] NULL without a down script).
 */
static int pair_steps(const struct listing *ls, struct migrate_steps *out, const char **up_paths,
                      const char **down_paths, char *err, size_t errcap)
{
    for (size_t i = 0; i < ls->count; i++) {
        const struct entry *e = &ls->entries[i];
        if (e->name.kind == MIGRATE_NAME_DOWN) {
            if (pair_down(out, e, down_paths, err, errcap) != 0)
                return -1;
            continue;
        }
        if (out->count > 0 && out->steps[out->count - 1].version == e->name.version) {
            snprintf(err, errcap, "%s and %s: two steps with version %" PRId64,
                     up_paths[out->count - 1], e->path, e->name.version);
            return -1;
        }
        struct migrate_step *st = &out->steps[out->count];
        st->version = e->name.version;
        memcpy(st->name, e->name.name, sizeof(st->name));
        up_paths[out->count] = e->path;
        down_paths[out->count] = NULL;
        out->count++;
    }
    return 0;
}

/* Reads until cap or the end; EINTR retried; -1 with errno on a read error. */
static int read_all(int fd, char *buf, size_t cap, size_t *got)
{
    *got = 0;
    while (*got < cap) {
        ssize_t n = read(fd, buf + *got, cap - *got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

/* The file's bytes, within the bounds; *total counts what all files have read. */
static int read_file(const char *path, size_t *total, char **out, size_t *out_len, char *err,
                     size_t errcap)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errcap, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errcap, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size > (off_t)MIGRATE_MAX_FILE_BYTES ||
        *total + (size_t)st.st_size > MIGRATE_MAX_TOTAL_BYTES) {
        snprintf(err, errcap, "%s: too large (%lld bytes; a step file may have %u, all of them %u)",
                 path, (long long)st.st_size, MIGRATE_MAX_FILE_BYTES, MIGRATE_MAX_TOTAL_BYTES);
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    *out = malloc(size + 1);
    if (*out == NULL) {
        snprintf(err, errcap, "%s: out of memory", path);
        goto fail;
    }
    if (read_all(fd, *out, size + 1, out_len) != 0) {
        snprintf(err, errcap, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (*out_len > size) {
        snprintf(err, errcap, "%s: the file grew while it was read", path);
        goto fail;
    }
    close(fd);
    *total += *out_len;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(*out);
    *out = NULL;
    return -1;
}

/* One step file read and parsed into script; err names the file on failure. */
static int load_script(const char *path, size_t *total, struct migrate_script *script, char *err,
                       size_t errcap)
{
    char *raw;
    size_t len;
    if (read_file(path, total, &raw, &len, err, errcap) != 0)
        return -1;
    int rc = migrate_script_parse(raw, len, path, script, err, errcap);
    free(raw);
    return rc;
}

/* Reads every step's up and down files; *total bounds the bytes of all of them together. */
static int load_steps(struct migrate_steps *out, const char **up_paths, const char **down_paths,
                      char *err, size_t errcap)
{
    size_t total = 0;
    for (size_t i = 0; i < out->count; i++) {
        struct migrate_step *st = &out->steps[i];
        if (load_script(up_paths[i], &total, &st->up, err, errcap) != 0)
            return -1;
        if (st->has_down && load_script(down_paths[i], &total, &st->down, err, errcap) != 0)
            return -1;
    }
    return 0;
}

int migrate_steps_load(const char *dir, struct migrate_steps *out, char *err, size_t errcap)
{
    struct listing ls = {.dir = dir};
    const char **up_paths = NULL, **down_paths = NULL;
    int rc = -1;
    out->steps = NULL;
    out->count = 0;
    if (list_dir(&ls, err, errcap) != 0 || check_names(&ls, err, errcap) != 0)
        goto done;
    if (ls.count > 1)
        qsort(ls.entries, ls.count, sizeof(*ls.entries), by_version);
    size_t n = ls.count > 0 ? ls.count : 1;
    out->steps = calloc(n, sizeof(*out->steps));
    up_paths = calloc(n, sizeof(*up_paths));
    down_paths = calloc(n, sizeof(*down_paths));
    if (out->steps == NULL || up_paths == NULL || down_paths == NULL) {
        snprintf(err, errcap, "%s: out of memory", dir);
        goto done;
    }
    if (pair_steps(&ls, out, up_paths, down_paths, err, errcap) == 0 &&
        load_steps(out, up_paths, down_paths, err, errcap) == 0)
        rc = 0;
done:
    free(up_paths);
    free(down_paths);
    free_listing(&ls);
    return rc;
}

/* Frees every step's scripts and the array; steps may be loaded again after. */
void migrate_steps_free(struct migrate_steps *steps)
{
    for (size_t i = 0; i < steps->count; i++) {
        migrate_script_free(&steps->steps[i].up);
        migrate_script_free(&steps->steps[i].down);
    }
    free(steps->steps);
    steps->steps = NULL;
    steps->count = 0;
}
