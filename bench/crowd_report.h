/*
 * crowd_report.h — what bench/crowd measures and how it reports it
 * (crowd_report.c): the memory readings from /proc, the probe latencies
 * of each phase, the tally of failures, the JSON object and the summary.
 */
#ifndef PGNEAR_BENCH_CROWD_REPORT_H
#define PGNEAR_BENCH_CROWD_REPORT_H

#include <stddef.h>

#include "bench/crowd.h"

enum { PHASE_BUILD = 0, PHASE_HOLD = 1, PHASE_OVER = 2 };

#define CROWD_MAX_CODES 32

/* One reading; a field is negative where it could not be read. */
struct crowd_mem {
    long rss_kib, pss_kib; /* the --pid process, /proc/PID/smaps_rollup */
    long sock_pages;       /* /proc/net/sockstat TCP mem: pages in TCP socket buffers */
    long tcp_inuse;        /* /proc/net/sockstat TCP inuse */
    long slab_kib;         /* /proc/slabinfo: TCP + sock_inode_cache, active objects */
    double cpu_s;          /* the --pid process's utime + stime, all threads (/proc/PID/stat) */
};

struct crowd_probes {
    double *ms; /* answered probes' login + `SELECT 1`, milliseconds */
    size_t n, cap;
    size_t sent, failed;
    /* The slowest's milliseconds to its first answer, to its login's end, to its `SELECT 1`'s */
    double slowest_answered, slowest_logged_in, slowest_ms;
};

struct crowd_code {
    char code[CROWD_CODE_LEN];
    size_t count;
    char text[CROWD_TEXT_LEN];
};

struct crowd_result {
    char target[64];
    const char *label;
    size_t clients, ok, failed, gone;
    size_t procs, per_proc, sources, per_source, window;
    long nofile, pid;
    enum crowd_auth auth;
    double derive_ms, hold_s;
    double t_start, t_built;
    struct crowd_mem before, built, after; /* before the crowd, once built, after holding */
    struct crowd_probes probes[2];
    struct crowd_code codes[CROWD_MAX_CODES];
    size_t ncodes;
};

void crowd_mem_read(struct crowd_mem *m, long pid);
void crowd_probes_add(struct crowd_probes *p, double ms);
/* An answered probe: its times kept when it is the slowest so far (milliseconds from connect). */
void crowd_probes_slowest(struct crowd_probes *p, double answered, double logged_in, double ms);
void crowd_codes_add(struct crowd_result *r, const char *code, size_t count, const char *text);
/* The JSON object on stdout, the summary on stderr. */
void crowd_result_print(struct crowd_result *r);
void crowd_result_free(struct crowd_result *r);

#endif
