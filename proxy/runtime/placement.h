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
 *
 * Beside the entries, the homes: each database's and each city's newest
 * move as the follower last read the records (a city's rows live in its
 * move's region; the database's other rows where the database lives).  A
 * session of a database homed by city ([database] home_by) whose locality
 * names a city with a home goes to that home's region.
 */
#ifndef PGNEAR_PROXY_RUNTIME_PLACEMENT_H
#define PGNEAR_PROXY_RUNTIME_PLACEMENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/base/pgconn.h"

struct config;
struct locality;
struct region_host;
struct region_subset;

#define PLACEMENT_MAX      64 /* databases moved, or being cut over, at once */
#define PLACEMENT_NAME_MAX 63

/* What an entry says of its database besides where it lives. */
enum placement_flag {
    PLACEMENT_HELD = 1 << 0,   /* a cutover holds its sessions */
    PLACEMENT_LOCAL = 1 << 1,  /* this pgnear runs the cutover (not a peer) */
    PLACEMENT_MOVING = 1 << 2, /* a move of it is under way (copying to moved) */
};

struct placement_entry {
    char database[PLACEMENT_NAME_MAX + 1];
    char region[PLACEMENT_NAME_MAX + 1]; /* where it lives; "": as the file says */
    unsigned flags;                      /* enum placement_flag */
};

#define PLACEMENT_HOMES_MAX 128 /* databases' and cities' newest moves kept at once */
#define PLACEMENT_STATE_MAX 15  /* a move's state word */
#define PLACEMENT_KEY_MAX   127 /* a city folded (a letter may fold to two) */

/* A database's (city "") or one city's newest move, as the follower last read it. */
struct placement_home {
    char database[PLACEMENT_NAME_MAX + 1];
    char city[PLACEMENT_NAME_MAX + 1];   /* as the record writes it; "": the whole database */
    char key[PLACEMENT_KEY_MAX + 1];     /* city as city_fold() folds it */
    char region[PLACEMENT_NAME_MAX + 1]; /* where its rows live; "": where the file says */
    char target[PLACEMENT_NAME_MAX + 1]; /* while its move lives, its target: a copy is there */
    int64_t move_id, since_us;           /* the record's id and updated_at */
    char state[PLACEMENT_STATE_MAX + 1];
};

#define PLACEMENT_HELD_CITIES 8 /* cities whose cutover holds their sessions at once */

/* A city whose cutover holds its sessions (MOVE CITY ... CUTOVER): database and folded city. */
struct placement_held_city {
    char database[PLACEMENT_NAME_MAX + 1];
    char key[PLACEMENT_KEY_MAX + 1];
};

struct placement_table {
    pthread_mutex_t lock;
    size_t nheld_cities; /* under the lock, as held_cities; read without it for none */
    struct placement_held_city held_cities[PLACEMENT_HELD_CITIES];
    size_t nhomes; /* under the lock, as homes */
    struct placement_home homes[PLACEMENT_HOMES_MAX];
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

/*
 * Where pgnear's own connection to database goes (its routines' catalog,
 * its LISTEN): the hosts pick takes (pgconn_hosts) of the regions it
 * lives in now (placement_of), in the configured order of the regions,
 * into out (at most cap).  Returns the count.
 */
size_t placement_hosts(struct placement_table *t, const struct config *cfg, const char *database,
                       enum pgconn_pick pick, const struct region_host **out, size_t cap);

/*
 * As placement_of, for a session at loc (NULL: none known): where database
 * is homed by city and loc's city (or the city table's name for it) has a
 * home, that home's region alone.
 */
const struct region_subset *placement_of_city(struct placement_table *t, const struct config *cfg,
                                              const char *database, const struct locality *loc,
                                              struct region_subset *out);

/*
 * Adds to out (the regions database lives in) each configured region that
 * holds rows of one of its cities besides: a city's home elsewhere, or the
 * target of a city's move not finished nor aborted; in the order of the
 * configured regions.  Nothing for a database not homed by city.
 */
void placement_add_city_regions(struct placement_table *t, const struct config *cfg,
                                const char *database, struct region_subset *out);

/* The homes replaced by n others (at most PLACEMENT_HOMES_MAX kept). */
void placement_set_homes(struct placement_table *t, const struct placement_home *homes, size_t n);
/* A copy of the homes into out (at most cap): their count. */
size_t placement_homes(struct placement_table *t, struct placement_home *out, size_t cap);

/* Where database lives now ("": as the file says); -1 when the table is full. */
int placement_set_region(struct placement_table *t, const char *database, const char *region);
/* Into out (cap bytes) the region an entry names; false when none does. */
bool placement_region(struct placement_table *t, const char *database, char *out, size_t cap);

/* Sets or clears flag of database's entry; -1 when the table is full. */
int placement_set_flag(struct placement_table *t, const char *database, enum placement_flag flag,
                       bool on);
bool placement_flag(struct placement_table *t, const char *database, enum placement_flag flag);

/* A cutover holds (or no longer holds) database's sessions; -1 when the table is full. */
static inline int placement_set_held(struct placement_table *t, const char *database, bool held)
{
    return placement_set_flag(t, database, PLACEMENT_HELD, held);
}
static inline bool placement_held(struct placement_table *t, const char *database)
{
    return placement_flag(t, database, PLACEMENT_HELD);
}

/*
 * A city's cutover holds (or no longer holds) the sessions of database
 * whose city folds to key; -1 when PLACEMENT_HELD_CITIES are held already.
 */
int placement_set_city_held(struct placement_table *t, const char *database, const char *key,
                            bool held);
/* Whether the sessions of database from city (its name given, its city table's match) are held. */
bool placement_city_held(struct placement_table *t, const char *database, const char *city,
                         const char *matched);
/* Whether database's city folded as key is held. */
bool placement_city_held_key(struct placement_table *t, const char *database, const char *key);
/* Whether a city (as given, or the city table's match; NULL or "": none) folds to key. */
bool placement_is_city(const char *key, const char *city, const char *matched);
/* The home of h's database and city replaced by h (added when it has none): a cutover's commit. */
void placement_set_home(struct placement_table *t, const struct placement_home *h);

/* This pgnear runs a cutover of database (its peers only follow); -1 when the table is full. */
static inline int placement_set_local(struct placement_table *t, const char *database, bool local)
{
    return placement_set_flag(t, database, PLACEMENT_LOCAL, local);
}
static inline bool placement_local(struct placement_table *t, const char *database)
{
    return placement_flag(t, database, PLACEMENT_LOCAL);
}
/*
 * Changes whenever a cutover of this pgnear begins or ends: what was read
 * of the records before it may be older than what that cutover set.
 */
uint64_t placement_local_epoch(struct placement_table *t);

#endif
