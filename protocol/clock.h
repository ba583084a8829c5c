/*
 * clock.h — the clocks pgnear reads.
 *
 * Durations, timeouts and ages are measured on the monotonic clock, which
 * no change of the system's time moves.  The wall clock (Unix time) is for
 * what is shown as a time of day as well: a server connection's
 * connect_time, which SHOW SERVERS prints, and the times measured from
 * it.  Inline: the relay reads a clock on every answer.
 */
#ifndef PGNEAR_PROTOCOL_CLOCK_H
#define PGNEAR_PROTOCOL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Unix time in microseconds. */
static inline int64_t wall_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
