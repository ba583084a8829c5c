/*
 * fuzz_txn_pin.c
 *    libFuzzer target for protocol/txn_pin.c, the scan that says whether
 *    a Query's text ties its client to the server connection, and for
 *    protocol/txn_open.c, which reads the same texts for the words that
 *    begin a transaction and for advisory locks.  The input
 *    is the text, scanned from a buffer of exactly its length, so that a
 *    byte read past it is seen.  Promises that must hold, else it traps:
 *    the answer is NULL or one of the reasons; a statement ended before
 *    the text changes nothing ("SELECT 1; " in front gives the same
 *    answer); and the text inside a dollar-quoted string, whose tag it
 *    does not hold, is a string and pins nothing.  For txn_open: the
 *    values are in range; a statement in front keeps the advisory-lock
 *    answer and makes the first statement OTHER; inside a dollar quote
 *    the text is nothing but one statement of kind OTHER.  For
 *    protocol/sql_calls.c: every name given is NUL-terminated, of its
 *    length, at most 63 bytes, and not empty; the name found is one given;
 *    a statement in front changes nothing; inside a dollar quote nothing
 *    is called and no routine changes.  For txn_open_lock_refused: NULL
 *    or one of the modes a standby refuses; a statement in front changes
 *    nothing; inside a dollar quote there is no LOCK.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/primary_state.h"
#include "protocol/sql_calls.h"
#include "protocol/txn_open.h"
#include "protocol/txn_pin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static const char *const reasons[] = {
    "a session-level SET",
    "set_config() outside a transaction-local call",
    "a temporary object",
    "LISTEN",
    "a SQL PREPARE",
    "a WITH HOLD cursor",
    "a session advisory lock",
    "LOAD",
    /* the carried scan's own */
    "a session-level custom setting (a name with a dot)",
    "SET SESSION AUTHORIZATION",
};

static void check_reason(const char *why)
{
    if (why == NULL)
        return;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (why == reasons[i] || strcmp(why, reasons[i]) == 0)
            return;
    check(0);
}

/* head, data and tail in one buffer of exactly their length (NULL: out of memory). */
static uint8_t *wrap(const char *head, const uint8_t *data, size_t size, const char *tail,
                     size_t *n)
{
    size_t hlen = strlen(head), tlen = strlen(tail);
    *n = hlen + size + tlen;
    uint8_t *buf = malloc(*n ? *n : 1);
    if (buf == NULL)
        return NULL;
    memcpy(buf, head, hlen);
    if (size > 0)
        memcpy(buf + hlen, data, size);
    memcpy(buf + hlen + size, tail, tlen);
    return buf;
}

/* The pin scan of head, data and tail, from one buffer of exactly their length. */
static const char *scan_wrapped(const char *head, const uint8_t *data, size_t size,
                                const char *tail)
{
    size_t n;
    uint8_t *buf = wrap(head, data, size, tail, &n);
    if (buf == NULL)
        return NULL;
    const char *why = txn_pin_scan(buf, n);
    free(buf);
    return why;
}

/* The transaction-opening scan of head, data and tail, likewise; false: out of memory. */
static bool open_wrapped(const char *head, const uint8_t *data, size_t size, const char *tail,
                         struct txn_open *out)
{
    size_t n;
    uint8_t *buf = wrap(head, data, size, tail, &n);
    if (buf == NULL)
        return false;
    txn_open_scan(buf, n, out);
    free(buf);
    return true;
}

static void check_open(const uint8_t *data, size_t size)
{
    struct txn_open plain, behind, quoted;
    if (!open_wrapped("", data, size, "", &plain) ||
        !open_wrapped("SELECT 1; ", data, size, "", &behind))
        return;
    check(plain.first <= TXN_FIRST_BLOCK_END && plain.access <= TXN_ACCESS_READ_WRITE);
    check(plain.access == TXN_ACCESS_UNSAID || plain.first == TXN_FIRST_BEGIN ||
          plain.first == TXN_FIRST_SET_TRANSACTION);
    check(behind.first == TXN_FIRST_OTHER && behind.advisory_lock == plain.advisory_lock);
    if (memmem(data, size, "$fz$", 4) == NULL &&
        open_wrapped("SELECT $fz$", data, size, "$fz$", &quoted))
        check(quoted.first == TXN_FIRST_OTHER && !quoted.advisory_lock && !quoted.several);
}

/* The LOCK scan of head, data and tail: a mode's name or NULL; *ok false: out of memory. */
static const char *lock_wrapped(const char *head, const uint8_t *data, size_t size,
                                const char *tail, bool *ok)
{
    size_t n;
    uint8_t *buf = wrap(head, data, size, tail, &n);
    *ok = buf != NULL;
    if (buf == NULL)
        return NULL;
    const char *mode = txn_open_lock_refused(buf, n);
    free(buf);
    return mode;
}

static void check_lock(const uint8_t *data, size_t size)
{
    static const char *const modes[] = {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
                                        "EXCLUSIVE", "ACCESS EXCLUSIVE"};
    bool ok, ok_behind, ok_quoted;
    const char *plain = lock_wrapped("", data, size, "", &ok);
    const char *behind = lock_wrapped("SELECT 1; ", data, size, "", &ok_behind);
    if (!ok || !ok_behind)
        return;
    bool known = plain == NULL;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]) && !known; i++)
        known = strcmp(plain, modes[i]) == 0;
    check(known && (behind == NULL) == (plain == NULL));
    check(plain == NULL || strcmp(behind, plain) == 0);
    if (memmem(data, size, "$fz$", 4) == NULL) {
        const char *quoted = lock_wrapped("SELECT $fz$", data, size, "$fz$", &ok_quoted);
        check(!ok_quoted || quoted == NULL);
    }
}

/*
 * The carried scan of the same text: it pins only where the plain scan
 * does (a reason it reads past is one the plain scan may return first).
 */
static void check_carried(const uint8_t *data, size_t size, const char *plain)
{
    size_t n;
    bool changes = false;
    uint8_t *buf = wrap("", data, size, "", &n);
    if (buf == NULL)
        return;
    const char *why = txn_pin_scan_carried(buf, n, &changes);
    free(buf);
    check_reason(why);
    check(why == NULL || plain != NULL);
    check(plain == NULL || why != NULL || changes);
}

/* Each name given must be whole; every third one is wanted. */
static bool fuzz_call(void *arg, enum sql_use use, const char *name, size_t len)
{
    unsigned *calls = arg;
    check(use <= SQL_USE_KEYWORD);
    check(len > 0 && len <= SQL_NAME_MAX && strlen(name) == len);
    return ++*calls % 3 == 0;
}

static bool calls_wrapped(const char *head, const uint8_t *data, size_t size, const char *tail,
                          struct sql_calls *out, unsigned *calls)
{
    size_t n;
    uint8_t *buf = wrap(head, data, size, tail, &n);
    if (buf == NULL)
        return false;
    *calls = 0;
    sql_calls_scan(buf, n, fuzz_call, calls, out);
    free(buf);
    return true;
}

static void check_calls(const uint8_t *data, size_t size)
{
    struct sql_calls plain, behind, quoted;
    unsigned calls, calls_behind;
    if (!calls_wrapped("", data, size, "", &plain, &calls) ||
        !calls_wrapped("SELECT 1; ", data, size, "", &behind, &calls_behind))
        return;
    check(plain.found <= SQL_ROUTINE_FUNCTION);
    check(plain.found != SQL_ROUTINE_FUNCTION || strlen(plain.name) > 0);
    check(behind.found == plain.found && behind.changes_routines == plain.changes_routines &&
          calls_behind == calls);
    /* "$fz" anywhere (at its end too) could close the quote early: a name after it is given */
    if (memmem(data, size, "$fz", 3) == NULL &&
        calls_wrapped("SELECT $fz$", data, size, "$fz$", &quoted, &calls))
        check(quoted.found == SQL_ROUTINE_NONE && !quoted.changes_routines && calls == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = scan_wrapped("", data, size, "");
    check_reason(why);
    check_carried(data, size, why);
    check(scan_wrapped("SELECT 1; ", data, size, "") == why);
    if (memmem(data, size, "$fz$", 4) == NULL)
        check(scan_wrapped("SELECT $fz$", data, size, "$fz$") == NULL);
    check_open(data, size);
    check_lock(data, size);
    check_calls(data, size);
    /* the primary's own state: a name of the list, or none */
    const char *state = primary_state_read(data, size);
    check(state == NULL || strncmp(state, "pg_", 3) == 0 || strncmp(state, "txid_", 5) == 0);
    return 0;
}
