/*
 * fuzz_daemon.h
 *    A whole pgnear in the fuzzer's process, as fuzz_login and fuzz_server
 *    run it: free loopback ports to configure, the daemon started from a
 *    configuration file on a thread of its own, its liveness (a worker that
 *    answers GET /healthz runs its loop), SCRAM keys for the clients'
 *    password, and the run's directory removed at a normal exit.  who names
 *    the target in what these print.
 */
#ifndef PGNEAR_TESTS_FUZZ_DAEMON_H
#define PGNEAR_TESTS_FUZZ_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_KEY_LEN 32

struct config;

/* Prints "who: message" and aborts: the finding. */
void fuzz_fail(const char *who, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

/* A loopback port below the ephemeral ones, free now and none of taken's. */
int fuzz_pick_port(const char *who, const int *taken, int ntaken);

/* Loads path (every problem printed) and runs pgnear on it on a thread of its own; its config. */
struct config *fuzz_daemon_start(const char *who, const char *path);

/* GET /healthz on 127.0.0.1:port: whether any HTTP answer came within ms. */
bool fuzz_healthz(int port, int ms);

/* A few tries of fuzz_healthz (a worker may be busy a moment), else the finding: a worker hangs. */
void fuzz_check_alive(const char *who, int port, int ms);

/*
 * password's SCRAM-SHA-256 keys with salt and iterations, and the verifier
 * (SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey) pgnear checks them against.
 */
void fuzz_scram_keys(const char *who, const char *password, const uint8_t *salt, size_t salt_len,
                     int iterations, uint8_t client_key[FUZZ_KEY_LEN],
                     uint8_t stored_key[FUZZ_KEY_LEN], char *verifier, size_t cap);

/* The files of dir, then dir (not its subdirectories: the targets write none). */
void fuzz_remove_dir(const char *dir);

#endif
