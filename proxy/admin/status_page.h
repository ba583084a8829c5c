/*
 * status_page.h — the status page on metrics_addr: GET /status (one HTML
 * page, no external resources) and GET /status.json (the snapshot it
 * draws, refreshed by the page itself).
 */
#ifndef PGNEAR_PROXY_ADMIN_STATUS_PAGE_H
#define PGNEAR_PROXY_ADMIN_STATUS_PAGE_H


struct evhttp_request;
struct worker;

/* GET or HEAD /status: the page (its script asks for /status.json every few seconds). */
void status_page_serve_html(struct evhttp_request *req, struct worker *w);
/* GET or HEAD /status.json, on w's loop: waits for a snapshot of every worker as /metrics does. */
void status_page_serve_json(struct evhttp_request *req, struct worker *w);

#endif
