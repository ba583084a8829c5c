/*
 * session_identity.c — what a session keeps of its login
 * (session_identity.h).
 *
 * The shared copy is one block:
 *
 *     struct kept_head | user\0 database\0 [application_name\0]
 *                      | [the origin's texts, each \0-ended] | server_startup's bytes
 *
 * the head saying which are there, so that two blocks are equal only when
 * all of it is: two sessions share a copy when their names, origins and
 * startup parameters are the same.
 */
#include "proxy/session/session_identity.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/param_set.h"
#include "proxy/base/intern.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session_types.h"

/* The block's head: what follows it. */
struct kept_head {
    uint16_t params_used;  /* server_startup's bytes, at the block's end */
    uint16_t params_count; /* and its parameters */
    uint8_t has_app;       /* application_name follows the database */
    uint8_t has_texts;     /* the origin's texts follow the names */
};

/* Copies n strings of the given lengths to p, each ending in a NUL; where the copies are in out. */
static char *session_copy_texts(char *p, const char *const *text, const size_t *len, int n,
                                const char **out)
{
    for (int i = 0; i < n; i++) {
        memcpy(p, text[i], len[i]);
        p[len[i]] = '\0';
        if (out != NULL)
            out[i] = p;
        p += len[i] + 1;
    }
    return p;
}

/* What startup_raw holds goes: the shared copy let go, or its own freed. */
static void session_let_go_raw(struct session *s)
{
    if (s->identity_shared)
        intern_drop(&s->w->identities, s->startup_raw);
    else
        free(s->startup_raw);
    s->startup_raw = NULL;
    s->identity_shared = false;
}

char *session_keep_names(struct session *s, const char *user, const char *database,
                         const char *application_name, size_t extra)
{
    const char *name[3] = {user, database, application_name != NULL ? application_name : ""};
    size_t name_len[3], names = application_name != NULL ? 3 : 2, total = extra;
    for (size_t i = 0; i < names; i++)
        total += (name_len[i] = strlen(name[i])) + 1;
    char *kept = malloc(total);
    if (kept == NULL)
        return NULL;
    const char *at[3];
    char *rest = session_copy_texts(kept, name, name_len, (int)names, at);
    s->user = at[0];
    s->database = at[1];
    s->application_name = names == 3 ? at[2] : NULL;
    session_let_go_raw(s);
    s->startup_raw = (uint8_t *)kept;
    return rest;
}

/* The names, the origin's texts and server_startup's bytes laid out as one block (its length). */
static size_t kept_block(const struct session *s, const char *const *text, const size_t *len,
                         size_t texts_len, char *out)
{
    struct kept_head head = {
        .params_used = s->server_startup.used,
        .params_count = s->server_startup.count,
        .has_app = s->application_name != NULL,
        .has_texts = texts_len > 0,
    };
    const char *name[3] = {s->user, s->database, s->application_name};
    size_t name_len[3], names = head.has_app ? 3 : 2;
    size_t total =
        sizeof(head) + head.params_used + (head.has_texts ? texts_len + ORIGIN_TEXTS : 0);
    for (size_t i = 0; i < names; i++)
        total += (name_len[i] = strlen(name[i])) + 1;
    if (out == NULL)
        return total;
    memcpy(out, &head, sizeof(head));
    char *p = session_copy_texts(out + sizeof(head), name, name_len, (int)names, NULL);
    if (head.has_texts)
        p = session_copy_texts(p, text, len, ORIGIN_TEXTS, NULL);
    if (head.params_used > 0)
        memcpy(p, s->server_startup.data, head.params_used);
    return total;
}

/* s's fields pointed into its shared copy (len bytes), in place of its own. */
static void session_read_kept(struct session *s, const char *kept, size_t len)
{
    struct kept_head head;
    memcpy(&head, kept, sizeof(head));
    const char *p = kept + sizeof(head);
    s->user = p;
    p += strlen(p) + 1;
    s->database = p;
    p += strlen(p) + 1;
    s->application_name = NULL;
    if (head.has_app) {
        s->application_name = p;
        p += strlen(p) + 1;
    }
    s->origin.texts = head.has_texts ? p : NULL;
    session_let_go_raw(s);
    s->startup_raw = (uint8_t *)kept;
    s->identity_shared = true;
    param_set_lend(&s->server_startup, kept + len - head.params_used);
}

void session_keep_identity(struct session *s, const char *const text[ORIGIN_TEXTS],
                           const size_t len[ORIGIN_TEXTS])
{
    size_t texts_len = 0;
    for (int i = 0; i < ORIGIN_TEXTS; i++)
        texts_len += len[i];
    size_t total = kept_block(s, text, len, texts_len, NULL);
    char *block = malloc(total);
    if (block == NULL)
        return;
    kept_block(s, text, len, texts_len, block);
    const char *kept = intern_take(&s->w->identities, block, total, false);
    free(block);
    if (kept != NULL)
        session_read_kept(s, kept, total);
}

void session_drop_identity(struct session *s)
{
    session_let_go_raw(s);
    s->user = s->database = s->application_name = NULL;
    s->origin.texts = NULL;
    param_set_free(&s->server_startup);
}
