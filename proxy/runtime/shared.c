/*
 * shared.c — the tables every worker shares, made and freed whole.
 */
#include "proxy/runtime/shared.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/rand.h>

int shared_init(struct shared *sh, int nworkers, char *err, size_t errcap)
{
    *sh = (struct shared){.nworkers = nworkers};
    if (auth_throttle_init(&sh->auth_throttle) != 0) {
        snprintf(err, errcap, "could not draw a random secret for the auth throttle");
        return -1;
    }
    pthread_mutex_init(&sh->cancel_lock, NULL);
    pthread_mutex_init(&sh->migrating_lock, NULL);
    pool_limits_init(&sh->pool_limits);
    client_limits_init(&sh->client_limits);
    placement_init(&sh->placement);
    notify_senders_init(&sh->notify_senders);
    log_limit_init(&sh->accept_log);
    log_limit_init(&sh->throttle_log);
    log_limit_init(&sh->http_log);
    log_limit_init(&sh->cancel_log);
    peer_stats_init(&sh->peers);
    bool fits_made = scram_fits_init(&sh->scram_fits) == 0;
    const char *why = NULL;
    if ((sh->workers = calloc((size_t)nworkers, sizeof(*sh->workers))) == NULL ||
        cancel_map_init(&sh->cancel_keys, 1024) != 0 || !fits_made)
        why = "out of memory";
    else if (RAND_bytes(sh->mock_secret, sizeof(sh->mock_secret)) != 1)
        why = "could not draw a random secret for unknown users' salts";
    if (why == NULL)
        return 0;
    snprintf(err, errcap, "%s", why);
    shared_destroy(sh);
    return -1;
}

void shared_destroy(struct shared *sh)
{
    free(sh->workers);
    sh->workers = NULL;
    cancel_map_free(&sh->cancel_keys);
    pthread_mutex_destroy(&sh->cancel_lock);
    pthread_mutex_destroy(&sh->migrating_lock);
    pool_limits_free(&sh->pool_limits);
    client_limits_free(&sh->client_limits);
    placement_destroy(&sh->placement);
    notify_senders_destroy(&sh->notify_senders);
    log_limit_destroy(&sh->accept_log);
    log_limit_destroy(&sh->throttle_log);
    log_limit_destroy(&sh->http_log);
    log_limit_destroy(&sh->cancel_log);
    peer_stats_destroy(&sh->peers);
    scram_fits_destroy(&sh->scram_fits);
    auth_throttle_free(&sh->auth_throttle);
}
