/*
 * notify_watch.c — UNLISTEN run on the session's server, applied to the
 * hub at commit (notify_watch.h).
 */
#include "proxy/session/notify_watch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/listen_sql.h"
#include "protocol/pkt.h"
#include "proxy/session/notify_hub.h"

#define NOTIFY_WATCH_NAMED 4

/* A prepared statement, or a portal, whose text is an UNLISTEN. */
struct notify_named {
    bool used;
    char name[NOTIFY_WATCH_NAME_MAX];
    struct listen_op op;
};

/* A statement the server is to run, in the answer of request req. */
struct notify_expect {
    uint64_t req;
    struct listen_op op;
};

struct notify_watch {
    uint64_t sent;     /* requests sent: Query, Sync, FunctionCall */
    uint64_t answered; /* ReadyForQuery received */
    struct notify_expect expect[NOTIFY_WATCH_MAX];
    size_t nexpect;
    struct listen_op pending[NOTIFY_WATCH_MAX]; /* run, applied at commit */
    size_t npending;
    bool errored, rolled_back; /* since the last ReadyForQuery */
    struct notify_named stmts[NOTIFY_WATCH_NAMED], portals[NOTIFY_WATCH_NAMED];
};

bool notify_watch_start(struct session *s)
{
    if (s->rare->notify_watch != NULL)
        return true;
    struct session_rare *r = session_rare_own(&s->rare);
    return r != NULL && (r->notify_watch = calloc(1, sizeof(*r->notify_watch))) != NULL;
}

/* The entry of table named name (n bytes), or NULL; make: a free (or the first) one. */
static struct notify_named *notify_named_find(struct notify_named *t, const char *name, size_t n,
                                              bool make)
{
    if (n >= NOTIFY_WATCH_NAME_MAX)
        return NULL;
    struct notify_named *free_one = NULL;
    for (size_t i = 0; i < NOTIFY_WATCH_NAMED; i++) {
        if (t[i].used && strlen(t[i].name) == n && memcmp(t[i].name, name, n) == 0)
            return &t[i];
        if (!t[i].used && free_one == NULL)
            free_one = &t[i];
    }
    if (!make)
        return NULL;
    struct notify_named *e = free_one != NULL ? free_one : &t[0];
    e->used = true;
    memcpy(e->name, name, n);
    e->name[n] = '\0';
    return e;
}

/* name (n bytes) in table t now names op, or nothing (op NULL). */
static void notify_named_set(struct notify_named *t, const char *name, size_t n,
                             const struct listen_op *op)
{
    struct notify_named *e = notify_named_find(t, name, n, op != NULL);
    if (e == NULL)
        return;
    if (op == NULL)
        e->used = false;
    else
        e->op = *op;
}

static void notify_watch_expect(struct notify_watch *w, uint64_t req, const struct listen_op *op)
{
    if (w->nexpect == NOTIFY_WATCH_MAX)
        return;
    w->expect[w->nexpect].req = req;
    w->expect[w->nexpect].op = *op;
    w->nexpect++;
}

/* A name of n bytes at p into out, when short enough to be kept. */
static bool notify_watch_name(char *out, const char *p, size_t n)
{
    if (n >= NOTIFY_WATCH_NAME_MAX)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

void notify_watch_read(uint8_t type, const uint8_t *body, size_t blen, struct notify_watch_msg *m)
{
    m->type = type;
    m->nops = 0;
    m->name_ok = m->name2_ok = false;
    if (body == NULL)
        return;
    const char *text = (const char *)body;
    size_t n = strnlen(text, blen), len;
    switch (type) {
    case 'Q': /* its UNLISTEN statements */
        if (listen_sql_may_unlisten(body, n))
            m->nops = listen_sql_unlistens(body, n, m->ops, NOTIFY_WATCH_MAX);
        break;
    case 'P': /* the statement it names, and whether its one statement is an UNLISTEN */
        if (n >= blen)
            break;
        m->name_ok = notify_watch_name(m->name, text, n);
        len = strnlen(text + n + 1, blen - n - 1);
        if (listen_sql_may_unlisten(body + n + 1, len))
            m->nops = listen_sql_unlistens(body + n + 1, len, m->ops, 1);
        break;
    case 'B': /* its portal, and the statement it runs */
        if (n >= blen)
            break;
        m->name_ok = notify_watch_name(m->name, text, n);
        len = strnlen(text + n + 1, blen - n - 1);
        m->name2_ok = notify_watch_name(m->name2, text + n + 1, len);
        break;
    case 'E': /* its portal */
        m->name_ok = n < blen && notify_watch_name(m->name, text, n);
        break;
    default:
        break;
    }
}

void notify_watch_client(struct session *s, const struct notify_watch_msg *m)
{
    struct notify_watch *w = s->rare->notify_watch;
    struct notify_named *e;
    if (w == NULL)
        return;
    switch (m->type) {
    case 'Q':
        w->sent++;
        for (size_t i = 0; i < m->nops; i++)
            notify_watch_expect(w, w->sent, &m->ops[i]);
        break;
    case 'P':
        if (m->name_ok)
            notify_named_set(w->stmts, m->name, strlen(m->name), m->nops == 1 ? &m->ops[0] : NULL);
        break;
    case 'B':
        e = m->name2_ok ? notify_named_find(w->stmts, m->name2, strlen(m->name2), false) : NULL;
        if (m->name_ok)
            notify_named_set(w->portals, m->name, strlen(m->name), e != NULL ? &e->op : NULL);
        break;
    case 'E':
        e = m->name_ok ? notify_named_find(w->portals, m->name, strlen(m->name), false) : NULL;
        if (e != NULL)
            notify_watch_expect(w, w->sent + 1, &e->op);
        break;
    case 'S':
    case 'F':
        w->sent++;
        break;
    default:
        break;
    }
}

/* The server ran the next expected statement of the request it answers, with this tag. */
static void notify_watch_ran(struct notify_watch *w, enum listen_op_kind kind)
{
    for (size_t i = 0; i < w->nexpect; i++) {
        struct notify_expect *x = &w->expect[i];
        if (x->req != w->answered + 1)
            continue;
        bool discard = x->op.kind == LISTEN_OP_DISCARD_ALL;
        if (discard != (kind == LISTEN_OP_DISCARD_ALL))
            continue;
        if (w->npending < NOTIFY_WATCH_MAX)
            w->pending[w->npending++] = x->op;
        memmove(x, x + 1, (w->nexpect - i - 1) * sizeof(*x));
        w->nexpect--;
        return;
    }
}

/* The transaction committed: what it ran stops the hub's delivery. */
static void notify_watch_commit(struct session *s, struct notify_watch *w)
{
    for (size_t i = 0; i < w->npending; i++)
        notify_hub_unlisten(s, &w->pending[i]);
    w->npending = 0;
}

/* A ReadyForQuery (status): the request is answered; an implicit transaction's end is a commit. */
static void notify_watch_ready(struct session *s, struct notify_watch *w, uint8_t status)
{
    w->answered++;
    if (w->answered > w->sent) /* a request of pgnear's own counted by its answer alone */
        w->sent = w->answered;
    size_t keep = 0;
    for (size_t i = 0; i < w->nexpect; i++)
        if (w->expect[i].req > w->answered)
            w->expect[keep++] = w->expect[i];
    w->nexpect = keep;
    if (status == 'I') {
        if (w->errored || w->rolled_back)
            w->npending = 0;
        else
            notify_watch_commit(s, w);
    }
    w->errored = w->rolled_back = false;
}

static bool notify_tag_is(const uint8_t *body, size_t blen, const char *tag)
{
    size_t n = strlen(tag);
    return blen >= n + 1 && memcmp(body, tag, n) == 0 && body[n] == '\0';
}

void notify_watch_server_msg(struct session *s, uint8_t type, const uint8_t *body, size_t blen)
{
    struct notify_watch *w = s->rare->notify_watch;
    if (w == NULL)
        return;
    if (type == 'E') {
        w->errored = true;
    } else if (type == 'Z' && body != NULL && blen >= 1) {
        notify_watch_ready(s, w, body[0]);
    } else if (type == 'C' && body != NULL) {
        if (notify_tag_is(body, blen, "UNLISTEN"))
            notify_watch_ran(w, LISTEN_OP_UNLISTEN);
        else if (notify_tag_is(body, blen, "DISCARD ALL"))
            notify_watch_ran(w, LISTEN_OP_DISCARD_ALL);
        else if (notify_tag_is(body, blen, "COMMIT"))
            notify_watch_commit(s, w); /* COMMIT AND CHAIN's too; a failed block's says ROLLBACK */
        else if (notify_tag_is(body, blen, "ROLLBACK"))
            w->rolled_back = true;
    }
}

void notify_watch_detached(struct session *s)
{
    struct notify_watch *w = s->rare->notify_watch;
    if (w == NULL)
        return;
    w->sent = w->answered; /* nothing outstanding: the counts agree again, whatever they missed */
    w->nexpect = 0;
    w->errored = w->rolled_back = false;
}

void notify_watch_end(struct session *s)
{
    if (s->rare->notify_watch == NULL)
        return;
    free(s->rare->notify_watch);
    session_rare_own(&s->rare)->notify_watch = NULL; /* (it was set: the part is the session's) */
}
