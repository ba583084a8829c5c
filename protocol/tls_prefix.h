/*
 * tls_prefix.h — bytes read off a connection before anyone knew they were
 * TLS (a direct ClientHello, PostgreSQL 17's sslnegotiation=direct, read
 * with the startup packet's reader) handed to OpenSSL ahead of the rest.
 */
#ifndef PGNEAR_PROTOCOL_TLS_PREFIX_H
#define PGNEAR_PROTOCOL_TLS_PREFIX_H

#include <stddef.h>

#include <openssl/ssl.h>

/*
 * Puts a copy of bytes[0..n) ahead of what ssl's read BIO gives (the socket
 * or the WebSocket below): OpenSSL reads them first, then the BIO's own.
 * Writes and controls pass through.  -1 when out of memory (ssl unchanged).
 */
int tls_prefix_push(SSL *ssl, const void *bytes, size_t n);

#endif
