/*
 * console.c — the admin console's session: login, the simple and the
 * extended query protocol, statements and portals, rows in the formats
 * the client asked for.
 *
 * A simple Query runs as PostgreSQL runs it: through the unnamed portal,
 * rows in text.  Parse keeps a plan (the command parsed once), Bind makes
 * a portal of it with the client's result formats, Execute runs the
 * command the first time and sends its rows, max_rows at a time.  After an
 * error, messages up to the next Sync are skipped; Sync ends the implicit
 * transaction, and with it every portal.
 *
 * A command that must ask the workers (SHOW CLIENTS, PAUSE) answers later:
 * the console stops reading until it does, so messages keep their order.
 */
#include "proxy/admin/console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "pgnear-build.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/query_proto.h"
#include "proxy/admin/commands.h"
#include "proxy/admin/console_rows.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/cancel.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/session.h"

/* The longest message read: a longer one ends the session (a 1 MB query still gets an error). */
#define CONSOLE_MAX_MESSAGE (4 * 1024 * 1024)
/* Output queued beyond this stops reading until the client takes it. */
#define CONSOLE_OUT_HIGH (1024 * 1024)
/* Named statements a session may keep. */
#define CONSOLE_MAX_STATEMENTS 1000

struct console_stmt {
    struct console_stmt *next;
    char name[QP_NAME_MAX + 1];
    bool empty; /* blanks only: Execute answers EmptyQueryResponse */
    struct command_plan plan;
};

struct console_portal {
    struct console_portal *next;
    char name[QP_NAME_MAX + 1];
    bool empty;
    struct command_plan plan;
    const struct admin_column *cols;
    int ncols;
    int16_t *formats; /* one per column */
    bool ran;         /* the command ran; res holds its rows */
    size_t next_row;
    struct admin_result res;
};

struct console {
    struct console_stmt *stmts;
    size_t nstmts;
    struct console_portal *portals;
    bool skip_to_sync; /* an extended-protocol error: skip messages up to Sync */
    /* A command answering later, and how to go on once it has. */
    struct console_wait *wait;
    struct console_portal *wait_portal;
    int32_t wait_max_rows;
    bool wait_simple;
};

static void console_on_read(struct session *s);
static void console_on_drain(struct session *s);

/* ---- output ---- */

/* Queues one built message (or fails the session when it could not be built or queued). */
static int console_queue(struct session *s, struct pktbuf *pb)
{
    if (!pkt_ok(pb) || evbuffer_add(s->client.out, pb->data, pb->len) != 0) {
        session_close(s, "out of memory building an admin console answer");
        return -1;
    }
    return 0;
}

/*
 * An ErrorResponse, logged too; the simple protocol's error, which does not
 * start skipping to Sync.
 */
static int console_send_error(struct session *s, const struct pg_error *e)
{
    uint8_t buf[2048];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'E', "ERROR", e);
    session_log(LOG_INFO, s, e->sqlstate, "admin console: ERROR %s: %s", e->sqlstate, e->message);
    return console_queue(s, &pb);
}

/* Short messages with no more than a tag or a status. */
static int console_send_simple(struct session *s, void (*put)(struct pktbuf *))
{
    uint8_t buf[16];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    put(&pb);
    return console_queue(s, &pb);
}

/* Always 'I': the console has no transactions, only Sync's implicit one. */
static int console_send_ready(struct session *s)
{
    uint8_t buf[8];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_ready_for_query(&pb, 'I');
    return console_queue(s, &pb);
}

/* CommandComplete for a command that ran without rows to send. */
static int console_send_tag(struct session *s, const char *tag)
{
    uint8_t buf[128];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    qp_put_command_complete(&pb, tag);
    return console_queue(s, &pb);
}

/* An error in the extended protocol: say so, then skip to the next Sync. */
static int console_fail(struct session *s, const struct pg_error *e)
{
    s->rare->console->skip_to_sync = true;
    return console_send_error(s, e);
}

/* A malformed message's error (query_proto's report) as the console's error, detail kept. */
static int console_fail_qp(struct session *s, const struct qp_error *qe)
{
    struct pg_error e;
    qp_error_pg(qe, &e);
    return console_fail(s, &e);
}

/* ---- statements and portals ---- */

/* The named statement ("" the unnamed), or NULL. */
static struct console_stmt *console_find_stmt(struct console *c, const char *name)
{
    for (struct console_stmt *st = c->stmts; st != NULL; st = st->next)
        if (strcmp(st->name, name) == 0)
            return st;
    return NULL;
}

/* The named portal ("" the unnamed), or NULL. */
static struct console_portal *console_find_portal(struct console *c, const char *name)
{
    for (struct console_portal *p = c->portals; p != NULL; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* Parse and Close replace or forget a statement; a name not kept is no error. */
static void console_drop_stmt(struct console *c, const char *name)
{
    for (struct console_stmt **pp = &c->stmts; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            struct console_stmt *st = *pp;
            *pp = st->next;
            free(st);
            c->nstmts--;
            return;
        }
}

/* A portal owns its rows and its formats. */
static void console_portal_free(struct console_portal *p)
{
    result_free(&p->res);
    free(p->formats);
    free(p);
}

/* Bind replaces a portal of the same name; Close forgets one; a name not kept is no error. */
static void console_drop_portal(struct console *c, const char *name)
{
    for (struct console_portal **pp = &c->portals; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            struct console_portal *p = *pp;
            *pp = p->next;
            console_portal_free(p);
            return;
        }
}

/* Sync ends the implicit transaction, and every portal with it. */
static void console_drop_portals(struct console *c)
{
    while (c->portals != NULL) {
        struct console_portal *p = c->portals;
        c->portals = p->next;
        console_portal_free(p);
    }
}

/* A portal of plan, with every column in format (or, with bind, the formats it asks for). */
static struct console_portal *console_new_portal(struct session *s, const char *name,
                                                 const struct command_plan *plan, bool empty,
                                                 const struct qp_bind *bind)
{
    struct console_portal *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->empty = empty;
    p->plan = *plan;
    if (!empty)
        command_columns(plan, &p->cols, &p->ncols);
    p->formats = calloc((size_t)(p->ncols > 0 ? p->ncols : 1), sizeof(*p->formats));
    if (p->formats == NULL) {
        free(p);
        return NULL;
    }
    for (int i = 0; bind != NULL && i < p->ncols; i++)
        p->formats[i] = qp_bind_result_format(bind, i);
    console_drop_portal(s->rare->console, name);
    p->next = s->rare->console->portals;
    s->rare->console->portals = p;
    return p;
}

/* ---- running and sending rows ---- */

/* RowDescription in the portal's formats, or NoData for a command without columns. */
static int console_send_row_description(struct session *s, const struct console_portal *p)
{
    if (p->ncols == 0)
        return console_send_simple(s, qp_put_no_data);
    return console_rows_describe(s, p->cols, p->ncols, p->formats);
}

/* Sends rows from where the portal stopped; then CommandComplete, or PortalSuspended at max_rows.
 */
static int console_send_rows(struct session *s, struct console_portal *p, int32_t max_rows)
{
    size_t rows = result_rows(&p->res);
    size_t sent = 0;
    for (; p->next_row < rows; p->next_row++, sent++) {
        if (max_rows > 0 && sent == (size_t)max_rows)
            return console_send_simple(s, qp_put_portal_suspended);
        if (console_rows_send_row(s, &p->res, p->next_row, p->formats) < 0)
            return -1;
    }
    return console_send_tag(s, p->res.tag);
}

/* The command's NOTICEs go before its rows, as a server's would. */
static int console_send_notices(struct session *s, const struct admin_result *r)
{
    for (int i = 0; i < r->nnotices; i++) {
        uint8_t buf[1200];
        struct pktbuf pb;
        pkt_init(&pb, buf, sizeof(buf));
        struct pkt_report rep = {
            .severity = "NOTICE", .sqlstate = "00000", .message = r->text + r->notices[i]};
        pkt_put_report(&pb, 'N', &rep);
        if (console_queue(s, &pb) < 0)
            return -1;
    }
    return 0;
}

/* wait->notice: a NOTICE sent at once, for a pending command (progress). */
static void console_wait_notice(struct console_wait *wait, const char *text)
{
    struct session *s = wait->s;
    if (s == NULL)
        return;
    uint8_t buf[1200];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    struct pkt_report rep = {.severity = "NOTICE", .sqlstate = "00000", .message = text};
    pkt_put_report(&pb, 'N', &rep);
    if (console_queue(s, &pb) == 0)
        endpoint_flush(s, &s->client);
}

/* The command's answer is in (now or later): keep the rows, or report the error. */
static int console_take_answer(struct session *s, struct console_portal *p,
                               struct console_wait *wait, int rc, int32_t max_rows, bool simple)
{
    int out;
    if (rc == CMD_DONE && !result_ok(&wait->res))
        admin_error_oom(&wait->err);
    if (rc == CMD_DONE && result_ok(&wait->res)) {
        p->res = wait->res;
        p->ran = true;
        out = console_send_notices(s, &p->res);
        if (out == 0)
            out = console_send_rows(s, p, max_rows);
    } else {
        result_free(&wait->res);
        out = simple ? console_send_error(s, &wait->err) : console_fail(s, &wait->err);
    }
    free(wait);
    if (out < 0 || !simple)
        return out;
    return console_send_ready(s);
}

/*
 * wait->answer: a pending command's answer, on the session's thread; when
 * the session has ended, only the wait is freed.
 */
static void console_command_done(struct console_wait *wait, int rc)
{
    struct session *s = wait->s;
    if (s == NULL) {
        result_free(&wait->res);
        free(wait);
        return;
    }
    struct console *c = s->rare->console;
    c->wait = NULL;
    if (console_take_answer(s, c->wait_portal, wait, rc, c->wait_max_rows, c->wait_simple) < 0)
        return;
    if (c->wait_simple)
        console_drop_portal(c, ""); /* a simple query's portal ends with it */
    if (endpoint_flush(s, &s->client) < 0)
        return;
    endpoint_resume_read(&s->client);
    endpoint_set_reader(&s->client, console_on_read);
}

/* wait->abandon: no answer will come (shutdown): the wait is freed now or at the session's end. */
static void console_wait_abandon(struct console_wait *wait)
{
    if (wait->s != NULL) {
        wait->abandoned = true; /* console_end frees it */
        return;
    }
    result_free(&wait->res);
    free(wait);
}

/* A wait for a command run for s, answering through the console. */
static struct console_wait *console_wait_new(struct session *s)
{
    struct console_wait *wait = calloc(1, sizeof(*wait));
    if (wait == NULL)
        return NULL;
    wait->s = s;
    wait->answer = console_command_done;
    wait->notice = console_wait_notice;
    wait->abandon = console_wait_abandon;
    return wait;
}

/* Runs the portal's command if it has not run, then sends rows; 1 while the answer is pending. */
static int console_execute(struct session *s, struct console_portal *p, int32_t max_rows,
                           bool simple)
{
    if (p->empty)
        return console_send_simple(s, qp_put_empty_query_response);
    if (p->ran)
        return console_send_rows(s, p, max_rows);
    struct console_wait *wait = console_wait_new(s);
    if (wait == NULL) {
        session_close(s, "out of memory running an admin command");
        return -1;
    }
    int rc = command_run(s, &p->plan, wait);
    if (rc != CMD_PENDING)
        return console_take_answer(s, p, wait, rc, max_rows, simple);
    struct console *c = s->rare->console;
    c->wait = wait;
    c->wait_portal = p;
    c->wait_max_rows = max_rows;
    c->wait_simple = simple;
    /*
     * The next message waits for this answer, but a client that hangs up
     * meanwhile is noticed (the paused reader watches for the hangup), so
     * that the command learns of its session's end (on_session_end).
     */
    endpoint_pause_read(&s->client);
    return 1;
}

/* ---- messages ---- */

/* Query: the unnamed statement and portal of this text, run at once, then ReadyForQuery. */
static int console_query(struct session *s, const struct qp_query *q)
{
    struct console *c = s->rare->console;
    struct command_plan plan;
    struct pg_error err;
    console_drop_stmt(c, "");
    int rc = command_prepare(q->text, q->text_len, &plan, &err);
    if (rc == CMD_ERROR)
        return console_send_error(s, &err) < 0 ? -1 : console_send_ready(s);
    struct console_portal *p = console_new_portal(s, "", &plan, rc == CMD_EMPTY, NULL);
    if (p == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    /* A simple query describes rows only when there are some: NoData is the extended protocol's. */
    if (!p->empty && p->ncols > 0 && console_send_row_description(s, p) < 0)
        return -1;
    bool empty = p->empty;
    int ex = console_execute(s, p, 0, true);
    if (ex != 0)
        return ex; /* 1: the answer comes later, and ReadyForQuery after it */
    console_drop_portal(c, "");
    return empty ? console_send_ready(s) : 0; /* a command's answer carried its own */
}

/*
 * Parse: the command is parsed now and kept as the statement's plan; errors are
 * PostgreSQL's (42P05, 54000).
 */
static int console_parse(struct session *s, const struct qp_parse *m)
{
    struct console *c = s->rare->console;
    struct pg_error err;
    if (m->name[0] != '\0' && console_find_stmt(c, m->name) != NULL) {
        pg_error_set(&err, "42P05", "prepared statement \"%s\" already exists", m->name);
        return console_fail(s, &err);
    }
    if (m->name[0] != '\0' && c->nstmts >= CONSOLE_MAX_STATEMENTS) {
        pg_error_set(&err, "54000",
                     "too many prepared statements in this admin session (at most %d)",
                     CONSOLE_MAX_STATEMENTS);
        pg_error_hint(&err, "Close (DEALLOCATE) statements no longer needed.");
        return console_fail(s, &err);
    }
    if (m->nparam_types > 0) {
        pg_error_set(&err, "0A000", "the admin console does not take parameters");
        pg_error_detail(&err, "Admin commands take no parameters.");
        return console_fail(s, &err);
    }
    struct console_stmt *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    int rc = command_prepare(m->query, m->query_len, &st->plan, &err);
    if (rc == CMD_ERROR) {
        free(st);
        return console_fail(s, &err);
    }
    st->empty = rc == CMD_EMPTY;
    snprintf(st->name, sizeof(st->name), "%s", m->name);
    console_drop_stmt(c, m->name);
    st->next = c->stmts;
    c->stmts = st;
    c->nstmts++;
    return console_send_simple(s, qp_put_parse_complete);
}

/*
 * Bind: a portal of the statement; the console takes no parameters and checks
 * the result formats now.
 */
static int console_bind(struct session *s, const struct qp_bind *b)
{
    struct pg_error err;
    struct qp_error qe;
    const struct console_stmt *st = console_find_stmt(s->rare->console, b->statement);
    if (st == NULL) {
        pg_error_set(&err, "26000", "prepared statement \"%s\" does not exist", b->statement);
        return console_fail(s, &err);
    }
    if (b->nparams > 0) {
        pg_error_set(&err, "08P01",
                     "bind message supplies %d parameters, but prepared statement \"%s\" "
                     "requires 0",
                     b->nparams, b->statement);
        return console_fail(s, &err);
    }
    const struct admin_column *cols = NULL;
    int ncols = 0;
    if (!st->empty)
        command_columns(&st->plan, &cols, &ncols);
    if (qp_bind_check_result_formats(b, ncols, &qe) != QP_OK)
        return console_fail_qp(s, &qe);
    if (console_new_portal(s, b->portal, &st->plan, st->empty, b) == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    return console_send_simple(s, qp_put_bind_complete);
}

/* Describe: a portal describes its rows; a statement first says it has no parameters. */
static int console_describe(struct session *s, const struct qp_target *t)
{
    struct pg_error err;
    if (t->kind == 'P') {
        const struct console_portal *p = console_find_portal(s->rare->console, t->name);
        if (p == NULL) {
            pg_error_set(&err, "34000", "portal \"%s\" does not exist", t->name);
            return console_fail(s, &err);
        }
        return p->empty ? console_send_simple(s, qp_put_no_data)
                        : console_send_row_description(s, p);
    }
    const struct console_stmt *st = console_find_stmt(s->rare->console, t->name);
    if (st == NULL) {
        pg_error_set(&err, "26000", "prepared statement \"%s\" does not exist", t->name);
        return console_fail(s, &err);
    }
    uint8_t buf[16];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    qp_put_parameter_description(&pb, NULL, 0);
    if (console_queue(s, &pb) < 0)
        return -1;
    const struct admin_column *cols = NULL;
    int ncols = 0;
    if (!st->empty)
        command_columns(&st->plan, &cols, &ncols);
    if (ncols == 0)
        return console_send_simple(s, qp_put_no_data);
    return console_rows_describe(s, cols, ncols, NULL);
}

/* Execute: runs or goes on with the portal; 1 when the answer comes later. */
static int console_exec(struct session *s, const struct qp_execute *e)
{
    struct console_portal *p = console_find_portal(s->rare->console, e->portal);
    if (p == NULL) {
        struct pg_error err;
        pg_error_set(&err, "34000", "portal \"%s\" does not exist", e->portal);
        return console_fail(s, &err);
    }
    return console_execute(s, p, e->max_rows, false);
}

/* Close: as in PostgreSQL, closing what does not exist is not an error. */
static int console_close(struct session *s, const struct qp_target *t)
{
    if (t->kind == 'S')
        console_drop_stmt(s->rare->console, t->name);
    else
        console_drop_portal(s->rare->console, t->name);
    return console_send_simple(s, qp_put_close_complete);
}

/* Sync: the implicit transaction ends, with its portals; errors stop being skipped. */
static int console_sync(struct session *s)
{
    s->rare->console->skip_to_sync = false;
    console_drop_portals(s->rare->console);
    if (console_send_ready(s) < 0)
        return -1;
    return endpoint_flush(s, &s->client);
}

/* One parsed message; <0 the session ended, 1 an answer is pending, 0 go on. */
static int console_dispatch(struct session *s, const struct qp_message *m)
{
    switch (m->type) {
    case 'Q':
        return console_query(s, &m->u.query);
    case 'P':
        return console_parse(s, &m->u.parse);
    case 'B':
        return console_bind(s, &m->u.bind);
    case 'D':
        return console_describe(s, &m->u.target);
    case 'E':
        return console_exec(s, &m->u.execute);
    case 'C':
        return console_close(s, &m->u.target);
    case 'S':
        return console_sync(s);
    case 'H':
        return endpoint_flush(s, &s->client);
    default: /* 'X' */
        session_close(s, "admin client sent Terminate");
        return -1;
    }
}

/* A message type no PostgreSQL server takes here ends the session, as PostgreSQL does. */
static void console_bad_type(struct session *s, char type)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "invalid frontend message type %d", (unsigned char)type);
    session_fail_msg(s, "08P01", "%s", msg);
}

/*
 * msg_reader's on_message: one framed message; MSG_STOP when the session ended,
 * waits for an answer, or must drain its output first.
 */
static int console_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct qp_message m;
    struct qp_error qe;
    int rc = qp_parse_message(type, body, len, &m, &qe);
    if (rc == QP_ETYPE) {
        console_bad_type(s, type);
        return MSG_STOP;
    }
    /* After an error, everything up to Sync is read and dropped; a Query is not extended. */
    if (s->rare->console->skip_to_sync && type != 'S')
        return MSG_CONSUMED;
    if (rc != QP_OK)
        rc = type == 'Q' ? console_fail_qp(s, &qe) < 0 ? -1 : console_send_ready(s)
                         : console_fail_qp(s, &qe);
    else
        rc = console_dispatch(s, &m);
    if (rc < 0)
        return MSG_STOP;
    if (rc == 1) {
        frame_consume(s->client.in, len); /* handled; the answer comes later */
        return MSG_STOP;
    }
    if (type == 'Q' && endpoint_flush(s, &s->client) < 0)
        return MSG_STOP;
    if (evbuffer_get_length(s->client.out) > CONSOLE_OUT_HIGH) {
        /* A client that sends faster than it reads waits until it has read. */
        frame_consume(s->client.in, len);
        endpoint_set_reader(&s->client, NULL);
        s->client.on_write = console_on_drain;
        endpoint_flush(s, &s->client);
        return MSG_STOP;
    }
    return MSG_CONSUMED;
}

/* msg_reader's on_bad_length: a message over the console's limit ends the session. */
static void console_bad_length(struct session *s)
{
    struct pg_error err;
    pg_error_set(&err, "08P01", "invalid message length");
    pg_error_detail(&err, "The admin console reads messages of at most 4 MB.");
    session_fail(s, &err);
}

/*
 * The client's reader while no command is pending: messages in turn, bounded by
 * the console's limits.
 */
static void console_on_read(struct session *s)
{
    static const struct msg_reader reader = {
        .fill_max = 64 * 1024,
        .max_body = CONSOLE_MAX_MESSAGE,
        .on_message = console_message,
        .on_bad_length = console_bad_length,
    };
    endpoint_read_messages(s, &s->client, &reader);
}

/* Output held reading back: once most of it has gone, reading goes on. */
static void console_on_drain(struct session *s)
{
    if (endpoint_flush(s, &s->client) < 0)
        return;
    if (evbuffer_get_length(s->client.out) > CONSOLE_OUT_HIGH / 2)
        return;
    s->client.on_write = NULL;
    endpoint_set_reader(&s->client, console_on_read);
}

/* ---- login ---- */

/* What a server reports at login; psql and drivers read some of these. */
static int console_send_welcome(struct session *s)
{
    static const char *const params[][2] = {
        {"server_version", "15.0 (pgnear " PACKAGE_VERSION " admin console)"},
        {"server_encoding", "UTF8"},
        {"client_encoding", "UTF8"},
        {"DateStyle", "ISO, MDY"},
        {"TimeZone", "UTC"},
        {"integer_datetimes", "on"},
        {"standard_conforming_strings", "on"},
        {"application_name", ""},
        {"is_superuser", "off"},
    };
    uint8_t buf[1024];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_authentication(&pb, AUTH_OK, NULL, 0);
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
        pkt_put_parameter_status(&pb, params[i][0], params[i][1]);
    /* A key of its own, so that psql's Ctrl-C can stop a PAUSE that waits. */
    if (cancel_register_console(s) != 0) {
        session_fail_msg(s, "53200", "out of memory registering the cancel key");
        return -1;
    }
    pkt_put_backend_key_data(&pb, s->cancel.client_pid, cancel_entry_key(&s->cancel),
                             s->cancel.client_key_len);
    pkt_put_ready_for_query(&pb, 'I');
    if (console_queue(s, &pb) < 0)
        return -1;
    return endpoint_flush(s, &s->client);
}

void console_enter(struct session *s)
{
    session_set_timer(s, 0);
    struct session_rare *r = session_rare_own(&s->rare);
    if (r == NULL || (r->console = calloc(1, sizeof(*r->console))) == NULL) {
        session_fail_msg(s, "53200", "out of memory");
        return;
    }
    session_login_end(s);
    slog_info(s, "admin console session for user %s from %s", s->user, session_peer(s).text);
    if (console_send_welcome(s) < 0)
        return;
    endpoint_set_reader(&s->client, console_on_read);
}

bool console_trusts_peer(const struct session *s)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (!s->unix_socket ||
        getsockopt(s->client.stream.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return false;
    return cred.uid == geteuid();
}

void console_end(struct session *s)
{
    struct console *c = s->rare->console;
    if (c == NULL)
        return;
    if (c->wait != NULL && c->wait->abandoned) {
        result_free(&c->wait->res);
        free(c->wait);
    } else if (c->wait != NULL) {
        c->wait->s = NULL; /* the command frees it when its answer comes */
        if (c->wait->on_session_end != NULL)
            c->wait->on_session_end(c->wait->hook_arg);
    }
    console_drop_portals(c);
    while (c->stmts != NULL) {
        struct console_stmt *st = c->stmts;
        c->stmts = st->next;
        free(st);
    }
    free(c);
    session_rare_own(&s->rare)->console = NULL; /* (c was set: the part is the session's) */
}

void console_cancel_session(struct session *s)
{
    if (s->rare->console == NULL)
        return;
    struct console_wait *wait = s->rare->console->wait;
    if (wait != NULL) {
        slog_info(s, "admin console: cancel request for the command waiting");
        if (wait->on_cancel != NULL)
            wait->on_cancel(wait->hook_arg);
    }
}
