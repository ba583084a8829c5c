/*
 * file_id.c — a file's identity, for sharing what was read from it.
 */
#include "routing/file_id.h"

#include <stdint.h>

/* Nanoseconds between a change and the read it must precede: well above any file system's tick. */
#define STABLE_AFTER_NS INT64_C(1000000000)

/* A timestamp in nanoseconds, for comparing with STABLE_AFTER_NS. */
static int64_t ns_of(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Are two timestamps equal to the nanosecond? */
static bool same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* now: the clock read before st was taken, so that a change after it shows as later. */
static void fill(struct file_id *id, const struct stat *st, const struct timespec *now)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
    id->ctime = st->st_ctim;
    int64_t last =
        ns_of(&st->st_ctim) > ns_of(&st->st_mtim) ? ns_of(&st->st_ctim) : ns_of(&st->st_mtim);
    id->settled = ns_of(now) - last >= STABLE_AFTER_NS;
}

bool file_id_of_fd(int fd, struct file_id *id)
{
    struct timespec now;
    struct stat st;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || fstat(fd, &st) != 0)
        return false;
    fill(id, &st, &now);
    return true;
}

/* path's identity, the clock read first (fill); false when it cannot be stat'ed. */
bool file_id_of_path(const char *path, struct file_id *id)
{
    struct timespec now;
    struct stat st;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || stat(path, &st) != 0)
        return false;
    fill(id, &st, &now);
    return true;
}

bool file_id_unchanged(const struct file_id *id, const char *path)
{
    struct stat st;
    if (!id->settled || stat(path, &st) != 0)
        return false;
    return st.st_dev == id->dev && st.st_ino == id->ino && st.st_size == id->size &&
           same_time(&st.st_mtim, &id->mtime) && same_time(&st.st_ctim, &id->ctime);
}
