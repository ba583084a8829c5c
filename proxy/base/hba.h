/*
 * hba.h — auth_hba_file: pg_hba.conf's syntax, read into lines, and the
 * first line that a connection matches.
 *
 * What pgnear can judge at login is kept; what it cannot (role
 * membership, host names, ident maps, methods it does not speak) is
 * refused at load with the line named, never silently matched.
 */
#ifndef PGNEAR_PROXY_HBA_H
#define PGNEAR_PROXY_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "routing/cidr.h"

/* The longest token (a name, an address, an option) pgnear reads; PostgreSQL's names are shorter.
 */
#define HBA_TOKEN_MAX 256
/* The longest file a line includes with @name; it may not include another. */
#define HBA_INCLUDE_TEXT_MAX (1024 * 1024)

enum hba_conn { HBA_LOCAL, HBA_HOST, HBA_HOSTSSL, HBA_HOSTNOSSL };
enum hba_method { HBA_METHOD_SCRAM, HBA_METHOD_CERT, HBA_METHOD_TRUST, HBA_METHOD_REJECT };
/* clientcert= on a hostssl line that is not cert: a verified certificate, its CN the user too. */
enum hba_clientcert { HBA_CLIENTCERT_NONE, HBA_CLIENTCERT_VERIFY_CA, HBA_CLIENTCERT_VERIFY_FULL };
enum hba_name_kind { HBA_NAME_EXACT, HBA_NAME_ALL, HBA_NAME_SAMEUSER };

/* Return codes of hba_parse and hba_load. */
enum {
    HBA_OK = 0,
    HBA_ESYNTAX = -1,      /* a malformed line */
    HBA_EUNSUPPORTED = -2, /* well formed, but something pgnear cannot judge */
    HBA_ENOMEM = -3,
    HBA_EFILE = -4, /* the file, or a file a line includes, cannot be read */
};

struct hba_name {
    enum hba_name_kind kind;
    char *name; /* HBA_NAME_EXACT only */
};

struct hba_line {
    int line; /* in the file, from 1; the first of a continued line */
    enum hba_conn conn;
    struct hba_name *databases;
    size_t n_databases;
    struct hba_name *users;
    size_t n_users;
    bool any_address; /* local, or "all" */
    struct cidr address;
    enum hba_method method;
    enum hba_clientcert clientcert;
};

struct hba_file {
    struct hba_line *lines;
    size_t count;
};

struct hba_error {
    int line; /* 0: not a line's (the file itself) */
    char why[320];
};

/*
 * A file that a line's @name includes: its text, malloc'd, into *text and
 * *len; false, with why, when it cannot be read.
 */
typedef bool (*hba_include_fn)(void *arg, const char *name, char **text, size_t *len, char *why,
                               size_t whycap);

/*
 * Parses len bytes of text (no terminator needed) into out, which the
 * caller frees with hba_free whatever the result.  include may be NULL: a
 * @file is then refused.  On an error, err says which line and why.
 */
int hba_parse(const char *text, size_t len, hba_include_fn include, void *arg, struct hba_file *out,
              struct hba_error *err);

/*
 * Reads and parses path, @files relative to its folder; err: "FILE:LINE:
 * why".  A file without a line is refused too, as PostgreSQL refuses it.
 */
int hba_load(const char *path, struct hba_file *out, char *err, size_t errcap);

/* Frees what hba_parse or hba_load read; f may be read into again. */
void hba_free(struct hba_file *f);

/* A connection as the lines are matched against it. */
struct hba_request {
    const char *database;
    const char *user;
    const struct sockaddr *addr; /* NULL: the Unix socket (local) */
    bool tls;                    /* TLS, a wss connection's too */
};

/* The first line r matches, or NULL: no line does. */
const struct hba_line *hba_match(const struct hba_file *f, const struct hba_request *r);

/* The method as pg_hba.conf spells it, for the log. */
const char *hba_method_name(enum hba_method m);

/* Whether a line of f uses method m (the checks at load: a source of secrets, a CA). */
bool hba_uses_method(const struct hba_file *f, enum hba_method m);

/* Whether a line of f asks for a client certificate (cert, or clientcert=). */
bool hba_uses_certificates(const struct hba_file *f);

#endif
