/*
 * bench_tls_memory.c
 *    What OpenSSL itself keeps per idle TLS connection, for each of
 *    pgnear's two roles, with pgnear's own contexts (protocol/tls.c): N
 *    connections over socketpairs complete their handshake, exchange one
 *    small message each way, and sit idle; the heap in use (mallinfo2)
 *    is read before, with both ends open, and again after freeing one
 *    side's SSL objects.  This is the floor under pgnear's "KiB per idle
 *    session" with TLS on a side (bench/idle_memory.pl): whatever pgnear
 *    adds is above it.
 *
 *    bench_tls_memory [N] [rsa|ec]     (default 500 ec)
 *
 *    BENCH_TLS_KEEP_BUFFERS=1 leaves out the SSL_free_buffers() that
 *    protocol/sock.c makes: the connecting side then keeps the 16 KB read
 *    buffer that took the server's TLS 1.3 session tickets.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "protocol/tls.h"

struct tls_pair {
    SSL *accepting;  /* pgnear facing a client: the TLS server */
    SSL *connecting; /* pgnear facing a PostgreSQL server: the TLS client */
};

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_tls_memory: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A self-signed certificate and its key, written where the contexts can load them. */
static void make_certificate(const char *type, const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = strcmp(type, "rsa") == 0 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (key == NULL || x == NULL)
        die("could not make a key");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    if (X509_sign(x, key, EVP_sha256()) == 0)
        die("could not sign the certificate");
    FILE *cf = fopen(cert_path, "w"), *kf = fopen(key_path, "w");
    if (cf == NULL || kf == NULL || PEM_write_X509(cf, x) != 1 ||
        PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) != 1)
        die("could not write the certificate");
    fclose(cf);
    fclose(kf);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Drives both ends of one connection until the handshake is done. */
static void handshake(struct tls_pair *p)
{
    int done_a = 0, done_c = 0;
    for (int round = 0; round < 100 && !(done_a && done_c); round++) {
        if (!done_c)
            done_c = SSL_connect(p->connecting) == 1;
        if (!done_a)
            done_a = SSL_accept(p->accepting) == 1;
    }
    if (!(done_a && done_c))
        die("handshake did not finish");
}

/* One message each way, read completely, as a login and a first query would leave it. */
static void exchange(struct tls_pair *p)
{
    char buf[256];
    if (SSL_write(p->connecting, "query", 5) != 5 || SSL_write(p->accepting, "answer", 6) != 6)
        die("write failed");
    /* TLS 1.3 session tickets come after the handshake: reading takes them in. */
    if (SSL_read(p->accepting, buf, sizeof(buf)) != 5 || SSL_read(p->connecting, buf, 6) != 6)
        die("read failed");
    SSL_read(p->accepting, buf, sizeof(buf)); /* nothing more: leaves the buffers released */
    SSL_read(p->connecting, buf, sizeof(buf));
    ERR_clear_error();
    if (getenv("BENCH_TLS_KEEP_BUFFERS") == NULL) {
        /* As pgnear's stream layer does after a read that leaves nothing pending. */
        SSL_free_buffers(p->accepting);
        SSL_free_buffers(p->connecting);
    }
}

static void open_pair(struct tls_pair *p, SSL_CTX *accept_ctx, SSL_CTX *connect_ctx)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        die("socketpair failed (raise ulimit -n?)");
    p->accepting = SSL_new(accept_ctx);
    p->connecting = SSL_new(connect_ctx);
    if (p->accepting == NULL || p->connecting == NULL)
        die("SSL_new failed");
    SSL_set_fd(p->accepting, sv[0]);
    SSL_set_fd(p->connecting, sv[1]);
    handshake(p);
    exchange(p);
}

static void free_side(SSL **ssl)
{
    close(SSL_get_fd(*ssl));
    SSL_free(*ssl);
    *ssl = NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 500;
    const char *type = argc > 2 ? argv[2] : "ec";
    if (n <= 0)
        die("usage: bench_tls_memory [N] [rsa|ec]");
    char dir[] = "/tmp/bench-tls-XXXXXX", cert[64], key[64], err[256];
    if (mkdtemp(dir) == NULL)
        die("mkdtemp failed");
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    make_certificate(type, cert, key);
    SSL_CTX *accept_ctx = tls_make_client_side_ctx(cert, key, err, sizeof(err));
    SSL_CTX *connect_ctx =
        tls_make_server_side_ctx(TLS_SERVER_REQUIRE, NULL, NULL, NULL, err, sizeof(err));
    if (accept_ctx == NULL || connect_ctx == NULL)
        die(err);
    struct tls_pair *pairs = calloc((size_t)n, sizeof(*pairs));
    if (pairs == NULL)
        die("out of memory");
    struct tls_pair warm;
    open_pair(&warm, accept_ctx, connect_ctx); /* what the first connection loads for good */
    size_t before = heap_in_use();
    for (int i = 0; i < n; i++)
        open_pair(&pairs[i], accept_ctx, connect_ctx);
    size_t both = heap_in_use();
    for (int i = 0; i < n; i++)
        free_side(&pairs[i].connecting);
    size_t accepting_only = heap_in_use();
    double total = (double)(both - before) / n / 1024;
    double accepting = (double)(accepting_only - before) / n / 1024;
    printf("%s %s, %d connections: bytes of heap per idle connection\n", OpenSSL_version(0), type,
           n);
    printf("  accepting side (pgnear facing a TLS client):      %5.1f KiB\n", accepting);
    printf("  connecting side (pgnear facing a TLS server):     %5.1f KiB\n", total - accepting);
    for (int i = 0; i < n; i++)
        free_side(&pairs[i].accepting);
    free(pairs);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    return 0;
}
