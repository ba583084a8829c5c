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
struct worker;

/*
 * Whether the client on the Unix socket is the OS user pgnear runs as
 * (peer credentials): it is let in without a password.  Anyone else
 * proves itself with SCRAM against auth_file, as one of admin_users
 * (client_auth.c), before the phase table (flow.c) lets it in.
 */
bool console_trusts_peer(const struct session *s);

/* ADMIN (flow.c's row): the client is who it must be; from here pgnear answers it. */
void console_enter(struct session *s);

/*
 * Frees the console's state; a command still running finds nobody to
 * answer.  Run as the session is freed, in whatever phase it ended.
 */
void console_end(struct session *s);

/*
 * PHASE_ADMIN's cancel (on the console's own worker): the command the
 * session waits on (a PAUSE) is told to give up.
 */
void console_cancel_session(struct session *s);

#endif
