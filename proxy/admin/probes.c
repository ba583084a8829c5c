/*
 * probes.c — GET /healthz and GET /readyz on metrics_addr, for
 * orchestrators (Kubernetes' liveness and readiness probes).
 *
 * Both answer from a snapshot (snapshot.h): a call through every worker's
 * loop, so the answer comes only if each loop turns.  A loop that has not
 * answered within PROBE_ANSWER_MS makes the probe 503 "stuck" (worker 0's
 * own loop stuck: no answer at all).  /healthz is 200 whenever the loops
 * answer, stopping included: a stopping pgnear is alive.  /readyz is 200
 * while pgnear takes sessions (no stop signal has come) and some region
 * that takes sessions (ENABLE) and is not paused has a host up whose
 * last health check passed; else 503 with a reason word and a sentence.  Both
 * bodies list each region: its admin state, paused, its hosts up, and each
 * host's up, role and fenced, from worker 0's part as SHOW REGIONS has it.
 */
#include "proxy/admin/probes.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "protocol/json_out.h"

#include "proxy/admin/snapshot.h"
#include "proxy/base/config.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"

/* One probe waiting for its snapshot; req is NULL once answered or gone. */
struct probe {
    struct evhttp_request *req;
    struct worker *w;
    bool ready; /* /readyz; else /healthz */
    struct event *late;
};

/* A JSON string (json_out.h: escaped, ill-formed UTF-8 as U+FFFD). */
static void put_json_string(struct evbuffer *out, const char *s)
{
    json_out_add(out, s, strlen(s), 0);
}

/* The index past the last host of the region whose first host is at i (hosts come grouped). */
static size_t region_end(const struct snapshot_part *p0, size_t i)
{
    size_t j = i + 1;
    while (j < p0->nhosts && strcmp(p0->hosts[j].region, p0->hosts[i].region) == 0)
        j++;
    return j;
}

/*
 * Up for readiness: up for routing, and its last health check passed.  A
 * host nobody has checked yet counts as up for routing (registry.h), and
 * one whose checks fail stays up for routing until enough have; neither
 * here.  With checks off (health_check_interval = 0) routing's word is all
 * there is.
 */
static bool host_counts(const struct host_row *h, bool checks)
{
    return h->up && (!checks || (h->checked && h->last_error[0] == '\0'));
}

static const char *host_role(const struct host_row *h)
{
    return !h->role_known ? "unknown" : h->standby ? "standby" : "primary";
}

/* {"name":..,"state":..,"paused":..,"hosts_up":n,"hosts":[{..},..]} for hosts [i, end). */
static void put_region(struct evbuffer *out, const struct snapshot_part *p0, size_t i, size_t end,
                       bool checks)
{
    const struct host_row *r = &p0->hosts[i];
    unsigned up = 0;
    for (size_t k = i; k < end; k++)
        up += host_counts(&p0->hosts[k], checks);
    evbuffer_add_printf(out, "{\"name\":");
    put_json_string(out, r->region);
    evbuffer_add_printf(out, ",\"state\":\"%s\",\"paused\":%s,\"hosts_up\":%u,\"hosts\":[",
                        r->admin_state, r->paused ? "true" : "false", up);
    for (size_t k = i; k < end; k++) {
        const struct host_row *h = &p0->hosts[k];
        evbuffer_add_printf(out, "%s{\"host\":", k > i ? "," : "");
        put_json_string(out, h->host);
        evbuffer_add_printf(
            out, ",\"port\":%d,\"up\":%s,\"checked\":%s,\"role\":\"%s\",\"fenced\":%s}", h->port,
            host_counts(h, checks) ? "true" : "false", h->checked ? "true" : "false", host_role(h),
            h->fenced ? "true" : "false");
    }
    evbuffer_add(out, "]}", 2);
}

/* What keeps one region from taking sessions, counted over the regions. */
struct verdict_counts {
    unsigned starting; /* regions whose hosts are up only for want of a finished check */
    unsigned paused, disabled;
};

/*
 * NULL when pgnear is ready; else the reason's word, with a sentence in
 * detail.
 */
static const char *readiness(const struct snapshot *snap, struct worker *w, char *detail,
                             size_t cap)
{
    if (__atomic_load_n(&w->shared->stopping, __ATOMIC_ACQUIRE) || w->draining) {
        snprintf(detail, cap, "pgnear is stopping: its listeners close or have closed");
        return "stopping";
    }
    const struct snapshot_part *p0 = &snap->parts[0];
    bool checks = w->cfg->health_check_interval_ms > 0;
    struct verdict_counts c = {0};
    for (size_t i = 0, end; i < p0->nhosts; i = end) {
        end = region_end(p0, i);
        unsigned up = 0, unchecked = 0;
        for (size_t k = i; k < end; k++) {
            up += host_counts(&p0->hosts[k], checks);
            unchecked += p0->hosts[k].up && !p0->hosts[k].checked;
        }
        if (up == 0)
            c.starting += unchecked > 0;
        else if (strcmp(p0->hosts[i].admin_state, "enabled") != 0)
            c.disabled++;
        else if (p0->hosts[i].paused)
            c.paused++;
        else
            return NULL;
    }
    if (c.paused > 0) {
        snprintf(detail, cap, "every region with a host up is paused (PAUSE) or disabled");
        return "paused";
    }
    if (c.disabled > 0) {
        snprintf(detail, cap, "every region with a host up is disabled or draining (DISABLE)");
        return "disabled";
    }
    if (c.starting > 0) {
        snprintf(detail, cap, "no health check has found a host up yet");
        return "starting";
    }
    snprintf(detail, cap, "no region has a host up");
    return "no_host_up";
}

/* Whether every worker answered (a worker whose loop has ended is not stuck: pgnear stops). */
static bool loops_answered(const struct snapshot *snap)
{
    for (int i = 0; i < snap->nparts; i++)
        if (!snap->parts[i].ran)
            return false;
    return true;
}

/* The body: status, reason and detail, pid, workers, then the regions. */
static int probe_body(struct evbuffer *out, const struct probe *pr, const struct snapshot *snap)
{
    char detail[160] = "";
    const char *why = pr->ready ? readiness(snap, pr->w, detail, sizeof(detail)) : NULL;
    bool stopping = __atomic_load_n(&pr->w->shared->stopping, __ATOMIC_ACQUIRE);
    int status = why != NULL ? HTTP_SERVUNAVAIL : HTTP_OK;
    if (!pr->ready && !loops_answered(snap) && !stopping) {
        why = "stuck";
        snprintf(detail, sizeof(detail), "a worker's event loop has ended");
        status = HTTP_SERVUNAVAIL;
    }
    evbuffer_add_printf(out, "{\"status\":\"%s\"",
                        why != NULL ? (pr->ready ? "not ready" : "not alive")
                                    : (pr->ready ? "ready" : "alive"));
    if (why != NULL) {
        evbuffer_add_printf(out, ",\"reason\":\"%s\",\"detail\":", why);
        put_json_string(out, detail);
    }
    evbuffer_add_printf(out, ",\"pid\":%d,\"workers\":%d,\"stopping\":%s,\"regions\":[",
                        (int)getpid(), snap->nparts, stopping ? "true" : "false");
    const struct snapshot_part *p0 = &snap->parts[0];
    bool checks = pr->w->cfg->health_check_interval_ms > 0;
    for (size_t i = 0, end; i < p0->nhosts; i = end) {
        end = region_end(p0, i);
        if (i > 0)
            evbuffer_add(out, ",", 1);
        put_region(out, p0, i, end, checks);
    }
    evbuffer_add(out, "]}\n", 3);
    return status;
}

/* The answer; to HEAD without its body (evhttp would send it), its length said all the same. */
static void probe_send(struct evhttp_request *req, int status, struct evbuffer *out)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Cache-Control", "no-store");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD && out != NULL) {
        char len[24];
        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(out));
        evhttp_add_header(headers, "Content-Length", len);
        evbuffer_drain(out, evbuffer_get_length(out));
    }
    evhttp_send_reply(req, status, status == HTTP_OK ? "OK" : "Service Unavailable", out);
}

/* The HTTP client hung up first: nothing is sent. */
static void probe_gone(struct evhttp_connection *conn, void *arg)
{
    struct probe *pr = arg;
    pr->req = NULL;
}

/* Not every loop answered in time: 503 now; the snapshot is freed when it comes. */
static void probe_late(evutil_socket_t fd, short what, void *arg)
{
    struct probe *pr = arg;
    if (pr->req == NULL)
        return;
    evhttp_connection_set_closecb(evhttp_request_get_connection(pr->req), NULL, NULL);
    struct evbuffer *out = evbuffer_new();
    if (out != NULL)
        evbuffer_add_printf(out,
                            "{\"status\":\"%s\",\"reason\":\"stuck\",\"detail\":\"an event loop "
                            "did not answer within %d ms\",\"pid\":%d}\n",
                            pr->ready ? "not ready" : "not alive", PROBE_ANSWER_MS, (int)getpid());
    probe_send(pr->req, HTTP_SERVUNAVAIL, out);
    if (out != NULL)
        evbuffer_free(out);
    pr->req = NULL;
}

/* Every loop has answered: the probe's answer, unless it went or was late. */
static void probe_answer(struct snapshot *snap, void *arg)
{
    struct probe *pr = arg;
    event_free(pr->late);
    if (pr->req != NULL) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(pr->req), NULL, NULL);
        struct evbuffer *out = evbuffer_new();
        if (out != NULL) {
            probe_send(pr->req, probe_body(out, pr, snap), out);
            evbuffer_free(out);
        } else {
            evhttp_send_error(pr->req, HTTP_INTERNAL, "out of memory");
        }
    }
    snapshot_free(snap);
    free(pr);
}

/* The probe's fields are set before the snapshot is asked for, whenever its answer comes. */
static void probe_start(struct evhttp_request *req, struct worker *w, bool ready)
{
    struct probe *pr = calloc(1, sizeof(*pr));
    if (pr == NULL || (pr->late = evtimer_new(w->base, probe_late, pr)) == NULL) {
        free(pr);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, "out of memory");
        return;
    }
    pr->req = req;
    pr->w = w;
    pr->ready = ready;
    if (snapshot_take(w, SNAPSHOT_HOSTS, probe_answer, pr) != 0) {
        event_free(pr->late);
        free(pr);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, "out of memory");
        return;
    }
    struct timeval tv = {PROBE_ANSWER_MS / 1000, (PROBE_ANSWER_MS % 1000) * 1000};
    evtimer_add(pr->late, &tv);
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), probe_gone, pr);
}

void probes_healthz(struct evhttp_request *req, struct worker *w)
{
    probe_start(req, w, false);
}

void probes_readyz(struct evhttp_request *req, struct worker *w)
{
    probe_start(req, w, true);
}
