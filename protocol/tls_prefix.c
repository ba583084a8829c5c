/*
 * tls_prefix.c — a filter BIO over an SSL's read BIO that serves some bytes
 * already taken off the connection before the BIO's own (tls_prefix.h).
 * The startup reader cannot put bytes back into a socket, nor into the
 * WebSocket's frames; this gives them to OpenSSL instead.
 */
#include "protocol/tls_prefix.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* What the filter still has to give, before it only passes reads on. */
struct tls_prefix {
    unsigned char *bytes;
    size_t len;
    size_t off;
};

/*
 * Made once and never changed after (OpenSSL wants a BIO_METHOD that
 * outlives every BIO of it), as ws.c's.
 */
static BIO_METHOD *tls_prefix_method;
static pthread_once_t tls_prefix_once = PTHREAD_ONCE_INIT;

/* The kept bytes not yet given (none before the data is set). */
static size_t tls_prefix_left(const struct tls_prefix *p)
{
    return p != NULL ? p->len - p->off : 0;
}

/* The kept bytes first; once they are all given, the next BIO's, with its retry flags. */
static int tls_prefix_read(BIO *b, char *buf, int size)
{
    struct tls_prefix *p = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (size <= 0)
        return 0;
    size_t left = tls_prefix_left(p);
    if (left > 0) {
        size_t n = left < (size_t)size ? left : (size_t)size;
        memcpy(buf, p->bytes + p->off, n);
        p->off += n;
        return (int)n;
    }
    BIO *next = BIO_next(b);
    if (next == NULL)
        return 0;
    int n = BIO_read(next, buf, size);
    BIO_copy_next_retry(b);
    return n;
}

/* OpenSSL's writes go straight to the next BIO, with its retry flags. */
static int tls_prefix_write(BIO *b, const char *buf, int size)
{
    BIO *next = BIO_next(b);
    BIO_clear_retry_flags(b);
    if (next == NULL)
        return 0;
    int n = BIO_write(next, buf, size);
    BIO_copy_next_retry(b);
    return n;
}

/* Pending and end-of-file count the kept bytes; everything else is the next BIO's. */
static long tls_prefix_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    BIO *next = BIO_next(b);
    size_t left = tls_prefix_left(BIO_get_data(b));
    if (cmd == BIO_CTRL_PENDING)
        return (long)left + (next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0);
    if (cmd == BIO_CTRL_EOF && left > 0)
        return 0;
    return next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

/* A new filter is ready at once; its bytes are set after (tls_prefix_new). */
static int tls_prefix_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* Frees the kept bytes with the filter. */
static int tls_prefix_destroy(BIO *b)
{
    struct tls_prefix *p = BIO_get_data(b);
    if (p != NULL) {
        free(p->bytes);
        free(p);
    }
    BIO_set_data(b, NULL);
    return 1;
}

/* Makes the method once; on failure it stays NULL and tls_prefix_push fails. */
static void tls_prefix_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "pgnear TLS prefix");
    if (m == NULL)
        return;
    if (BIO_meth_set_read(m, tls_prefix_read) != 1 ||
        BIO_meth_set_write(m, tls_prefix_write) != 1 ||
        BIO_meth_set_ctrl(m, tls_prefix_ctrl) != 1 ||
        BIO_meth_set_create(m, tls_prefix_create) != 1 ||
        BIO_meth_set_destroy(m, tls_prefix_destroy) != 1) {
        BIO_meth_free(m);
        return;
    }
    tls_prefix_method = m;
}

/* A filter holding a copy of bytes[0..n); NULL when out of memory. */
static BIO *tls_prefix_new(const void *bytes, size_t n)
{
    pthread_once(&tls_prefix_once, tls_prefix_method_make);
    struct tls_prefix *p = calloc(1, sizeof(*p));
    unsigned char *copy = p != NULL ? malloc(n > 0 ? n : 1) : NULL;
    BIO *b = copy != NULL && tls_prefix_method != NULL ? BIO_new(tls_prefix_method) : NULL;
    if (b == NULL) {
        free(copy);
        free(p);
        return NULL;
    }
    memcpy(copy, bytes, n);
    p->bytes = copy;
    p->len = n;
    BIO_set_data(b, p);
    return b;
}

/*
 * The filter takes a reference of its own on the read BIO below, as the
 * SSL gives up its read reference to it: the write side keeps the BIO
 * below as it was, and SSL_free frees both in order.
 */
int tls_prefix_push(SSL *ssl, const void *bytes, size_t n)
{
    BIO *below = SSL_get_rbio(ssl);
    BIO *filter = below != NULL ? tls_prefix_new(bytes, n) : NULL;
    if (filter == NULL || BIO_up_ref(below) != 1) {
        BIO_free(filter);
        return -1;
    }
    BIO_push(filter, below);
    SSL_set0_rbio(ssl, filter);
    return 0;
}
