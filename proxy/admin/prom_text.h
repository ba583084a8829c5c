/*
 * prom_text.h — what /metrics and the latency report both write in
 * Prometheus' text format.
 */
#ifndef PGNEAR_PROXY_ADMIN_PROM_TEXT_H
#define PGNEAR_PROXY_ADMIN_PROM_TEXT_H

struct evbuffer;

/* Writes s as a label value: backslash, double quote and newline escaped. */
void prom_put_label_value(struct evbuffer *out, const char *s);

#endif
