/*
 * patroni_cluster.h — the body of Patroni's GET /cluster, read into a
 * fixed struct: its members (name, role, state, where PostgreSQL listens,
 * timeline, lag), the tags pgnear reads (pgnear_region, nofailover,
 * noloadbalance) and which member holds the leader lock.
 *
 * What Patroni 3.0 (Debian 12's 3.0.2) sends, members sorted by name:
 *
 *   {"members": [{"name": "m1", "role": "leader", "state": "running",
 *     "api_url": "http://127.0.0.1:8008/patroni", "host": "127.0.0.1",
 *     "port": 5432, "timeline": 3, "tags": {"pgnear_region": "us-east"}},
 *    {"name": "m2", "role": "replica", "state": "stopped", ...,
 *     "tags": {"pgnear_region": "us-west", "nofailover": true}, "lag": "unknown"}],
 *    "pause": true}
 *
 * role is leader, standby_leader (the leader of a standby cluster),
 * sync_standby or replica (Patroni 4 adds quorum_standby); "lag" (bytes
 * behind the leader's last known WAL position, or "unknown") is absent
 * for the leader; "timeline" is absent while PostgreSQL is not running,
 * "host" and "port" when the member has not said where it listens.
 * "pause" is there while the cluster is in maintenance mode, and
 * "scheduled_switchover" when one is.  Other keys are ignored.
 */
#ifndef PGNEAR_PROTOCOL_PATRONI_CLUSTER_H
#define PGNEAR_PROTOCOL_PATRONI_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* More members than this is a malformed body. */
#define PATRONI_MEMBERS_MAX 32
/* The longest strings kept, in bytes; longer is a malformed body. */
#define PATRONI_NAME_MAX   63
#define PATRONI_STATE_MAX  31
#define PATRONI_HOST_MAX   255
#define PATRONI_URL_MAX    255
#define PATRONI_REGION_MAX 63
/* A message's buffer: enough for every message patroni_cluster_parse writes. */
#define PATRONI_ERROR_MAX 160

enum patroni_result {
    PATRONI_OK = 0,
    PATRONI_ENOMEM = -1,  /* the JSON reader's nodes could not be allocated */
    PATRONI_EJSON = -2,   /* not JSON */
    PATRONI_EFORMAT = -3, /* JSON, but not what /cluster answers */
};

enum patroni_role {
    PATRONI_ROLE_REPLICA,
    PATRONI_ROLE_SYNC_STANDBY,
    PATRONI_ROLE_QUORUM_STANDBY,
    PATRONI_ROLE_LEADER,
    PATRONI_ROLE_STANDBY_LEADER,
    PATRONI_ROLE_OTHER, /* a role this reader does not know: neither leader nor sync */
};

enum patroni_lag {
    PATRONI_LAG_NONE,    /* no "lag": the leader */
    PATRONI_LAG_UNKNOWN, /* "lag": "unknown" (Patroni has no WAL position for it) */
    PATRONI_LAG_BYTES,   /* lag_bytes holds it */
};

struct patroni_member {
    char name[PATRONI_NAME_MAX + 1];
    enum patroni_role role;
    char state[PATRONI_STATE_MAX + 1]; /* running, streaming, stopped, starting, ...; may be "" */
    char api_url[PATRONI_URL_MAX + 1]; /* "" when null */
    char host[PATRONI_HOST_MAX + 1];   /* "" when absent */
    int port;                          /* 1..65535; 0 when absent */
    int64_t timeline;                  /* -1 when absent */
    enum patroni_lag lag;
    int64_t lag_bytes;                   /* 0 unless lag is PATRONI_LAG_BYTES */
    char region[PATRONI_REGION_MAX + 1]; /* tag pgnear_region; "" when absent */
    bool nofailover;                     /* tag nofailover, as Patroni reads it */
    bool noloadbalance;                  /* tag noloadbalance, likewise */
    bool pending_restart;
};

struct patroni_cluster {
    struct patroni_member members[PATRONI_MEMBERS_MAX];
    size_t count;
    int leader; /* index of the leader or standby_leader; -1 when none holds the lock */
    bool paused;
    bool scheduled_switchover;
};

/*
 * Reads len bytes at body into *out (cleared first).  Returns PATRONI_OK,
 * or an enum patroni_result with a message in err (cap bytes, may be 0)
 * that names the member by its index and the key, never quoting the body.
 */
int patroni_cluster_parse(const char *body, size_t len, struct patroni_cluster *out, char *err,
                          size_t cap);

/* "leader", "sync_standby", ... ("other" for PATRONI_ROLE_OTHER). */
const char *patroni_role_name(enum patroni_role role);

/* The member named name (NUL-terminated), or NULL. */
const struct patroni_member *patroni_cluster_find(const struct patroni_cluster *c,
                                                  const char *name);

#endif /* PGNEAR_PROTOCOL_PATRONI_CLUSTER_H */
