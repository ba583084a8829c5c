/*
 * hint_notice.h — telling people about locality evidence pgnear could not
 * use: the client about its own pgnear.* startup hints, the log about a
 * load balancer's PROXY TLVs.
 */
#ifndef PGNEAR_PROXY_HINT_NOTICE_H
#define PGNEAR_PROXY_HINT_NOTICE_H

#include "routing/route.h"

struct session;

/*
 * Appends a WARNING NoticeResponse to the client's output for each of its
 * startup hints (pgnear.region, pgnear.city, pgnear.location) that routing
 * could not use, naming the hint, where the session went and, for a city,
 * the closest names in the city table.  Called right before the client's
 * first ReadyForQuery; a notice that cannot be built is logged and left out.
 */
void hint_notice_queue(struct session *s);

/* Logs a warning for each PROXY TLV of in (the session's routing evidence) that routing could not
 * use. */
void hint_log_tlv(struct session *s, const struct locality_input *in);

/* Fails the login for "-c pgnear.city=New York" (HINTS_ESTRAY; errname "pgnear.city York"). */
void hint_fail_stray(struct session *s, const char *errname);

#endif
