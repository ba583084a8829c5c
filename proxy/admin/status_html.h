/*
 * status_html.h — the status page's HTML (status_html.c, made from
 * status_page.html by scripts/gen-status-html.pl), which status_page.c serves.
 */
#ifndef PGNEAR_PROXY_ADMIN_STATUS_HTML_H
#define PGNEAR_PROXY_ADMIN_STATUS_HTML_H

/* The page itself: a NUL-terminated HTML document with its script and style inline. */
extern const char status_page_html[];

#endif
