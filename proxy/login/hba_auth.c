/*
 * hba_auth.c — auth = hba and auth = cert at the login (hba_auth.h): the
 * refusals in PostgreSQL's words, and the file and line in pgnear's log.
 */
#include "proxy/login/hba_auth.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "protocol/tls.h"
#include "proxy/base/config.h"
#include "proxy/base/hba.h"
#include "proxy/base/log.h"
#include "proxy/session/session_log.h"

/* The caller's address as PostgreSQL names it in these errors: the IP alone, or [local]. */
static void hba_auth_host(const struct session *s, char *host, size_t cap)
{
    if (s->unix_socket || getnameinfo((const struct sockaddr *)&s->addr, sizeof(s->addr), host,
                                      (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(host, cap, "[local]");
}

/* Whether the client is on TLS, a wss connection's included: hostssl's test. */
static bool hba_auth_tls(const struct session *s)
{
    return s->client_tls || s->websocket_tls;
}

/* No line, or a reject line (line > 0): 28000 as PostgreSQL words it. */
static bool hba_auth_refuse(struct session *s, int line)
{
    char host[64], msg[512];
    const struct startup_packet *sp = &s->login->startup;
    hba_auth_host(s, host, sizeof(host));
    snprintf(msg, sizeof(msg), "%s for host \"%s\", user \"%s\", database \"%s\", %s",
             line > 0 ? "pg_hba.conf rejects connection" : "no pg_hba.conf entry", host, sp->user,
             sp->database, hba_auth_tls(s) ? "SSL encryption" : "no encryption");
    if (line > 0)
        slog_info(s, "%s:%d: %s", s->cfg->auth_hba_file, line, msg);
    else
        slog_info(s, "%s: no line matches: %s", s->cfg->auth_hba_file, msg);
    session_fail_msg(s, "28000", "%s", msg);
    return false;
}

/*
 * The client's certificate, where the line asks for one: verified, and
 * for verify-full (cert itself) its CN the user name.  where names the
 * line (or auth = cert) in the log.
 */
static bool hba_auth_certificate(struct session *s, enum hba_clientcert want, bool cert_method,
                                 const char *where)
{
    char cn[256];
    const char *user = s->login->startup.user;
    SSL *ssl = s->client_tls                                     ? s->client.stream.ssl
               : s->websocket_tls && s->client.stream.ws != NULL ? ws_tls(s->client.stream.ws)
                                                                 : NULL;
    enum tls_client_cert got = tls_client_cert_cn(ssl, cn, sizeof(cn));
    if (got == TLS_CERT_NONE) {
        slog_info(s, "%s: user \"%s\" gave no verified client certificate", where, user);
        session_fail_msg(s, "28000", "connection requires a valid client certificate");
        return false;
    }
    if (want != HBA_CLIENTCERT_VERIFY_FULL)
        return true;
    if (got == TLS_CERT_VERIFIED && strcmp(cn, user) == 0) {
        slog_debug(s, "%s: certificate CN matches user \"%s\"", where, user);
        return true;
    }
    if (got == TLS_CERT_BAD_CN)
        slog_info(s, "%s: the certificate of user \"%s\" has no single usable CN", where, user);
    else
        slog_info(s, "%s: provided user name (%s) and authenticated user name (%s) do not match",
                  where, user, cn);
    if (cert_method)
        session_fail_msg(s, "28000", "certificate authentication failed for user \"%s\"", user);
    else
        session_fail_msg(s, "28000",
                         "certificate validation (clientcert=verify-full) failed for user \"%s\": "
                         "CN mismatch",
                         user);
    return false;
}

/*
 * auth_hba_file's first line for this connection: none or reject refuses
 * it; a client certificate checked where the line asks; then who
 * authenticates: pgnear's SCRAM for scram-sha-256, else the server,
 * relayed (trust, cert).
 */
static bool hba_auth_by_file(struct session *s)
{
    const struct startup_packet *sp = &s->login->startup;
    struct hba_request r = {sp->database, sp->user,
                            s->unix_socket ? NULL : (const struct sockaddr *)&s->addr,
                            hba_auth_tls(s)};
    const struct hba_line *l = hba_match(&s->cfg->hba, &r);
    if (l == NULL || l->method == HBA_METHOD_REJECT)
        return hba_auth_refuse(s, l != NULL ? l->line : 0);
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", s->cfg->auth_hba_file, l->line);
    if (l->clientcert != HBA_CLIENTCERT_NONE &&
        !hba_auth_certificate(s, l->clientcert, l->method == HBA_METHOD_CERT, where))
        return false;
    s->login->relay_auth = l->method != HBA_METHOD_SCRAM;
    slog_debug(s, "%s: %s", where, hba_method_name(l->method));
    return true;
}

bool hba_auth_admit(struct session *s)
{
    switch ((enum auth_mode)s->cfg->auth) {
    case AUTH_HBA:
        return hba_auth_by_file(s);
    case AUTH_CERT:
        s->login->relay_auth = true;
        return hba_auth_certificate(s, HBA_CLIENTCERT_VERIFY_FULL, true, "auth = cert");
    case AUTH_SCRAM:
    case AUTH_PASSTHROUGH:
        break;
    }
    return true;
}

bool hba_auth_by_pgnear(const struct session *s)
{
    return s->login->for_console || (s->cfg->auth != AUTH_PASSTHROUGH && !s->login->relay_auth);
}
