/*
 * fuzz_daemon.c
 *    A whole pgnear in the fuzzer's process (fuzz_daemon.h).
 */
#include "tests/fuzz/fuzz_daemon.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/daemon.h"
#include "tests/fuzz/fuzz_bytes.h"

void fuzz_fail(const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", who);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static struct sockaddr_in loopback(int port)
{
    return (struct sockaddr_in){.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

static bool port_free(const char *who, int port)
{
    struct sockaddr_in sa = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fuzz_fail(who, "socket: %s", strerror(errno));
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Below the ephemeral ports, so that no connection of this process lands on one by chance. */
int fuzz_pick_port(const char *who, const int *taken, int ntaken)
{
    for (int tries = 0; tries < 5000; tries++) {
        int port = 20000 + rand() % 12000;
        bool dup = false;
        for (int i = 0; i < ntaken; i++)
            dup |= taken[i] == port;
        if (!dup && port_free(who, port))
            return port;
    }
    fuzz_fail(who, "no free port below 32000");
}

static void *daemon_thread(void *arg)
{
    daemon_run(arg, LOG_DEBUG, false);
    fuzz_fail("fuzz", "the daemon stopped");
}

struct config *fuzz_daemon_start(const char *who, const char *path)
{
    struct config_problems problems;
    pthread_t thread;
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ALL, &problems);
    if (cfg == NULL) {
        for (int i = 0; i < problems.count; i++)
            fprintf(stderr, "%s: %s\n", who, problems.items[i]);
        fuzz_fail(who, "could not load %s", path);
    }
    if (log_open(cfg->logfile, LOG_DEBUG) != 0)
        fuzz_fail(who, "could not open the log");
    /* daemon_run takes cfg over; the daemon keeps it until it stops (never, here). */
    if (pthread_create(&thread, NULL, daemon_thread, cfg) != 0)
        fuzz_fail(who, "could not start the daemon's thread");
    pthread_detach(thread);
    return cfg;
}

bool fuzz_healthz(int port, int ms)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n";
    char buf[256];
    size_t n = 0;
    int64_t until = now_ms() + ms;
    struct sockaddr_in sa = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool sent = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(req) - 1);
    while (sent && n < 9) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int64_t left = until - now_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, sizeof(buf) - n, 0);
        if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR)))
            break;
        n += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    return n >= 9 && memcmp(buf, "HTTP/1.1 ", 9) == 0;
}

void fuzz_check_alive(const char *who, int port, int ms)
{
    for (int i = 0; i < 3; i++)
        if (fuzz_healthz(port, ms))
            return;
    fuzz_fail(who, "pgnear does not answer GET /healthz on port %d: a worker hangs", port);
}

void fuzz_scram_keys(const char *who, const char *password, const uint8_t *salt, size_t salt_len,
                     int iterations, uint8_t client_key[FUZZ_KEY_LEN],
                     uint8_t stored_key[FUZZ_KEY_LEN], char *verifier, size_t cap)
{
    uint8_t salted[FUZZ_KEY_LEN], server_key[FUZZ_KEY_LEN];
    char salt64[4 * 64], stored64[64], server64[64];
    unsigned len = 0;
    if (salt_len > 3 * 64 - 3 ||
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations,
                          EVP_sha256(), FUZZ_KEY_LEN, salted) != 1 ||
        HMAC(EVP_sha256(), salted, FUZZ_KEY_LEN, (const uint8_t *)"Client Key", 10, client_key,
             &len) == NULL ||
        HMAC(EVP_sha256(), salted, FUZZ_KEY_LEN, (const uint8_t *)"Server Key", 10, server_key,
             &len) == NULL ||
        SHA256(client_key, FUZZ_KEY_LEN, stored_key) == NULL)
        fuzz_fail(who, "could not derive the SCRAM keys");
    EVP_EncodeBlock((unsigned char *)salt64, salt, (int)salt_len);
    EVP_EncodeBlock((unsigned char *)stored64, stored_key, FUZZ_KEY_LEN);
    EVP_EncodeBlock((unsigned char *)server64, server_key, FUZZ_KEY_LEN);
    snprintf(verifier, cap, "SCRAM-SHA-256$%d:%s$%s:%s", iterations, salt64, stored64, server64);
}

void fuzz_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}
