/*
 * startup_options.h — pgnear's own hints in a StartupMessage: where the
 * caller is (pgnear.city, pgnear.region, pgnear.location) and what its
 * session needs (pgnear.target_session_attrs, pgnear.min_lsn,
 * pgnear.report_fence), given either inside the
 * "options" parameter (libpq's PGOPTIONS: -c pgnear.city=seattle) or as
 * startup parameters of their own.  They are taken out before the startup
 * packet is forwarded, so the server never sees them.
 */
#ifndef PGNEAR_PROTOCOL_STARTUP_OPTIONS_H
#define PGNEAR_PROTOCOL_STARTUP_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#define HINT_VALUE_MAX 128

struct startup_hints {
    bool has_city, has_region, has_location, has_need, has_min_lsn, has_report_fence, has_movable;
    char city[HINT_VALUE_MAX + 1], region[HINT_VALUE_MAX + 1], location[HINT_VALUE_MAX + 1];
    char need[HINT_VALUE_MAX + 1];         /* target_session_attrs, as the client wrote it */
    char min_lsn[HINT_VALUE_MAX + 1];      /* a fence to read after (lsn.h) */
    char report_fence[HINT_VALUE_MAX + 1]; /* on, off */
    char movable[HINT_VALUE_MAX + 1];      /* on, off: the admin may move the session (move.h) */
};

enum hints_result {
    HINTS_OK = 0,
    HINTS_EUNKNOWN = -1, /* pgnear.<something else> */
    HINTS_ETOOLONG = -2,
    HINTS_ESYNTAX = -3,
    HINTS_ENOSPACE = -4,
    HINTS_ESTRAY = -5, /* a plain word right after a hint: a value cut at an unescaped space */
};

/* "pgnear.city, pgnear.region, ... and pgnear.report_fence": every hint, into buf; returns buf. */
const char *startup_hints_known(char *buf, size_t cap);

/* Clears every hint; callers start from this (or from a zeroed struct). */
void startup_hints_init(struct startup_hints *hints);

/*
 * Takes every pgnear.* setting out of options (in, len), filling hints, and
 * writes the remaining options into out (cap bytes, NUL-terminated) exactly
 * as they would be re-sent to the server: every other option untouched
 * (same escaping as the input), single spaces between them; "" when
 * nothing remains.
 *
 * Splitting follows PostgreSQL's pg_split_opts() (whitespace separates,
 * a backslash escapes the next character) and reading follows the server's
 * getopt over its own switches, so "-c name=value", "-cname=value" and
 * "--name=value" are settings, and "-d 5" is a switch with its argument.
 * Names compare case-insensitively with '-' read as '_', as the server
 * does.  A later hint overrides an earlier one; an empty value clears it.
 * Reading stops at a NUL byte or at len.
 *
 * On error out is "" and errname (errcap bytes, may be NULL/0) names the
 * culprit so the caller can say 'unrecognized pgnear setting "pgnear.foo"':
 * the setting's name, or the switch missing its argument ("-c").
 * hints may be partly filled on error.
 *
 * "-c pgnear.city=New York" is HINTS_ESTRAY: the server would refuse the
 * word "York" as an argument of its own ("invalid command-line argument
 * for server process"), so the mistake is reported here, where it can be
 * explained; errname is then the hint's name, a space and the word
 * ("pgnear.city York"), and the hint holds what came before the space.
 * A word is stray when it is not a switch, or looks like a negative
 * number ("-c pgnear.location=47.6, -122.3"): the server has no digit
 * switches.
 */
int startup_hints_extract(const char *in, size_t len, struct startup_hints *hints, char *out,
                          size_t cap, char *errname, size_t errcap);

/*
 * A startup parameter of its own (some drivers send GUCs that way):
 * returns 1 if name is a pgnear.* hint (consumed: do not forward it), 0 if
 * it is not, HINTS_EUNKNOWN for an unknown pgnear.* name and
 * HINTS_ETOOLONG for a value longer than HINT_VALUE_MAX.  Names compare
 * case-insensitively, as the server's parameter lookup does.
 */
int startup_hints_from_param(const char *name, const char *value, struct startup_hints *hints);

const char *startup_hints_strerror(int rc);

#endif /* PGNEAR_PROTOCOL_STARTUP_OPTIONS_H */
