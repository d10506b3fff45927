/* net.h - what the network destinations share (src/dest/net.c): URL parsing with the
 * password kept out of every message, credentials, libcurl defaults (TLS, timeouts),
 * retry with backoff, and readable libcurl/HTTP errors. */
#ifndef COLDCLONE_NET_H
#define COLDCLONE_NET_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "dest.h"

struct url {
	char *scheme;   /* lower case: "https" */
	char *user;     /* decoded, or NULL */
	char *password; /* decoded, or NULL; never printed */
	char *host;     /* without brackets for IPv6 */
	int port;       /* 0 = scheme default */
	char *path;     /* decoded, starts with '/' ("/" when empty) */
	char *query;    /* raw, without '?', or NULL */
	char *display;  /* the URL as printed in messages: no password, no query secrets */
};

/* Parse scheme://[user[:password]@]host[:port][/path][?query]. On error prints what is
 * wrong with the URL (shown without its password) and returns -1. */
int url_parse(const char *text, struct url *u);
void url_free(struct url *u);
/* text with any "user:password@" reduced to "user@" (malloc'd); for logs of raw URLs. */
char *url_redact(const char *text);
/* The URL without credentials and with path re-encoded, for libcurl (malloc'd):
 * scheme://host[:port]/encoded-path[?query]. path overrides u->path when not NULL. */
char *url_for_curl(const struct url *u, const char *path);
/* Percent-encode a path, keeping '/' (malloc'd). */
char *url_encode_path(const char *path);

/* Fill u->password if the URL has none: --password-file, then $COLDCLONE_PASSWORD, then
 * an interactive prompt on /dev/tty (when there is one). required=false leaves it NULL
 * when nothing is given (key-based SFTP). Returns -1 with a message when required and
 * none can be had. */
int net_password(struct url *u, const struct dest_options *o, bool required);

/* A libcurl easy handle with our defaults: CA bundle of the image (+ --ca-file), or no
 * verification with --insecure; connect and low-speed timeouts from o->timeout; no signals;
 * a User-Agent naming coldclone. Exits the program on out-of-memory. */
CURL *net_curl(const struct dest_options *o);
/* Wait before reconnect attempt `attempt` (1-based): 1, 2, 4 ... 30 s, and say why.
 * Returns -1 (with an error naming what and display) when attempts exceed o->retries. */
int net_backoff(const struct dest_options *o, unsigned attempt, const char *display, const char *why);
/* Transfer errors worth a reconnect: connection refused/reset/dropped, timeouts, HTTP 5xx
 * or 408/429 (http_code 0 when the transfer failed before a reply). */
bool net_retryable(CURLcode rc, long http_code);
/* One line describing a failed transfer: libcurl's message or the HTTP status, with advice
 * for the usual cases (401/403 credentials, 404 path, 507 space, TLS verification). */
const char *net_describe(CURLcode rc, long http_code, const char *curl_errbuf, char *buf, size_t len);

/* libcurl write callback that feeds a download into an EVP_MD_CTX (the opaque pointer):
 * --verify reads an image back through it. */
size_t net_hash_body(char *data, size_t size, size_t n, void *md_ctx);

/* Make sure the libcurl global state is initialised (once, thread-safe enough for our
 * single-threaded prepare stage). */
void net_global_init(void);

#endif
