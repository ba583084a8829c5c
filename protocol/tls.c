/*
 * tls.c — OpenSSL contexts and per-connection setup (tls.h).
 */
#include "protocol/tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/*
 * OpenSSL's first queued error into err, naming what failed and its file; the
 * queue is cleared so the next check starts clean.
 */
static void tls_errstr(char *err, size_t errcap, const char *what, const char *file)
{
    char ebuf[256];
    ERR_error_string_n(ERR_get_error(), ebuf, sizeof(ebuf));
    snprintf(err, errcap, "%s \"%s\": %s", what, file ? file : "", ebuf);
    ERR_clear_error();
}

/*
 * Settings shared by both directions: TLS 1.2 minimum, partial writes for
 * the relay.  A peer that closes TCP without close_notify, as most clients
 * do, has ended its stream like any other: read as the end, not as an
 * error, it leaves the session able to answer what the peer sent before
 * (OpenSSL refuses to write after a fatal error).  A truncation cannot
 * pass unseen: PostgreSQL messages carry their lengths.
 */
static SSL_CTX *tls_new_ctx(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    return ctx;
}

/* PostgreSQL's ALPN protocol (PG_ALPN_PROTOCOL), in ALPN's wire form: its length, then the name. */
static const unsigned char tls_alpn_postgresql[] = "\x0apostgresql";
#define TLS_ALPN_POSTGRESQL_LEN (sizeof(tls_alpn_postgresql) - 1)

/* The app data of an SSL whose ALPN is an HTTP client's (wss's own TLS): not ours to judge. */
static const char tls_alpn_not_ours[] = "wss";

/*
 * As PostgreSQL 17's server: a client that offers ALPN gets "postgresql"
 * or, offering only other protocols (an HTTP client sent here by someone
 * else), a no_application_protocol alert that ends the handshake (RFC
 * 7301).  One that offers none is let through; the direct handshake
 * refuses it after (tls_alpn_is_postgresql), the SSLRequest one does not.
 */
static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                           const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    if (SSL_get_app_data(ssl) == tls_alpn_not_ours)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, outlen, tls_alpn_postgresql, TLS_ALPN_POSTGRESQL_LEN, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

bool tls_alpn_is_postgresql(const SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &p, &len);
    return p != NULL && len == TLS_ALPN_POSTGRESQL_LEN - 1 &&
           memcmp(p, tls_alpn_postgresql + 1, len) == 0;
}

void tls_alpn_skip(SSL *ssl)
{
    SSL_set_app_data(ssl, (void *)tls_alpn_not_ours);
}

SSL_CTX *tls_make_client_side_ctx(const char *cert_file, const char *key_file, char *err,
                                  size_t errcap)
{
    SSL_CTX *ctx = tls_new_ctx(TLS_server_method());
    if (ctx == NULL) {
        tls_errstr(err, errcap, "could not create TLS context", NULL);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tls_errstr(err, errcap, "could not load client_tls_cert_file", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        tls_errstr(err, errcap, "could not load client_tls_key_file", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_errstr(err, errcap, "client_tls_key_file does not match the certificate", key_file);
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"pgnear", 6);
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *tls_make_server_side_ctx(enum tls_server_mode mode, const char *ca_file,
                                  const char *cert_file, const char *key_file, char *err,
                                  size_t errcap)
{
    SSL_CTX *ctx = tls_new_ctx(TLS_client_method());
    if (ctx == NULL) {
        tls_errstr(err, errcap, "could not create TLS context", NULL);
        return NULL;
    }
    if (mode >= TLS_SERVER_VERIFY_CA) {
        if (ca_file == NULL || ca_file[0] == '\0') {
            snprintf(err, errcap, "server_tls = verify-ca or verify-full needs server_tls_ca_file");
            goto fail;
        }
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            tls_errstr(err, errcap, "could not load server_tls_ca_file", ca_file);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    /*
     * PostgreSQL offers one key exchange group, ssl_ecdh_curve (P-256 by
     * default), and OpenSSL's clients send their first key share for
     * X25519: the server then asks for another (a HelloRetryRequest), one
     * more round trip to every distant region.  P-256 first avoids it; the
     * others stay offered for servers set otherwise.
     */
    if (SSL_CTX_set1_groups_list(ctx, "P-256:X25519:P-384:X448:P-521") != 1)
        ERR_clear_error(); /* an OpenSSL without one of them: its defaults */
    if (cert_file != NULL && cert_file[0] != '\0') {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
            tls_errstr(err, errcap, "could not load server_tls_cert_file", cert_file);
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

bool tls_verify_clients(SSL_CTX *ctx, const char *ca_file, char *err, size_t errcap)
{
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        tls_errstr(err, errcap, "could not load client_tls_ca_file", ca_file);
        return false;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (names == NULL) {
        tls_errstr(err, errcap, "could not read the CA names of client_tls_ca_file", ca_file);
        return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* the context owns them now */
    /* A bad certificate fails the handshake, as with PostgreSQL; none at all is the login's. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return true;
}

/*
 * Only the lists of crl_file: a certificate there is not taken as a CA (as
 * X509_STORE_load_locations would take it), and a file with no list fails.
 */
static bool tls_load_crl_file(X509_STORE *store, const char *crl_file, char *err, size_t errcap)
{
    X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == NULL || X509_load_crl_file(lookup, crl_file, X509_FILETYPE_PEM) <= 0) {
        tls_errstr(err, errcap, "could not load client_tls_crl_file", crl_file);
        return false;
    }
    return true;
}

bool tls_check_client_crls(SSL_CTX *ctx, const char *crl_file, const char *crl_dir, char *err,
                           size_t errcap)
{
    bool file = crl_file != NULL && crl_file[0] != '\0',
         dir = crl_dir != NULL && crl_dir[0] != '\0';
    if (!file && !dir)
        return true;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    if (store == NULL) {
        tls_errstr(err, errcap, "could not load client_tls_crl_file", crl_file);
        return false;
    }
    if (file && !tls_load_crl_file(store, crl_file, err, errcap))
        return false;
    if (dir && X509_STORE_load_locations(store, NULL, crl_dir) != 1) {
        tls_errstr(err, errcap, "could not load client_tls_crl_dir", crl_dir);
        return false;
    }
    /* As PostgreSQL's ssl_crl_file: each certificate of a chain against its CA's list. */
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return true;
}

enum tls_client_cert tls_client_cert_cn(SSL *ssl, char *cn, size_t cncap)
{
    X509 *cert = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
    if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
        return TLS_CERT_NONE;
    X509_NAME *subject = X509_get_subject_name(cert);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0)
        return TLS_CERT_BAD_CN;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    bool ok = n >= 0 && (size_t)n < cncap && memchr(utf8, '\0', (size_t)n) == NULL;
    if (ok) {
        memcpy(cn, utf8, (size_t)n);
        cn[n] = '\0';
    }
    OPENSSL_free(utf8);
    return ok ? TLS_CERT_VERIFIED : TLS_CERT_BAD_CN;
}

/* verify-full: an IP literal is matched against IP SANs, anything else as a DNS name. */
static bool tls_set_expected_host(SSL *ssl, const char *host)
{
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1)
        return true;
    ERR_clear_error();
    if (SSL_set1_host(ssl, host) != 1)
        return false;
    SSL_set_tlsext_host_name(ssl, host);
    return true;
}

SSL *tls_new_server_ssl(SSL_CTX *ctx, int fd, enum tls_server_mode mode, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1 ||
        (mode == TLS_SERVER_VERIFY_FULL && !tls_set_expected_host(ssl, host))) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/*
 * The SSL of a client's connection (pgnear answers as the server side); NULL
 * when it cannot be made.
 */
SSL *tls_new_client_ssl(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}
