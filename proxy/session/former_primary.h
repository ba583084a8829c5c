/*
 * former_primary.h — the sessions whose server is a host fenced as a
 * former primary (routing/claimants.h): another host of its database
 * system took over, and what runs here may be thrown away when it
 * rejoins.
 *
 * A session between transactions there is moved by its own route (which
 * no longer offers the fenced host), held at once so that no request
 * more reaches the host meanwhile; under transaction pooling and for
 * nearest, whose connection goes back as each transaction ends, the next
 * transaction simply takes none there.  A session inside a transaction
 * there, one that cannot move (or, under transaction pooling, is pinned to
 * its connection), and one whose move fails are ended with 57P01:
 * its transaction ends on the host without a commit of pgnear's doing,
 * and the client connects again.  Every worker walks its sessions when a
 * host is fenced (the part's host_fenced hook); a session's next request
 * looks again, so that one that logged in there meanwhile leaves too.
 */
#ifndef PGNEAR_PROXY_FORMER_PRIMARY_H
#define PGNEAR_PROXY_FORMER_PRIMARY_H

#include <stdbool.h>

struct session;
struct worker;

/*
 * Whether s may go on relaying its client's bytes: true when its server is
 * not fenced, or when a move from it runs and s has reached a safe point;
 * false when s was ended, or its client is not read until the move holds it.
 */
bool former_primary_check(struct session *s);

/* Each of w's sessions on a fenced host, as former_primary_check does. */
void former_primary_sweep(struct worker *w);

#endif
