/*
 * log_syslog.c — syslog = on: each line log.c writes also goes to
 * syslog(3), under syslog_ident and syslog_facility.  The ident is kept in
 * one of two buffers, the one not in use written before openlog() points
 * syslog at it, so that a reload that renames it never changes the text a
 * line being sent at that moment reads.  A mutex orders the reloads; the
 * lines take syslog(3)'s own lock alone.
 */
#include "proxy/base/log_syslog.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

static const struct {
    const char *name;
    int facility;
} facilities[] = {
    {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

static struct {
    pthread_mutex_t lock;
    char ident[2][64];
    int current; /* the buffer openlog() was last given */
} log_syslog = {PTHREAD_MUTEX_INITIALIZER, {"", ""}, 0};

/* The facility's number, or -1. */
static int facility_of(const char *name)
{
    for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
        if (strcasecmp(name, facilities[i].name) == 0)
            return facilities[i].facility;
    return -1;
}

bool log_syslog_facility_known(const char *facility)
{
    return facility_of(facility) >= 0;
}

int log_syslog_configure(bool on, const char *ident, const char *facility)
{
    int fac = on ? facility_of(facility) : 0;
    pthread_mutex_lock(&log_syslog.lock);
    if (!on || fac < 0) {
        closelog();
    } else {
        int next = 1 - log_syslog.current;
        snprintf(log_syslog.ident[next], sizeof(log_syslog.ident[next]), "%s", ident);
        openlog(log_syslog.ident[next], LOG_PID | LOG_NDELAY, fac);
        log_syslog.current = next;
    }
    pthread_mutex_unlock(&log_syslog.lock);
    return fac < 0 ? -1 : 0;
}

void log_syslog_line(int level, const char *line, size_t len)
{
    /* enum log_level's order: DEBUG, LOG, WARNING, ERROR, FATAL. */
    static const int priorities[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT};
    int prio = level >= 0 && level < 5 ? priorities[level] : LOG_NOTICE;
    syslog(prio, "%.*s", (int)len, line);
}
