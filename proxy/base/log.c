/*
 * log.c — timestamped single-line log records to stderr or a file.
 *
 * Every record is formatted into a stack buffer and written with one
 * write(2) to a descriptor that stays the same for the life of the
 * process.  Reopening (SIGHUP, a new logfile) dup2()s the new file onto
 * that descriptor, so worker threads that are writing at that moment land
 * in the old or the new file, never in a closed one, and nothing leaks.
 * The sink and level are process settings taken from the command line and
 * the configuration; they are the only state here.
 */
#include "proxy/base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "protocol/clock.h"

static struct {
    int fd; /* -1: not opened yet, records go to stderr */
    atomic_int level;
} log_state = {-1, LOG_INFO};

static const char *const level_names[] = {"DEBUG", "LOG", "WARNING", "ERROR", "FATAL"};

/* The log's file descriptor: a close-on-exec copy of stderr, or path opened for appending. */
static int log_open_sink(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int log_open(const char *path, enum log_level level)
{
    int fd = log_open_sink(path);
    if (fd < 0)
        return -1;
    if (log_state.fd < 0) {
        log_state.fd = fd;
    } else {
        /* Atomic for concurrent writers: they see the old file or the new. */
        if (dup2(fd, log_state.fd) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        close(fd);
    }
    atomic_store_explicit(&log_state.level, (int)level, memory_order_relaxed);
    return 0;
}

/* The level is read on every record without a lock: an atomic, relaxed. */
void log_set_level(enum log_level level)
{
    atomic_store_explicit(&log_state.level, (int)level, memory_order_relaxed);
}

/* Closes the log file; records after it go to stderr. */
void log_close(void)
{
    if (log_state.fd >= 0)
        close(log_state.fd);
    log_state.fd = -1;
}

/* One write for the whole record, retried only for what was not written. */
static void log_write(const char *buf, size_t len)
{
    int fd = log_state.fd >= 0 ? log_state.fd : STDERR_FILENO;
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

bool log_wants(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&log_state.level, memory_order_relaxed);
}

void log_msg(enum log_level level, uint64_t client_id, const char *fmt, ...)
{
    if ((int)level < atomic_load_explicit(&log_state.level, memory_order_relaxed))
        return;
    struct timeval tv;
    struct tm tm;
    char ts[32], rec[2200];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    int head;
    if (client_id != 0)
        head = snprintf(rec, sizeof(rec), "%s.%03d UTC %s c%llu: ", ts, (int)(tv.tv_usec / 1000),
                        level_names[level], (unsigned long long)client_id);
    else
        head = snprintf(rec, sizeof(rec), "%s.%03d UTC %s ", ts, (int)(tv.tv_usec / 1000),
                        level_names[level]);
    if (head < 0 || (size_t)head >= sizeof(rec) - 2)
        return;
    va_list ap;
    va_start(ap, fmt);
    int body = vsnprintf(rec + head, sizeof(rec) - (size_t)head - 1, fmt, ap);
    va_end(ap);
    if (body < 0)
        return;
    size_t len = (size_t)head + (size_t)body;
    if (len > sizeof(rec) - 2)
        len = sizeof(rec) - 2;
    /* Keep one event on one line whatever the message carried. */
    for (char *p = rec + head; p < rec + len; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    rec[len++] = '\n';
    log_write(rec, len);
}

void log_progress(const char *prefix, void (*tell)(void *arg, const char *text), void *arg,
                  const char *fmt, va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    log_info(0, "%s: %s", prefix, text);
    if (tell != NULL)
        tell(arg, text);
}

/* A limiter that allows the first line at once. */
void log_limit_init(struct log_limit *l)
{
    pthread_mutex_init(&l->lock, NULL);
    l->window_start_ms = 0;
    l->lines = 0;
    l->left_out = 0;
}

/* The limiter owns only its mutex. */
void log_limit_destroy(struct log_limit *l)
{
    pthread_mutex_destroy(&l->lock);
}

bool log_limit_allow(struct log_limit *l, uint32_t burst, int64_t window_ms, uint64_t *left_out)
{
    int64_t now = monotonic_ms();
    pthread_mutex_lock(&l->lock);
    if (l->lines == 0 || now - l->window_start_ms >= window_ms) {
        l->window_start_ms = now;
        l->lines = 0;
    }
    bool allow = l->lines < burst;
    if (allow) {
        l->lines++;
        *left_out = l->left_out;
        l->left_out = 0;
    } else {
        l->left_out++;
    }
    pthread_mutex_unlock(&l->lock);
    return allow;
}
