/*
 * status_page.h — the status page on metrics_addr: GET /status (one HTML
 * page, no external resources) and GET /status.json (the snapshot it
 * draws, refreshed by the page itself).
 */
#ifndef PGNEAR_PROXY_ADMIN_STATUS_PAGE_H
#define PGNEAR_PROXY_ADMIN_STATUS_PAGE_H

#include <stdbool.h>

struct evhttp_request;
struct worker;

/*
 * Answers req when path is /status or /status.json (true), on w's loop:
 * the JSON waits for a snapshot of every worker as /metrics does.  false:
 * not ours, req untouched.
 */
bool status_page_serve(struct worker *w, struct evhttp_request *req, const char *path);

#endif
