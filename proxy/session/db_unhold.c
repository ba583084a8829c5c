/*
 * db_unhold.c — pgnear's idle connections to a database let go before the
 * server drops, renames or copies it (db_unhold.h).
 */
#include "proxy/session/db_unhold.h"

#include <stdbool.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/db_ddl.h"
#include "protocol/pkt.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/phase.h"
#include "proxy/session/session.h"

/* The longest message read: these statements are short; a longer one is let be. */
#define DB_UNHOLD_MSG_MAX 1024

static const char *const kind_words[] = {
    [DB_DDL_DROP] = "DROP DATABASE",
    [DB_DDL_RENAME] = "ALTER DATABASE ... RENAME",
    [DB_DDL_TEMPLATE] = "CREATE DATABASE ... TEMPLATE",
};

/* The SQL text of a whole Query or Parse of n bytes (header included); NULL: none. */
static const uint8_t *db_unhold_text(const uint8_t *msg, size_t n, size_t *len)
{
    const uint8_t *body = msg + PKT_HEADER_LEN;
    size_t blen = n - PKT_HEADER_LEN;
    if (msg[0] == 'P') {
        const uint8_t *nul = memchr(body, '\0', blen);
        if (nul == NULL)
            return NULL;
        blen -= (size_t)(nul + 1 - body);
        body = nul + 1;
    }
    /* Blanks and comments before the verb are the parser's; a first byte that begins none: out. */
    if (blen == 0 || !db_ddl_may_begin(body[0]))
        return NULL;
    *len = blen;
    return body;
}

void db_unhold_bytes(struct session *s, const uint8_t *msg, size_t avail)
{
    if (avail <= PKT_HEADER_LEN || (msg[0] != 'Q' && msg[0] != 'P'))
        return;
    size_t n = 1 + (size_t)pkt_be32(msg + 1);
    size_t len;
    struct db_ddl ddl;
    if (n > avail || n <= PKT_HEADER_LEN || n > DB_UNHOLD_MSG_MAX)
        return;
    const uint8_t *text = db_unhold_text(msg, n, &len);
    if (text == NULL || db_ddl_parse(text, len, &ddl) != 1)
        return;
    if (s->w->shared->flow->database_unhold == NULL)
        return;
    slog_info(s, "%s \"%s\": pgnear's idle connections to it close on every worker first",
              kind_words[ddl.kind], ddl.database);
    s->w->shared->flow->database_unhold(s, ddl.database);
}

/* Whether the message whose first have bytes are at head may be one (its text's first byte). */
static bool db_unhold_may_be(const uint8_t *head, size_t have)
{
    const uint8_t *text = head + PKT_HEADER_LEN;
    if (head[0] == 'P') {
        const uint8_t *nul = memchr(text, '\0', have - PKT_HEADER_LEN);
        if (nul == NULL)
            return false; /* a statement name longer than the look: not these statements' way */
        text = nul + 1;
    }
    return text < head + have && db_ddl_may_begin(*text);
}

void db_unhold_in(struct session *s, struct evbuffer *in)
{
    uint8_t msg[DB_UNHOLD_MSG_MAX];
    size_t have = evbuffer_get_length(in), look = have < 72 ? have : 72;
    /* A look at the header and the text's first byte first: most messages stop there. */
    if (look <= PKT_HEADER_LEN + 1 || evbuffer_copyout(in, msg, look) != (ev_ssize_t)look ||
        (msg[0] != 'Q' && msg[0] != 'P') || !db_unhold_may_be(msg, look))
        return;
    size_t n = 1 + (size_t)pkt_be32(msg + 1);
    if (n > have || n > sizeof(msg) || evbuffer_copyout(in, msg, n) != (ev_ssize_t)n)
        return;
    db_unhold_bytes(s, msg, n);
}
