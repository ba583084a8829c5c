/*
 * snapshot.h — what every worker holds, gathered without stopping a loop.
 *
 * A snapshot asks each worker (worker_call_all) to copy what the admin
 * console and the metrics endpoint show into a part of its own: its
 * counters, its sessions per region, and on request one row per client.
 * Each part is written on its worker's thread and read only once every
 * worker has answered, on the thread that asked; nothing in a part points
 * into a worker's memory (names are copied), so a session that closes or a
 * configuration that goes away meanwhile changes nothing.  SHOW STATS and
 * /metrics both sum the same parts, so their figures agree.
 */
#ifndef PGNEAR_PROXY_ADMIN_SNAPSHOT_H
#define PGNEAR_PROXY_ADMIN_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/lsn.h"

#include "proxy/base/latency.h"
#include "proxy/base/stats.h"

struct worker;

#define SNAPSHOT_NAME_MAX 64

/* What to gather beyond the counters. */
#define SNAPSHOT_CLIENTS 1u /* a row per client session */
#define SNAPSHOT_HOSTS   2u /* a row per region host, with its health (worker 0 writes it) */
#define SNAPSHOT_SERVERS 4u /* a row per server connection */

/* A client session's state; client_row_state_name gives SHOW CLIENTS' word for it. */
enum client_row_state {
    CLIENT_ROW_LOGIN,   /* logging in, or not yet placed */
    CLIENT_ROW_WAITING, /* logged in, waiting for a server connection of a full pool */
    CLIENT_ROW_ACTIVE,  /* relaying, between safe points */
    CLIENT_ROW_IDLE,    /* relaying, at a safe point */
    CLIENT_ROW_HELD,    /* held at a safe point (PAUSE, a move) */
    CLIENT_ROW_CLOSING,
    CLIENT_ROW_STATES
};

/*
 * A server connection's state, by the list it is on (PgBouncer's words
 * where they apply); server_row_state_name gives SHOW SERVERS' word.
 */
enum server_row_state {
    SERVER_ROW_NEW,    /* connecting and logging in */
    SERVER_ROW_ACTIVE, /* linked to a session */
    SERVER_ROW_TESTED, /* handed over to a session, server_check_query's answer to come */
    SERVER_ROW_USED,   /* kept: its client left, the reset query runs */
    SERVER_ROW_IDLE,   /* kept: reset, waiting for the next client */
    SERVER_ROW_STATES
};

const char *client_row_state_name(enum client_row_state state);
const char *server_row_state_name(enum server_row_state state);

/* One client session, as SHOW CLIENTS shows it. */
struct client_row {
    uint64_t id;
    int worker;
    int pool_mode; /* its pool's (config_session_pool_mode) */
    char addr[64];
    char user[SNAPSHOT_NAME_MAX];
    char database[SNAPSHOT_NAME_MAX];
    char application_name[SNAPSHOT_NAME_MAX];
    enum client_row_state state;
    int64_t wait_since_us; /* waiting: since when (Unix time in microseconds); else 0 */
    bool in_transaction;   /* the server said 'T' or 'E' */
    bool tls;
    char region[SNAPSHOT_NAME_MAX]; /* "" while none is chosen */
    char server[SNAPSHOT_NAME_MAX + 8];
    const char *source;    /* static text: route_source_name() */
    const char *transport; /* static text: "tcp", "unix", "websocket" */
    char via[40];          /* what decided the locality: "startup hint", "header cf-ipcity" */
    char place[34];
    bool has_coords;
    double lat, lon, km; /* km < 0: unknown */
    int64_t connected_at;
    uint64_t bytes_in, bytes_out; /* from the client, to the client */
    const char *need;             /* static text: need_name(), its target_session_attrs */
    char fence[LSN_TEXT_MAX];     /* the last pgnear.fence it was sent; "" none */
    char min_lsn[LSN_TEXT_MAX];   /* the pgnear.min_lsn it came with; "" none */
    uint32_t moves;               /* times it was moved to another server */
    const char *movable;          /* static text: "yes", or why not (move_refusal) */
    const char *pinned; /* pool_mode = transaction: why it keeps its server connection; else "" */
    /* target_session_attrs = nearest, followed transaction by transaction (near.h): */
    char reads_at[SNAPSHOT_NAME_MAX];  /* region of its last transaction placed near; "" none */
    char writes_at[SNAPSHOT_NAME_MAX]; /* region of its last one run on a primary to write */
    int64_t forwarded; /* its transactions run again on a primary; -1: not followed */
    int64_t settings;  /* pool_mode = transaction: its settings that follow it; -1: none follow */
    bool owns_parked;  /* pool_mode = session: server connections of its own between them */
};

/* One server connection, as SHOW SERVERS shows it. */
struct server_row {
    uint64_t id; /* unique in its worker */
    int worker;
    int pool_mode;   /* its pool's (config_session_pool_mode) */
    uint64_t client; /* the id of the client session it serves */
    enum server_row_state state;
    char region[SNAPSHOT_NAME_MAX];
    char server[SNAPSHOT_NAME_MAX + 8]; /* host:port as configured */
    bool tls;
    uint32_t pid;         /* 0 until BackendKeyData */
    char tx_status;       /* from its last ReadyForQuery; 0 before the first */
    uint32_t outstanding; /* requests not answered yet */
    bool safe_point;
    char server_version[40];
    int64_t connected_at_us;
    uint64_t bytes_in, bytes_out; /* from the server, to the server */
    uint32_t uses;
    char database[SNAPSHOT_NAME_MAX];
    char user[SNAPSHOT_NAME_MAX];
    int64_t idle_since_us; /* 0 unless idle */
};

/* One host of a region of the current configuration, and its health. */
struct host_row {
    char region[SNAPSHOT_NAME_MAX];
    const char *admin_state; /* static text: "enabled", "disabled", "draining" */
    bool paused;
    bool has_location;
    double lat, lon;
    char host[SNAPSHOT_NAME_MAX];
    int port;
    bool up, checked, role_known, standby, login_failing;
    bool read_only, lagging;
    int64_t lag_ms, lag_bytes; /* -1: not known */
    uint64_t lsn;      /* a primary's written, a standby's replayed position; 0: not known */
    uint32_t timeline; /* of that position; 0: not known */
    double rtt_ms;
    int64_t last_check;
    unsigned downs;
    char last_error[160];
    /* Its round trips as routing measures them (routing/rtt.h). */
    double rtt_last_ms; /* the last check's on a kept connection; 0: none */
    double rtt_avg_ms;  /* the estimate; -1 while cold (fewer than RTT_MIN_SAMPLES) */
    uint32_t rtt_samples;
    bool rtt_slow;      /* marked slow now */
    double rtt_wire_ms; /* the least of the checks' network times lately; -1: none */
    /* How many logins of one pool to it overlap (health_logins_at_once). */
    unsigned logins_at_once;
    /*
     * The region that callers nearest this host's region try first
     * (route_rtt.h); "" none yet; since then (wall clock, µs).
     */
    char preferred[SNAPSHOT_NAME_MAX];
    int64_t preferred_since_us;
    uint64_t preference_changes;
    /* Fenced as a former primary (routing/claimants.h), and why ("" when not). */
    bool fenced;
    char fenced_why[256];
};

/* Sessions of one region on one worker (relaying, by the region serving them). */
struct region_sessions {
    char name[SNAPSHOT_NAME_MAX];
    uint64_t sessions;
};

/* How many sessions and server connections are on each of a worker's lists (worker.h). */
struct snapshot_lists {
    uint64_t login_sessions, waiting_sessions, active_sessions, admin_sessions;
    uint64_t login_servers, active_servers, used_servers, idle_servers;
    uint64_t quiet_clients, spare_buffers; /* runtime/buffer_pool.h */
};

/* One region's latency histograms (latency.h), copied from a worker or summed over them. */
struct latency_row {
    char region[SNAPSHOT_NAME_MAX];
    struct latency_hist hist[LATENCY_KINDS];
};

struct snapshot_part {
    bool ran;    /* the worker answered (false: its loop had ended) */
    bool failed; /* out of memory while filling: what is here is partial */
    struct worker_stats stats;
    struct snapshot_lists lists;
    struct region_sessions *regions;
    size_t nregions;
    struct client_row *clients;
    size_t nclients;
    int pool_mode; /* the worker's configuration's, in effect (enum pool_mode): none under
                      passthrough */
    struct server_row *servers;
    size_t nservers;
    struct host_row *hosts; /* worker 0's part only */
    size_t nhosts;
    struct latency_row *latency; /* its latency histograms, a row per region */
    size_t nlatency;
};

struct snapshot;
typedef void (*snapshot_done_fn)(struct snapshot *snap, void *arg);

struct snapshot {
    unsigned what; /* SNAPSHOT_* */
    int nparts;
    struct snapshot_part *parts; /* one per worker, by index */
    snapshot_done_fn done;
    void *arg;
};

/*
 * Asks every worker of from's daemon; done(snap, arg) runs on from's
 * thread once all have answered, and owns snap (snapshot_free).  0, or -1
 * when out of memory (done is never called).
 */
int snapshot_take(struct worker *from, unsigned what, snapshot_done_fn done, void *arg);
void snapshot_free(struct snapshot *snap);

/* Every worker's counters added up. */
void snapshot_sum_stats(const struct snapshot *snap, struct worker_stats *out);
/* Every worker's list lengths added up (SHOW LISTS, /metrics). */
void snapshot_sum_lists(const struct snapshot *snap, struct snapshot_lists *out);
/* Relaying sessions of a region, over every worker. */
uint64_t snapshot_region_sessions(const struct snapshot *snap, const char *region);
/* Relaying sessions through one host ("name:port"), over every worker. */
uint64_t snapshot_server_sessions(const struct snapshot *snap, const char *region,
                                  const char *server);
/* Static text for an admin state. */
const char *snapshot_admin_state_name(int state);
/* Whether some worker ran out of memory or did not answer: the figures are partial. */
bool snapshot_partial(const struct snapshot *snap);

#endif
