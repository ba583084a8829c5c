/*
 * uring.h — a worker's io_uring (uring.c): the sends of plain sockets,
 * queued during a loop turn and submitted together at its end, one
 * system call for all of them where each would have made its own; and
 * the multishot receives of logged-in plain sockets, whose completions
 * the kernel keeps for the loop to run when it asks (Linux 6.1's
 * deferred task work): one io_uring_enter runs the receives of every
 * socket that became ready since the last, where each read was a recv
 * of its own.  Before 6.1 a receive's task work interrupted the loop's
 * epoll_wait (one EINTR a wake-up), costing the system call it saved, so
 * reads stay with the event loop there.
 *
 * The sends' part is uring_send.h's, the receives' uring_recv.h's: this
 * header includes both, and holds the ring's life and the loop's side.
 */
#ifndef PGNEAR_PROXY_URING_H
#define PGNEAR_PROXY_URING_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/runtime/uring_recv.h"
#include "proxy/runtime/uring_send.h"

struct event_base;
struct uring;

/*
 * The worker's ring, its completions watched on base; NULL with err
 * when the kernel refuses it (not built in, disabled, a sandbox's
 * filter).  It takes requests only once uring_begin has run on the
 * thread that submits them all (the worker's).
 */
struct uring *uring_new(struct event_base *base, char *err, size_t errcap);
/* The calling thread is the ring's from now on (called once); <0: -errno. */
int uring_begin(struct uring *u);
/*
 * Whether sockets may receive through the ring: its completions wait for
 * the loop to ask for them (Linux 6.1's deferred task work), so that no
 * receive interrupts the loop's epoll_wait; else reads stay with epoll.
 */
bool uring_can_recv(const struct uring *u);
/*
 * io_backend = io_uring: sockets receive through the ring whatever the
 * load (the default weighs it: uring_weigh_wakeup); false weighs it again.
 */
void uring_receive_always(struct uring *u, bool always);
/*
 * Whether a socket that reads should receive through the ring now: it can,
 * and always is asked, or the reads of the loop's recent wake-ups make
 * one io_uring_enter for them pay; otherwise it reads on its readiness.
 */
bool uring_recv_wanted(const struct uring *u);
/* A read of a socket that could receive through the ring, made on its readiness. */
void uring_count_read(struct uring *u);
/*
 * The loop is about to wait: a wake-up counted, and at the end of a window
 * of them (or of a second) the reads a wake-up weighed (*avg), which decide
 * uring_recv_wanted.  True when that changed (the sockets move as they
 * next read); *avg is set only then.
 */
bool uring_weigh_wakeup(struct uring *u, double *avg);
/*
 * The worker's loop has ended: everything in flight is cancelled and its
 * end run and told here, on the ring's own thread, within timeout_ms; no
 * request is started after.  Returns the requests still in flight (0:
 * the ring is idle, and whoever frees it later waits on nothing).
 */
unsigned uring_quiesce(struct uring *u, int timeout_ms);
/* Cancels what is in flight and frees everything; NULL is fine. */
void uring_free(struct uring *u);
/* Sends and receives whose owner left while they were in flight, not yet ended by the kernel. */
size_t uring_orphans(const struct uring *u);
/* Whether sends are waiting for the end of the loop turn. */
bool uring_has_queued(const struct uring *u);
/*
 * Submits what the turn queued, runs the kernel's deferred work and tells
 * the completions that came, until nothing more is queued: the worker's
 * loop calls it after each turn.
 */
void uring_turn(struct uring *u);
/*
 * The loop is about to wait for its events: true when it may (the
 * kernel's signal is wanted from now on), false when something waits
 * for the ring already (the loop is not to block).
 */
bool uring_sleep(struct uring *u);
/* The loop's wait is over: no signal is wanted while it runs. */
void uring_awake(struct uring *u);

#endif
