/*
 * log.c — timestamped single-line log records to stderr or a file.
 *
 * The sink and level are process settings taken from the command line and
 * the configuration; they are the only state here.
 */
#include "proxy/log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static struct {
    FILE *out;
    enum log_level level;
} log_state = {NULL, LOG_INFO};

static const char *const level_names[] = {"DEBUG", "LOG", "WARNING", "ERROR", "FATAL"};

int log_open(const char *path, enum log_level level)
{
    FILE *f = stderr;
    if (path != NULL && path[0] != '\0') {
        f = fopen(path, "a");
        if (f == NULL)
            return -1;
        setvbuf(f, NULL, _IOLBF, 0);
    }
    if (log_state.out != NULL && log_state.out != stderr)
        fclose(log_state.out);
    log_state.out = f;
    log_state.level = level;
    return 0;
}

void log_set_level(enum log_level level)
{
    log_state.level = level;
}

void log_close(void)
{
    if (log_state.out != NULL && log_state.out != stderr)
        fclose(log_state.out);
    log_state.out = NULL;
}

void log_msg(enum log_level level, uint64_t client_id, const char *fmt, ...)
{
    if (level < log_state.level)
        return;
    FILE *out = log_state.out ? log_state.out : stderr;
    struct timeval tv;
    struct tm tm;
    char ts[32], line[2048];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Keep one event on one line whatever the message carried. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (client_id != 0)
        fprintf(out, "%s.%03d UTC %s c%llu: %s\n", ts, (int)(tv.tv_usec / 1000), level_names[level],
                (unsigned long long)client_id, line);
    else
        fprintf(out, "%s.%03d UTC %s %s\n", ts, (int)(tv.tv_usec / 1000), level_names[level], line);
}
