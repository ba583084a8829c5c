/*
 * console.h — the admin console: a session on admin_db that pgnear
 * answers itself, as a PostgreSQL server would, over the simple and the
 * extended query protocol.  What each command does is in commands.c; this
 * is the session side: who may log in, the messages, statements and
 * portals, and encoding results in the formats the client asked for.
 */
#ifndef PGNEAR_PROXY_ADMIN_CONSOLE_H
#define PGNEAR_PROXY_ADMIN_CONSOLE_H

#include <stdbool.h>
#include <stdint.h>

struct session;
struct console_wait;
struct worker;

/*
 * Whether the client on the Unix socket is the OS user pgnear runs as
 * (peer credentials): it is let in without a password.  Anyone else
 * proves itself with SCRAM against auth_file, as one of admin_users
 * (client_auth.c), before phase.c lets it in.
 */
bool console_trusts_peer(const struct session *s);

/* ADMIN (phase.c's row): the client is who it must be; from here pgnear answers it. */
void console_enter(struct session *s);

/*
 * Frees the console's state; a command still running finds nobody to
 * answer.  Run as the session is freed, in whatever phase it ended.
 */
void console_end(struct session *s);

/*
 * A command that answers later (commands.c returned CMD_PENDING) reports
 * here, on the session's thread: rc 0 when its result is filled, -1 when
 * its error is.  The session may have ended meanwhile: then this only
 * frees what was waiting.
 */
void console_command_done(struct console_wait *wait, int rc);

/*
 * A NOTICE sent at once to the session a pending command runs for
 * (progress); nothing when the session has ended.
 */
void console_wait_notice(struct console_wait *wait, const char *text);

/*
 * A pending command whose answer cannot come back (the session's worker
 * ended before it could be told): frees the wait now, or lets the
 * session's end free it.  Only while no loop runs that session (shutdown).
 */
void console_wait_abandon(struct console_wait *wait);

/*
 * A CancelRequest with the key of admin console session session_id, on
 * worker worker_index, received on from: the command it is waiting on (a
 * PAUSE) is told to give up, on the console's own worker.
 */
void console_cancel(struct worker *from, int worker_index, uint64_t session_id);

#endif
