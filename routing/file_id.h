/*
 * file_id.h — which file a table was read from, and whether it is still
 * that file, unchanged: what lets a reload share a table it would build
 * again from the same bytes (cities_file, geoip_db).
 *
 * A file is the same when its device, inode, size, modification and
 * change times are.  The change time cannot be set by hand: a file
 * rewritten in place, or copied with its modification time kept, has a
 * new one.  Times have the file system's granularity (a clock tick or
 * coarser), so a change within the same tick as the read leaves them as
 * they were: a file read within STABLE_AFTER of its last change is never
 * taken as unchanged, and the next load reads it again.
 */
#ifndef PGNEAR_ROUTING_FILE_ID_H
#define PGNEAR_ROUTING_FILE_ID_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    bool settled; /* last changed at least a second before it was read */
};

/*
 * The identity of the open file fd (fstat), or of the file path names now
 * (stat, following symbolic links).  Call it before reading the contents:
 * a change made after it then shows.  False with errno on failure.
 */
bool file_id_of_fd(int fd, struct file_id *id);
bool file_id_of_path(const char *path, struct file_id *id);

/* Whether path is still the file id was taken of, settled then and unchanged since. */
bool file_id_unchanged(const struct file_id *id, const char *path);

#endif
