/*
 * scram_fit.h — whether pgnear's SCRAM key for a user fits each region's
 * server, as the logins there told it (SHOW USERS).  Under auth = scram
 * pgnear logs in with the ClientKey of its client's proof, which only a
 * server holding the same secret as pgnear accepts: where it does not, the
 * user's sessions can neither log in nor be moved there (MOVE CLIENT,
 * DRAIN, MOVE CLIENTS HOME, a database's cutover).  One table for the
 * process, under its lock; the oldest entry makes room when it is full.
 */
#ifndef PGNEAR_PROXY_SCRAM_FIT_H
#define PGNEAR_PROXY_SCRAM_FIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_FIT_MAX 1024 /* (user, region) pairs remembered */

struct scram_fit {
    char user[64];
    char region[64];
    bool fits;            /* the last SCRAM login there: pgnear's key was taken */
    int64_t at;           /* unix time of that login */
    uint64_t logins;      /* SCRAM logins there that told (taken or not) */
    char last_error[200]; /* of the last login not taken; "" */
};

struct scram_fits {
    pthread_mutex_t lock;
    struct scram_fit *items; /* SCRAM_FIT_MAX of them; user "": free */
};

/* 0, or -1 when out of memory. */
int scram_fits_init(struct scram_fits *t);
void scram_fits_destroy(struct scram_fits *t);

/*
 * A SCRAM login of user in region ended: pgnear's key was taken (fits), or
 * not, with why.  True when this turns the pair from fitting (or unknown)
 * to not fitting: worth a line in the log.
 */
bool scram_fits_note(struct scram_fits *t, const char *user, const char *region, bool fits,
                     const char *why, int64_t now);

/* A copy of the entries into out (cap of them), by user and region; how many. */
size_t scram_fits_copy(struct scram_fits *t, struct scram_fit *out, size_t cap);

#endif
