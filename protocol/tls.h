/*
 * tls.h — OpenSSL contexts for both sides of the proxy.
 */
#ifndef PGNEAR_PROTOCOL_TLS_H
#define PGNEAR_PROTOCOL_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* server_tls modes, libpq's sslmode names. */
enum tls_server_mode {
    TLS_SERVER_DISABLE,
    TLS_SERVER_PREFER,
    TLS_SERVER_REQUIRE,
    TLS_SERVER_VERIFY_CA,
    TLS_SERVER_VERIFY_FULL,
};

/*
 * Context for accepting client TLS with pgnear's certificate (TLS 1.2+).
 * On failure returns NULL and writes why into err.
 */
SSL_CTX *tls_make_client_side_ctx(const char *cert_file, const char *key_file, char *err,
                                  size_t errcap);

/*
 * Whether the client's handshake chose ALPN "postgresql", the protocol
 * PostgreSQL 17 requires of a direct TLS handshake (sslnegotiation=direct).
 * The context of tls_make_client_side_ctx picks it whenever offered, and
 * fails a handshake that offers ALPN without it.
 */
bool tls_alpn_is_postgresql(const SSL *ssl);

/* The ALPN of ssl's client is left alone (wss's own TLS: a browser offers http/1.1). */
void tls_alpn_skip(SSL *ssl);

/*
 * Asks clients for a certificate and verifies one given against ca_file's
 * CAs; a client that gives none is still let through the handshake (the
 * login decides: tls_client_cert_cn).  false with why in err.
 */
bool tls_verify_clients(SSL_CTX *ctx, const char *ca_file, char *err, size_t errcap);

/*
 * Checks client certificates against the revocation lists of crl_file
 * and (hashed, as openssl rehash names them) crl_dir, either NULL or ""
 * for none, as PostgreSQL's ssl_crl_file and ssl_crl_dir: once any is
 * given, every certificate of a chain needs its CA's list, and a revoked
 * one fails the handshake.  After tls_verify_clients.  false with why in err.
 */
bool tls_check_client_crls(SSL_CTX *ctx, const char *crl_file, const char *crl_dir, char *err,
                           size_t errcap);

/* What a client's certificate says of it (tls_client_cert_cn). */
enum tls_client_cert {
    TLS_CERT_NONE,    /* no certificate given (or no TLS) */
    TLS_CERT_BAD_CN,  /* verified, but its CN is missing, repeated, too long or holds a NUL */
    TLS_CERT_VERIFIED /* verified against client_tls_ca_file: cn holds its common name */
};

/* The verified client certificate's common name into cn (NUL-terminated). */
enum tls_client_cert tls_client_cert_cn(SSL *ssl, char *cn, size_t cncap);

/* Context for connecting to servers; ca_file may be NULL below verify-ca. */
SSL_CTX *tls_make_server_side_ctx(enum tls_server_mode mode, const char *ca_file,
                                  const char *cert_file, const char *key_file, char *err,
                                  size_t errcap);

/*
 * A new SSL for one server connection; for verify-full the host (name or
 * IP literal) is checked against the certificate.
 */
SSL *tls_new_server_ssl(SSL_CTX *ctx, int fd, enum tls_server_mode mode, const char *host);

SSL *tls_new_client_ssl(SSL_CTX *ctx, int fd);

#endif
