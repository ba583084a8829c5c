/*
 * prep_check.c — the plan check (prep_int.h): a name whose Parse was
 * answered from another client's plan is checked against a fresh plan
 * before its first use.
 */
#include "protocol/prepared.h"

#include <string.h>

#include <event2/buffer.h>

#include "protocol/fnv.h"
#include "protocol/pkt.h"
#include "protocol/prep_int.h"

/*
 * A name whose Parse pgnear answered from a plan another client made (a
 * server's cached statement, prep_client_parse_known) is checked before its
 * first use, since its tables may have changed since that plan: a column's
 * type altered, a table made again.  PostgreSQL keeps a statement's
 * parameter and result types for its life (refusing it, 0A000, when the
 * result type changed), while the client's own Parse would have planned
 * the text anew.  So the server is asked, in a batch of pgnear's own whose
 * answers the client never sees (HOW_CHECK): the text parsed afresh as the
 * unnamed statement, a Describe of that and one of the cached statement,
 * and Sync.  The same parameter and row descriptions: the name keeps the
 * statement.  Others: the statement is superseded (a cached one refused
 * with 0A000 is retired, server_error), and the name takes a statement of
 * its text parsed afresh, which later Parses of the text find; the names
 * that already hold the old one keep it, as their plans would be kept
 * directly.  Asked only where nothing of the client's batch was sent and
 * nothing is outstanding, outside a transaction block (an error would end
 * the client's transaction there, a Sync its batch), and only where the
 * server has the statement (a Parse sent there plans afresh anyway):
 * elsewhere the name is used as it is.  One round trip and one Parse per
 * such name, the Parse a direct connection would have made.  PREP_OK: go
 * on with n->spec; PREP_WAIT: asked; PREP_OOM.
 */
static int plan_check_send(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                           struct prep_slot *slot, struct evbuffer *out)
{
    struct prep_stmt *st = n->spec;
    struct prep_entry *e = prep_parse_send(c, s, HOW_CHECK, "", st, out), *d0 = NULL, *d1 = NULL,
                      *z;
    if (e == NULL)
        return PREP_OOM;
    prep_entry_server_unnamed(s, e, st);
    if (pkt_add_target(out, 'D', 'S', "", 0) == 0)
        d0 = prep_entry_push(s, c, HOW_CHECK, X_DESC_S);
    if (d0 != NULL && pkt_add_target(out, 'D', 'S', st->name, strlen(st->name)) == 0)
        d1 = prep_entry_push(s, c, HOW_CHECK, X_DESC_S);
    if (d1 == NULL || prep_put_msg(out, 'S', NULL, 0) != PREP_OK ||
        (z = prep_entry_push(s, c, HOW_CHECK, X_SYNC)) == NULL)
        return PREP_OOM;
    d1->check = 1;
    prep_entry_slot(s, d1, slot, false, false);
    prep_entry_name(s, d1, n, st); /* the name waits for the answer (n->mod) */
    s->last_sync = z->seq;
    s->flushed = true;
    s->batch_sent = false; /* pgnear's own batch is whole: the client's is as it was */
    s->check[0] = s->check[1] = FNV1A_BASIS;
    s->check_failed[0] = s->check_failed[1] = false;
    n->replan = REPLAN_ASKED;
    s->stats.plan_checks++;
    s->reg->stats.plan_checks++;
    return PREP_WAIT;
}

/* n takes a statement of its text parsed afresh (its own is superseded or retired). */
static int name_take_fresh(struct prep_client *c, struct prep_server *s, struct prep_name *n)
{
    struct prep_stmt *st = n->spec;
    struct stmt_src src = {st->text, st->text_len, st->types, st->ntypes, st->context};
    struct prep_stmt *fresh = prep_registry_get(s->reg, &src);
    if (fresh == NULL)
        return PREP_OOM;
    prep_stmt_set(s->reg, &n->real, fresh);
    prep_name_set_spec(c, n, fresh);
    prep_stmt_unref(s->reg, fresh);
    return PREP_OK;
}

/* The answer is in: n keeps its statement, or takes one of its text parsed afresh. */
static int plan_check_done(struct prep_client *c, struct prep_server *s, struct prep_name *n)
{
    struct prep_stmt *st = n->spec;
    n->replan = REPLAN_NONE;
    if (s->check_failed[0] || (!s->check_failed[1] && s->check[0] == s->check[1]))
        return PREP_OK; /* (a text that no longer parses fails at its Bind, as it is) */
    if (!st->stale) {
        st->superseded = true;
        st->proven = false;
        s->reg->stats.superseded++;
    }
    return name_take_fresh(c, s, n);
}

/*
 * n's statement where s planned it afresh (prep_verify_send): PREP_WAIT while
 * the answer is awaited; planned as its clients were told, on as usual;
 * planned otherwise, it is dropped there, and a name answered from
 * another's plan takes its text parsed afresh (its own Parse would have
 * planned it so), any other gets 0A000, as PostgreSQL refuses a client's
 * own statement whose result type changed (resolve_named).
 */
int prep_name_verified(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                       struct evbuffer *out)
{
    struct prep_slot *slot = prep_slot_find(s, n->spec);
    if (slot == NULL || !slot->spec || slot->verify == VERIFY_NONE)
        return PREP_OK;
    if (slot->verify == VERIFY_ASKED)
        return PREP_WAIT;
    bool replan = n->replan == REPLAN_DUE && n->mod == 0;
    if (prep_verify_drop(c, s, slot, !replan, out) != PREP_OK)
        return PREP_OOM;
    if (!replan)
        return PREP_OK;
    n->replan = REPLAN_NONE;
    return name_take_fresh(c, s, n);
}

int prep_plan_check(struct prep_client *c, struct prep_server *s, struct prep_name *n,
                    struct evbuffer *out)
{
    if (n->replan == REPLAN_ASKED)
        return plan_check_done(c, s, n);
    struct prep_slot *slot = prep_slot_find(s, n->spec);
    if (n->replan != REPLAN_DUE || slot == NULL || !slot->spec || slot->mod != 0)
        return PREP_OK;
    n->replan = REPLAN_NONE;
    if (s->head != NULL || s->batch_sent || s->dropping || s->copy_in || s->tx->status != 'I')
        return PREP_OK;
    return plan_check_send(c, s, n, slot, out);
}
