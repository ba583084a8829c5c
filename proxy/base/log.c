/*
 * log.c — timestamped single-line log records to stderr or a file, as text
 * or JSON, and to syslog besides.
 *
 * Every record is formatted into a stack buffer and written with one
 * write(2) to a descriptor that stays the same for the life of the
 * process.  Reopening (SIGHUP, a new logfile) dup2()s the new file onto
 * that descriptor, so worker threads that are writing at that moment land
 * in the old or the new file, never in a closed one, and nothing leaks.
 * Each line is today's text or one JSON object (log_format), formatted on
 * the stack: nothing is allocated per line.  The sink, level, format and
 * syslog switch are process settings taken from the command line and the
 * configuration; with the logging thread's worker index they are the only
 * state here.
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
#include "protocol/json_out.h"
#include "proxy/base/log_syslog.h"

static struct {
    int fd; /* -1: not opened yet, records go to stderr */
    atomic_int level;
    atomic_int format;  /* enum log_format */
    atomic_bool syslog; /* each line also to syslog(3) (log_syslog.c) */
} log_state = {-1, LOG_INFO, LOG_FORMAT_TEXT, false};

/* The worker whose thread logs (log_set_thread_worker); -1 on the other threads. */
static __thread int log_thread_worker = -1;

/* A record's largest size: a message of 2 KB with every byte escaped fits whole. */
#define LOG_RECORD_MAX 16384

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

void log_set_format(enum log_format format)
{
    atomic_store_explicit(&log_state.format, (int)format, memory_order_relaxed);
}

enum log_format log_get_format(void)
{
    return (enum log_format)atomic_load_explicit(&log_state.format, memory_order_relaxed);
}

int log_set_syslog(bool on, const char *ident, const char *facility)
{
    int rc = log_syslog_configure(on, ident, facility);
    atomic_store_explicit(&log_state.syslog, on && rc == 0, memory_order_relaxed);
    return rc;
}

void log_set_thread_worker(int index)
{
    log_thread_worker = index;
}

/* A piece of a record appended to buf (cap bytes) at *len; left out whole when it does not fit. */
static void rec_put(char *buf, size_t cap, size_t *len, const char *piece)
{
    size_t n = strlen(piece);
    if (*len + n < cap) {
        memcpy(buf + *len, piece, n);
        *len += n;
    }
}

/* ,"key":"value" with value escaped; nothing when value is NULL. */
static void rec_put_string(char *buf, size_t cap, size_t *len, const char *key, const char *value)
{
    if (value == NULL || *len + strlen(key) + 8 >= cap)
        return;
    rec_put(buf, cap, len, ",\"");
    rec_put(buf, cap, len, key);
    rec_put(buf, cap, len, "\":\"");
    *len += json_out_escape(buf + *len, cap - *len - 2, value, strlen(value), 0);
    rec_put(buf, cap, len, "\"");
}

/*
 * The JSON object of a line into rec (cap bytes, room kept for the newline):
 * time (RFC 3339, microseconds, UTC), level, pid, worker, then what f names,
 * then the message.
 */
static size_t log_json_record(char *rec, size_t cap, enum log_level level,
                              const struct log_fields *f, const struct timeval *tv, const char *msg,
                              size_t msglen)
{
    struct tm tm;
    char ts[32], num[96];
    gmtime_r(&tv->tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    size_t len = 0;
    snprintf(num, sizeof(num), "{\"time\":\"%s.%06ldZ\",\"level\":\"%s\",\"pid\":%d", ts,
             (long)tv->tv_usec, level_names[level], (int)getpid());
    rec_put(rec, cap, &len, num);
    if (log_thread_worker >= 0) {
        snprintf(num, sizeof(num), ",\"worker\":%d", log_thread_worker);
        rec_put(rec, cap, &len, num);
    }
    if (f != NULL && f->client_id != 0) {
        snprintf(num, sizeof(num), ",\"session_id\":%llu", (unsigned long long)f->client_id);
        rec_put(rec, cap, &len, num);
    }
    if (f != NULL) {
        rec_put_string(rec, cap, &len, "client_addr", f->client_addr);
        rec_put_string(rec, cap, &len, "region", f->region);
        rec_put_string(rec, cap, &len, "host", f->host);
        rec_put_string(rec, cap, &len, "sqlstate", f->sqlstate);
    }
    rec_put(rec, cap, &len, ",\"message\":\"");
    /* Room for the closing quote and brace whatever the message. */
    len += json_out_escape(rec + len, cap - len - 2, msg, msglen, 0);
    rec[len++] = '"';
    rec[len++] = '}';
    return len;
}

/* Today's text line: "2026-11-28 08:33:05.123 UTC LOG c12: message". */
static size_t log_text_record(char *rec, size_t cap, enum log_level level,
                              const struct log_fields *f, const struct timeval *tv, const char *msg,
                              size_t msglen)
{
    struct tm tm;
    char ts[32];
    gmtime_r(&tv->tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    int head;
    if (f != NULL && f->client_id != 0)
        head = snprintf(rec, cap, "%s.%03d UTC %s c%llu: ", ts, (int)(tv->tv_usec / 1000),
                        level_names[level], (unsigned long long)f->client_id);
    else
        head = snprintf(rec, cap, "%s.%03d UTC %s ", ts, (int)(tv->tv_usec / 1000),
                        level_names[level]);
    if (head < 0 || (size_t)head >= cap)
        return 0;
    size_t n = msglen < cap - (size_t)head ? msglen : cap - (size_t)head;
    memcpy(rec + head, msg, n);
    return (size_t)head + n;
}

void log_vat(enum log_level level, const struct log_fields *f, const char *fmt, va_list ap)
{
    if ((int)level < atomic_load_explicit(&log_state.level, memory_order_relaxed))
        return;
    struct timeval tv;
    char msg[2048], rec[LOG_RECORD_MAX];
    gettimeofday(&tv, NULL);
    int body = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (body < 0)
        return;
    size_t msglen = (size_t)body < sizeof(msg) ? (size_t)body : sizeof(msg) - 1;
    /* Keep one event on one line whatever the message carried. */
    for (size_t i = 0; i < msglen; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    bool json = atomic_load_explicit(&log_state.format, memory_order_relaxed) == LOG_FORMAT_JSON;
    size_t len = json ? log_json_record(rec, sizeof(rec) - 1, level, f, &tv, msg, msglen)
                      : log_text_record(rec, sizeof(rec) - 1, level, f, &tv, msg, msglen);
    if (len == 0)
        return;
    rec[len++] = '\n';
    log_write(rec, len);
    if (atomic_load_explicit(&log_state.syslog, memory_order_relaxed)) {
        /* syslog stamps its own time: the text line goes without the stamp, JSON whole. */
        const char *start = rec;
        if (!json && (start = strstr(rec, " UTC ")) != NULL)
            start += 5;
        log_syslog_line((int)level, start != NULL ? start : rec,
                        len - 1 - (size_t)(start != NULL ? start - rec : 0));
    }
}

void log_at(enum log_level level, const struct log_fields *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vat(level, f, fmt, ap);
    va_end(ap);
}

void log_msg(enum log_level level, uint64_t client_id, const char *fmt, ...)
{
    struct log_fields f = {.client_id = client_id};
    va_list ap;
    va_start(ap, fmt);
    log_vat(level, &f, fmt, ap);
    va_end(ap);
}

void log_server_notice(void *what, const char *message)
{
    size_t len = strlen(message);
    while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
        len--;
    log_info(0, "%s: %.*s", (const char *)what, (int)len, message);
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
