/*
 * prom_text.c — Prometheus' text format, the parts /metrics (metrics.c)
 * and the latency histograms (latency_report.c) share.
 */
#include "proxy/admin/prom_text.h"

#include <event2/buffer.h>

void prom_put_label_value(struct evbuffer *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(out, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, s, 1);
    }
}
