/*
 * crowd_report.c — bench/crowd's readings and report (crowd_report.h):
 * /proc/PID/smaps_rollup, /proc/net/sockstat and /proc/slabinfo read
 * before and after the crowd; the probes' percentiles; the failures
 * tallied by code and the limit they show; one JSON object on stdout
 * and a summary for people on stderr.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/crowd_report.h"

/* "Name:   123 kB" lines of smaps_rollup. */
static void read_smaps(struct crowd_mem *m, long pid)
{
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "Rss:", 4) == 0)
            m->rss_kib = strtol(line + 4, NULL, 10);
        else if (strncmp(line, "Pss:", 4) == 0)
            m->pss_kib = strtol(line + 4, NULL, 10);
    }
    fclose(f);
}

static void read_sockstat(struct crowd_mem *m)
{
    char line[256];
    FILE *f = fopen("/proc/net/sockstat", "r");
    long inuse, orphan, tw, alloc, mem;

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "TCP: inuse %ld orphan %ld tw %ld alloc %ld mem %ld", &inuse, &orphan, &tw,
                   &alloc, &mem) == 5) {
            m->tcp_inuse = inuse;
            m->sock_pages = mem;
        }
    }
    fclose(f);
}

/* The slabs of TCP sockets: the sock (TCP) and its inode (sock_inode_cache). */
static void read_slab(struct crowd_mem *m)
{
    char line[512], name[64];
    FILE *f = fopen("/proc/slabinfo", "r");
    long active, total, size, bytes = 0;
    int seen = 0;

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%63s %ld %ld %ld", name, &active, &total, &size) == 4 &&
            (strcmp(name, "TCP") == 0 || strcmp(name, "sock_inode_cache") == 0)) {
            bytes += active * size;
            seen++;
        }
    }
    fclose(f);
    if (seen > 0)
        m->slab_kib = bytes / 1024;
}

/* utime and stime, the 14th and 15th fields, counted after the command's closing parenthesis. */
static void read_cpu(struct crowd_mem *m, long pid)
{
    char path[64], line[1024];
    unsigned long long utime, stime;
    FILE *f;
    char *p;
    long ticks = sysconf(_SC_CLK_TCK);

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    p = fgets(line, sizeof(line), f) != NULL ? strrchr(line, ')') : NULL;
    if (p != NULL && ticks > 0 &&
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) ==
            2)
        m->cpu_s = (double)(utime + stime) / (double)ticks;
    fclose(f);
}

void crowd_mem_read(struct crowd_mem *m, long pid)
{
    *m = (struct crowd_mem){-1, -1, -1, -1, -1, -1};
    if (pid > 0) {
        read_smaps(m, pid);
        read_cpu(m, pid);
    }
    read_sockstat(m);
    read_slab(m);
}

void crowd_probes_add(struct crowd_probes *p, double ms)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        double *ms_new = realloc(p->ms, cap * sizeof(*ms_new));

        if (ms_new == NULL) {
            p->failed++;
            return;
        }
        p->ms = ms_new;
        p->cap = cap;
    }
    p->ms[p->n++] = ms;
}

void crowd_codes_add(struct crowd_result *r, const char *code, size_t count, const char *text)
{
    size_t i;

    for (i = 0; i < r->ncodes; i++) {
        if (strcmp(r->codes[i].code, code) == 0)
            break;
    }
    if (i == r->ncodes) {
        if (r->ncodes == CROWD_MAX_CODES)
            i = CROWD_MAX_CODES - 1;
        else {
            r->ncodes++;
            snprintf(r->codes[i].code, sizeof(r->codes[i].code), "%s", code);
            snprintf(r->codes[i].text, sizeof(r->codes[i].text), "%s", text);
        }
    }
    r->codes[i].count += count;
}

void crowd_result_free(struct crowd_result *r)
{
    for (int i = 0; i < 2; i++) {
        free(r->probes[i].ms);
        r->probes[i] = (struct crowd_probes){0};
    }
}

/* ---- JSON ---- */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch < 0x20 ? ch : '?');
        else
            putchar(ch);
    }
    putchar('"');
}

/* "name":value, or null when the value is not known (ok false or not finite). */
static void json_num(const char *name, double v, int ok)
{
    printf(",\"%s\":", name);
    if (ok && isfinite(v))
        printf("%.6g", v);
    else
        printf("null");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

void crowd_probes_slowest(struct crowd_probes *p, double answered, double logged_in, double ms)
{
    if (ms < p->slowest_ms)
        return;
    p->slowest_answered = answered;
    p->slowest_logged_in = logged_in;
    p->slowest_ms = ms;
}

/* Nearest rank: the smallest value with at least p of them at or below it. */
static double percentile(const struct crowd_probes *p, double q)
{
    size_t rank = (size_t)ceil(q * (double)p->n);

    return p->ms[rank > 0 ? rank - 1 : 0];
}

static void json_probes(const char *name, struct crowd_probes *p)
{
    int have = p->n > 0;

    if (have)
        qsort(p->ms, p->n, sizeof(*p->ms), cmp_double);
    printf(",\"%s\":{\"sent\":%zu,\"answered\":%zu,\"failed\":%zu", name, p->sent, p->n, p->failed);
    json_num("p50_ms", have ? percentile(p, 0.50) : 0, have);
    json_num("p99_ms", have ? percentile(p, 0.99) : 0, have);
    json_num("max_ms", have ? p->ms[p->n - 1] : 0, have);
    json_num("slowest_answered_ms", p->slowest_answered, have);
    json_num("slowest_logged_in_ms", p->slowest_logged_in, have);
    printf("}");
}

/* name_before, name_after, name_per_client (the growth over the clients logged in). */
static void json_growth(const char *name, long before, long after, size_t ok)
{
    char key[64];
    int have = before >= 0 && after >= 0;

    snprintf(key, sizeof(key), "%s_before", name);
    json_num(key, (double)before, before >= 0);
    snprintf(key, sizeof(key), "%s_after", name);
    json_num(key, (double)after, after >= 0);
    snprintf(key, sizeof(key), "%s_per_client", name);
    json_num(key, have && ok > 0 ? (double)(after - before) / (double)ok : 0, have && ok > 0);
}

/* The --pid process's CPU: a login (and its `SELECT 1`) while building, and while holding. */
static void json_cpu(const struct crowd_result *r)
{
    int build = r->before.cpu_s >= 0 && r->built.cpu_s >= 0 && r->ok > 0;
    int hold = r->built.cpu_s >= 0 && r->after.cpu_s >= 0;

    json_num("cpu_ms_per_login",
             build ? (r->built.cpu_s - r->before.cpu_s) * 1000 / (double)r->ok : 0, build);
    json_num("cpu_ms_holding", hold ? (r->after.cpu_s - r->built.cpu_s) * 1000 : 0, hold);
}

static long ports_per_source(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    long lo = 0, hi = -1;

    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &lo, &hi) != 2)
            hi = lo - 1;
        fclose(f);
    }
    return hi - lo + 1;
}

/* The code most clients failed with, in words: what stopped the crowd. */
static const char *limit_of(const struct crowd_result *r, char *buf, size_t cap)
{
    const struct crowd_code *top = NULL;

    for (size_t i = 0; i < r->ncodes; i++) {
        if (top == NULL || r->codes[i].count > top->count)
            top = &r->codes[i];
    }
    if (r->failed == 0 || top == NULL)
        return NULL;
    if (strcmp(top->code, "EMFILE") == 0)
        snprintf(buf, cap, "EMFILE: a crowd process's open files (RLIMIT_NOFILE %ld)", r->nofile);
    else if (strcmp(top->code, "ENFILE") == 0)
        snprintf(buf, cap, "ENFILE: the system's open files (fs.file-max)");
    else if (strcmp(top->code, "EADDRNOTAVAIL") == 0)
        snprintf(buf, cap, "EADDRNOTAVAIL: local ports (%ld a source address and server port)",
                 ports_per_source());
    else
        snprintf(buf, cap, "%s: %s", top->code, top->text);
    return buf;
}

static const char *auth_name(enum crowd_auth a)
{
    return a == CROWD_AUTH_SCRAM      ? "scram-sha-256"
           : a == CROWD_AUTH_PASSWORD ? "password"
           : a == CROWD_AUTH_NONE     ? "trust"
                                      : "unknown";
}

static void json_head(const struct crowd_result *r)
{
    double build = r->t_built - r->t_start;

    printf("{\"label\":");
    json_string(r->label);
    printf(",\"target\":");
    json_string(r->target);
    printf(",\"auth\":");
    json_string(auth_name(r->auth));
    printf(",\"clients\":%zu,\"logged_in\":%zu,\"failed\":%zu,\"gone\":%zu", r->clients, r->ok,
           r->failed, r->gone);
    printf(",\"processes\":%zu,\"clients_per_process_max\":%zu,\"nofile\":%ld", r->procs,
           r->per_proc, r->nofile);
    printf(",\"sources\":%zu,\"per_source\":%zu,\"ports_per_source\":%ld,\"window\":%zu",
           r->sources, r->per_source, ports_per_source(), r->window);
    json_num("derive_ms", r->derive_ms, r->auth == CROWD_AUTH_SCRAM);
    json_num("build_s", build, 1);
    json_num("login_rate", build > 0 ? (double)r->ok / build : 0, build > 0);
    json_num("hold_s", r->hold_s, 1);
}

static void json_tail(struct crowd_result *r)
{
    char limit[256];
    const char *why = limit_of(r, limit, sizeof(limit));

    json_cpu(r);
    json_growth("rss_kib", r->before.rss_kib, r->after.rss_kib, r->ok);
    json_growth("pss_kib", r->before.pss_kib, r->after.pss_kib, r->ok);
    json_growth("slab_kib", r->before.slab_kib, r->after.slab_kib, r->ok);
    json_growth("sockstat_mem_pages", r->before.sock_pages, r->after.sock_pages, r->ok);
    json_growth("tcp_inuse", r->before.tcp_inuse, r->after.tcp_inuse, r->ok);
    json_probes("probe_build", &r->probes[PHASE_BUILD]);
    json_probes("probe_hold", &r->probes[PHASE_HOLD]);
    printf(",\"errors\":{");
    for (size_t i = 0; i < r->ncodes; i++) {
        printf("%s", i > 0 ? "," : "");
        json_string(r->codes[i].code);
        printf(":{\"count\":%zu,\"text\":", r->codes[i].count);
        json_string(r->codes[i].text);
        printf("}");
    }
    printf("},\"limit\":");
    if (why != NULL)
        json_string(why);
    else
        printf("null");
    printf("}\n");
}

/* ---- for people ---- */

static void summary_probes(const char *when, const struct crowd_probes *p)
{
    if (p->n == 0) {
        fprintf(stderr, "crowd: probe %s: none of %zu answered\n", when, p->sent);
        return;
    }
    fprintf(stderr, "crowd: probe %s: %zu of %zu answered, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
            when, p->n, p->sent, percentile(p, 0.5), percentile(p, 0.99), p->ms[p->n - 1]);
    fprintf(stderr,
            "crowd:   the slowest: first answer at %.1f ms, logged in at %.1f, its query's "
            "answer at %.1f\n",
            p->slowest_answered, p->slowest_logged_in, p->slowest_ms);
}

static void summary(const struct crowd_result *r)
{
    double build = r->t_built - r->t_start;
    double ok = r->ok > 0 ? (double)r->ok : 1;
    char limit[256];
    const char *why = limit_of(r, limit, sizeof(limit));

    fprintf(stderr, "crowd: %zu of %zu logged in in %.2f s (%.0f a second), %zu gone while idle\n",
            r->ok, r->clients, build, build > 0 ? (double)r->ok / build : 0, r->gone);
    if (r->before.rss_kib >= 0 && r->after.rss_kib >= 0)
        fprintf(stderr, "crowd: pid %ld: Rss %+ld KiB (%.2f KiB a client), Pss %+ld KiB (%.2f)\n",
                r->pid, r->after.rss_kib - r->before.rss_kib,
                (double)(r->after.rss_kib - r->before.rss_kib) / ok,
                r->after.pss_kib - r->before.pss_kib,
                (double)(r->after.pss_kib - r->before.pss_kib) / ok);
    if (r->before.cpu_s >= 0 && r->built.cpu_s >= 0 && r->after.cpu_s >= 0)
        fprintf(stderr, "crowd: pid %ld: CPU %.3f ms a login, %.0f ms while holding\n", r->pid,
                (r->built.cpu_s - r->before.cpu_s) * 1000 / ok,
                (r->after.cpu_s - r->built.cpu_s) * 1000);
    if (r->before.slab_kib >= 0 && r->after.slab_kib >= 0)
        fprintf(stderr,
                "crowd: kernel TCP socket slabs %+ld KiB (%.2f KiB a client, both ends), "
                "socket buffers %+ld pages\n",
                r->after.slab_kib - r->before.slab_kib,
                (double)(r->after.slab_kib - r->before.slab_kib) / ok,
                r->after.sock_pages - r->before.sock_pages);
    summary_probes("while building", &r->probes[PHASE_BUILD]);
    summary_probes("while holding", &r->probes[PHASE_HOLD]);
    if (why != NULL)
        fprintf(stderr, "crowd: stopped by %s\n", why);
}

void crowd_result_print(struct crowd_result *r)
{
    json_head(r);
    json_tail(r); /* sorts the probes */
    fflush(stdout);
    summary(r);
}
