/*
 * reload.h — the configuration in force and its reloads (SIGHUP, RELOAD,
 * SET), with the health checks that run for it.  Worker 0's thread only,
 * but for reload_counts.
 */
#ifndef PGNEAR_PROXY_RELOAD_H
#define PGNEAR_PROXY_RELOAD_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct reloader;
struct shared;

/* What a reload did, for whoever asked for it (RELOAD in the admin console). */
struct reload_outcome {
    bool ok;          /* the new configuration is in use */
    char error[1024]; /* why not */
    int nfixed;       /* settings that changed but wait for a restart */
    const char *fixed[16];
};
typedef void (*reload_done_fn)(struct shared *sh, const struct reload_outcome *o, void *arg);

/* Takes over cfg, the configuration in force; NULL when out of memory (cfg still the caller's). */
struct reloader *reloader_new(struct shared *sh, struct config *cfg, int log_level);
/*
 * Before the workers are freed, once their loops have ended and the signals
 * are ignored: stops the health checks and a reload in progress; its waiters
 * hear that pgnear is shutting down.  May turn worker 0's loop once more.
 */
void reload_stop(struct reloader *rl);
/* After the workers: lets go of the configuration and the registry. */
void reloader_free(struct reloader *rl);

/* Health checks for the configuration in force, on worker 0's loop. */
void reload_start_health(struct reloader *rl);

/*
 * Re-reads the configuration file and hands it to every worker.  The file,
 * city table, GeoIP databases and TLS files are loaded on a thread of their
 * own, so that no session waits on them; the swap happens on worker 0 once
 * all of it loaded.  SET's values end here.
 */
void reload_file(struct reloader *rl);

/*
 * reload_file, and fn(shared, outcome, arg) on worker 0 once a reload that
 * read the file after this call is done (a reload already running read it
 * too early: the one that follows it answers).  0, or -1 when out of
 * memory (nothing started, fn never called).
 */
int reload_then(struct reloader *rl, reload_done_fn fn, void *arg);

/*
 * SET: name = value on top of the file until the next SIGHUP or RELOAD,
 * by a reload that keeps the other SET values; fn as reload_then.  A value
 * the reload refuses is dropped again (the one before it, if any, comes
 * back).
 */
int reload_override_then(struct reloader *rl, const char *name, const char *value,
                         reload_done_fn fn, void *arg);

/* How many reloads ran, for /metrics; any thread. */
struct reload_counts {
    unsigned reloads, failed;
    int64_t last_at; /* Unix time */
    bool last_ok;
};
void reload_counts(const struct reloader *rl, struct reload_counts *c);

#endif
