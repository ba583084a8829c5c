/*
 * param_set.h — the ParameterStatus values a server reported on one
 * connection, kept so that they can be told again, as the server would,
 * to the next client of a pooled connection.
 *
 * One allocation, grown as values come (at most PARAM_SET_MAX_BYTES); names and
 * values are stored as "name\0value\0" one after another, in the order
 * first reported (a later report of a name replaces its value in place of
 * order).  A server that reports more than the set holds leaves the set
 * marked full: such a connection must not be pooled, since the next
 * client would not hear everything.
 */
#ifndef PGNEAR_PROTOCOL_PARAM_SET_H
#define PGNEAR_PROTOCOL_PARAM_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pktbuf;

#define PARAM_SET_MAX_BYTES 4096
#define PARAM_SET_MAX       64

/* 16 bytes: a session keeps one, and a crowd's sessions are many. */
struct param_set {
    char *data;              /* NULL until the first value */
    uint16_t used;           /* bytes of data in use */
    uint16_t cap;            /* bytes allocated */
    uint16_t limit;          /* the most bytes it may hold; 0: PARAM_SET_MAX_BYTES */
    uint16_t count : 8;      /* parameters (at most PARAM_SET_MAX) */
    uint16_t overflowed : 1; /* a value did not fit: the set is not the server's whole story */
    uint16_t lent : 1; /* data is another's, read-only (param_set_lend): a change copies it first */
};
_Static_assert(PARAM_SET_MAX < 256, "count is 8 bits");

/* param_set_put's and param_set_note's results. */
enum param_set_result {
    PARAM_SET_OK = 0,
    PARAM_SET_BAD = -1,  /* not a ParameterStatus body: name\0value\0 and nothing after */
    PARAM_SET_FULL = -2, /* no room (or out of memory): overflowed is set */
};

/* Sets name to value (replacing an earlier value of name). */
int param_set_put(struct param_set *ps, const char *name, const char *value);

/* The body of a ParameterStatus message ('S'), len bytes, never trusted: parsed strictly. */
int param_set_note(struct param_set *ps, const uint8_t *body, size_t len);

/* The value of name, or NULL. */
const char *param_set_get(const struct param_set *ps, const char *name);

/* Appends one ParameterStatus message per parameter, in order (pb's sticky error on overflow). */
void param_set_write(const struct param_set *ps, struct pktbuf *pb);

/*
 * The same with over's values in place of base's for the names both have,
 * then over's other names: what a server reports at login, followed by
 * what SETs after it changed.
 */
void param_set_write_merged(const struct param_set *base, const struct param_set *over,
                            struct pktbuf *pb);

/* dst (empty, its limit set or 0) becomes a copy of src; PARAM_SET_FULL when it does not fit. */
int param_set_copy(struct param_set *dst, const struct param_set *src);

/* Iterates: *off starts at 0; false after the last entry. */
bool param_set_next(const struct param_set *ps, size_t *off, const char **name, const char **value);

/*
 * Gives back the room past what ps holds (a set kept for a session's
 * life); out of memory it stays as it is.  A later put grows it again.
 */
void param_set_shrink(struct param_set *ps);

/*
 * ps reads its values from data, a read-only copy of its own data that
 * another holds (a session's kept identity), in place of its own, which
 * is freed: data must outlive ps's use of it.  A later change copies
 * them back first; param_set_free leaves them.
 */
void param_set_lend(struct param_set *ps, const char *data);

/* Frees the values (not lent ones); ps is left empty and may be used again. */
void param_set_free(struct param_set *ps);

#endif
