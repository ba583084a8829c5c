/*
 * placement.h — where a database lives now, as database moves leave it,
 * over what the configuration file says ([database NAME] regions), and
 * which databases are being cut over (their sessions held at their next
 * transaction boundary, as they start too).
 *
 * A move records where the database went in the databases themselves
 * (dbmove/record.h); what pgnear read there is kept here, one entry per
 * database, for every worker: the cutover sets it, the start and the
 * fleet's reading of the records set it again.  A database with no entry
 * lives where the file says.
 */
#ifndef PGNEAR_PROXY_RUNTIME_PLACEMENT_H
#define PGNEAR_PROXY_RUNTIME_PLACEMENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct region_subset;

#define PLACEMENT_MAX      64 /* databases moved, or being cut over, at once */
#define PLACEMENT_NAME_MAX 63

struct placement_entry {
    char database[PLACEMENT_NAME_MAX + 1];
    char region[PLACEMENT_NAME_MAX + 1]; /* where it lives; "": as the file says */
    bool cutover;                        /* a cutover holds its sessions */
    bool local;                          /* this pgnear runs the cutover (not a peer) */
};

struct placement_table {
    pthread_mutex_t lock;
    int count; /* entries in use (atomic read for the common case of none) */
    struct placement_entry items[PLACEMENT_MAX];
    uint64_t local_epoch; /* bumped as a cutover of this pgnear begins or ends */
};

void placement_init(struct placement_table *t);
void placement_destroy(struct placement_table *t);

/*
 * The regions database lives in, into out: the entry's one region (none
 * when cfg no longer has it), or the file's list where that list names the
 * entry's region (a primary's, beside its standbys'), else the file's
 * list; NULL for every region.
 */
const struct region_subset *placement_of(struct placement_table *t, const struct config *cfg,
                                         const char *database, struct region_subset *out);

/* Where database lives now ("": as the file says); -1 when the table is full. */
int placement_set_region(struct placement_table *t, const char *database, const char *region);
/* Into out (cap bytes) the region an entry names; false when none does. */
bool placement_region(struct placement_table *t, const char *database, char *out, size_t cap);

/* A cutover holds (or no longer holds) database's sessions; -1 when the table is full. */
int placement_set_held(struct placement_table *t, const char *database, bool held);
bool placement_held(struct placement_table *t, const char *database);

/* This pgnear runs a cutover of database (its peers only follow); -1 when the table is full. */
int placement_set_local(struct placement_table *t, const char *database, bool local);
bool placement_local(struct placement_table *t, const char *database);
/*
 * Changes whenever a cutover of this pgnear begins or ends: what was read
 * of the records before it may be older than what that cutover set.
 */
uint64_t placement_local_epoch(struct placement_table *t);

#endif
