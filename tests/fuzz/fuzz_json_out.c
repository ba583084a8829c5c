/*
 * fuzz_json_out.c
 *    libFuzzer target for protocol/json_out.c: the first byte picks the
 *    flags and the capacity, the rest is the text.  Besides not crashing:
 *    the escaped text never passes its capacity (the buffer is allocated
 *    at exactly cap bytes, so AddressSanitizer sees a byte past it), is
 *    NUL-terminated and holds no NUL; between quotes it parses with
 *    protocol/json.c's strict reader as one string (so no escape or UTF-8
 *    sequence is split and no raw control byte is left), that string is
 *    the text with each ill-formed byte as U+FFFD, a cut output is a
 *    prefix of the whole one that stops only where the next piece would
 *    not fit, and json_out_add appends the whole one between quotes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/json.h"
#include "protocol/json_out.h"
#include "protocol/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* What the string decodes to: the text with each ill-formed byte as U+FFFD (3 * len at most). */
static size_t expected_text(const uint8_t *t, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = t[i] < 0x80 ? 1 : utf8_seq_len(t + i, len - i);
        if (k == 0) {
            memcpy(out + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i++;
        } else {
            memcpy(out + n, t + i, k);
            n += k;
            i += k;
        }
    }
    return n;
}

/* s (n bytes) between quotes parses as one JSON string; decoded as want (wantn) when want. */
static void check_string(const char *s, size_t n, const char *want, size_t wantn)
{
    char *quoted = malloc(n + 2);
    check(quoted != NULL);
    quoted[0] = '"';
    memcpy(quoted + 1, s, n);
    quoted[n + 1] = '"';
    struct json_doc doc;
    check(json_parse(quoted, n + 2, NULL, &doc, NULL) == JSON_OK);
    check(json_type_of(&doc, 0) == JSON_STRING);
    check(want == NULL || json_string_eq(&doc, 0, want, wantn));
    json_free(&doc);
    free(quoted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned flags = (data[0] & 0x80) != 0 ? JSON_OUT_HTML : 0;
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    size_t cap = (data[0] & 0x7f) == 0x7f ? 0 : (size_t)(data[0] & 0x7f) * (len / 16 + 1) / 4;

    /* The whole output: at most six bytes an input byte, and the NUL. */
    size_t fullcap = 6 * len + 1;
    char *full = malloc(fullcap), *want = malloc(3 * len + 1);
    check(full != NULL && want != NULL);
    size_t fulln = json_out_escape(full, fullcap, text, len, flags);
    check(fulln < fullcap && full[fulln] == '\0' && memchr(full, '\0', fulln) == NULL);
    size_t wantn = expected_text(text, len, want);
    check_string(full, fulln, want, wantn);
    check(utf8_invalid_at((const uint8_t *)full, fulln) == fulln);

    char *cut = malloc(cap > 0 ? cap : 1);
    check(cut != NULL);
    cut[0] = 'X';
    size_t n = json_out_escape(cut, cap, text, len, flags);
    if (cap == 0) {
        check(n == 0 && cut[0] == 'X');
    } else {
        check(n < cap && cut[n] == '\0');
        check(memcmp(cut, full, n) == 0);
        check(n == fulln || n + 6 > cap - 1); /* stopped only where a piece would not fit */
        check_string(cut, n, NULL, 0);
    }
    free(cut);

    struct evbuffer *b = evbuffer_new();
    check(b != NULL);
    check(json_out_add(b, text, len, flags) == 0);
    check(evbuffer_get_length(b) == fulln + 2);
    const char *added = (const char *)evbuffer_pullup(b, -1);
    check(added[0] == '"' && memcmp(added + 1, full, fulln) == 0 && added[fulln + 1] == '"');
    evbuffer_free(b);
    free(full);
    free(want);
    return 0;
}
