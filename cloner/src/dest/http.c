/* http.c - http:// and https:// destinations: WebDAV servers (nginx, Apache, IIS), plain
 * HTTP PUT endpoints, and vSphere datastores (https://HOST/folder/PATH?dcPath=&dsName=).
 *
 * WebDAV: missing folders are made with MKCOL, the image goes to NAME.partial and is
 * MOVEd to NAME after the last byte was accepted and its size checked; the manifest is
 * PUT last, so its presence means the image is complete. Servers without WebDAV and
 * vSphere's datastore file API (PUT, GET, DELETE only) get the image under its final
 * name, deleted again on failure, and the manifest last. The body is streamed with
 * chunked encoding (the compressed size is not known in advance) through upstream.c. */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dest.h"
#include "net.h"
#include "upstream.h"
#include "util.h"

#define HTTP_RING_SIZE (32u << 20)

struct http_dest {
	struct url url;
	const struct dest_options *opts;
	bool webdav;           /* server answered OPTIONS with a DAV header */
	bool vsphere;          /* datastore file URL: basic auth, session cookie */
	char *final_url;       /* for libcurl, no credentials */
	char *upload_url;      /* NAME.partial (WebDAV) or the final URL */
	char *cookies;         /* vSphere session cookie jar (in memory: "" enables it) */
	struct upstream *up;
	bool uploaded;         /* something may exist at upload_url */
	bool moved;            /* the image sits under its final name */
};

/* ---- small synchronous requests ---------------------------------------------------- */

struct reply {
	char *body;
	size_t len;
	bool dav;              /* DAV: header seen */
	int64_t length;        /* Content-Length, -1 if none */
};

static size_t collect_body(char *data, size_t size, size_t n, void *opaque)
{
	struct reply *r = opaque;
	size_t add = size * n;
	if (r->len + add > (1u << 20))  /* a reply we need is small; ignore the rest */
		return add;
	r->body = xrealloc(r->body, r->len + add + 1);
	memcpy(r->body + r->len, data, add);
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t collect_header(char *data, size_t size, size_t n, void *opaque)
{
	struct reply *r = opaque;
	size_t len = size * n;
	if (len >= 4 && strncasecmp(data, "DAV:", 4) == 0)
		r->dav = true;
	return len;
}

static void apply_auth(struct http_dest *h, CURL *c)
{
	if (h->url.user) {
		curl_easy_setopt(c, CURLOPT_USERNAME, h->url.user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, h->url.password ? h->url.password : "");
		/* vSphere takes basic; others may want digest: libcurl picks from the 401. */
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, h->vsphere ? CURLAUTH_BASIC : CURLAUTH_BASIC | CURLAUTH_DIGEST);
	}
	if (h->vsphere)
		curl_easy_setopt(c, CURLOPT_COOKIELIST, h->cookies ? h->cookies : "");
}

/* Keep vSphere's session cookie so later requests reuse the session. */
static void keep_cookies(struct http_dest *h, CURL *c)
{
	if (!h->vsphere)
		return;
	struct curl_slist *list = NULL;
	if (curl_easy_getinfo(c, CURLINFO_COOKIELIST, &list) == CURLE_OK && list) {
		free(h->cookies);
		h->cookies = xstrdup(list->data);
	}
	curl_slist_free_all(list);
}

/* One request with retries on network errors and 5xx. Returns the HTTP status, or -1
 * (error printed) when no answer could be had. */
static long request(struct http_dest *h, const char *method, const char *url, struct curl_slist *headers,
		    const void *body, size_t body_len, struct reply *r)
{
	char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 160];
	for (unsigned attempt = 1;; attempt++) {
		*r = (struct reply){ .length = -1 };
		CURL *c = net_curl(h->opts);
		errbuf[0] = '\0';
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		if (strcmp(method, "HEAD") == 0)
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		if (body) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		}
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
		apply_auth(h, c);
		CURLcode rc = curl_easy_perform(c);
		long code = 0;
		curl_off_t cl = -1;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		r->length = cl;
		keep_cookies(h, c);
		curl_easy_cleanup(c);
		if (rc == CURLE_OK && !net_retryable(rc, code))
			return code;
		net_describe(rc, code, errbuf, why, sizeof why);
		if (!net_retryable(rc, code)) {
			error("%s '%s': %s", method, h->url.display, why);
			return -1;
		}
		free(r->body);
		r->body = NULL;
		if (net_backoff(h->opts, attempt, h->url.display, why) < 0)
			return -1;
	}
}

static long simple(struct http_dest *h, const char *method, const char *url, struct curl_slist *headers)
{
	struct reply r;
	long code = request(h, method, url, headers, NULL, 0, &r);
	free(r.body);
	return code;
}

static int refuse(struct http_dest *h, const char *what, long code)
{
	char why[160];
	return error("%s '%s': %s", what, h->url.display, net_describe(CURLE_OK, code, NULL, why, sizeof why));
}

/* ---- prepare -------------------------------------------------------------------------- */

/* MKCOL every folder above the image that does not exist yet. */
static int make_folders(struct http_dest *h)
{
	CLEANUP_FREE char *path = xstrdup(h->url.path);
	for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		CLEANUP_FREE char *dir = xasprintf("%s/", path);
		CLEANUP_FREE char *url = url_for_curl(&h->url, dir);
		*slash = '/';
		long code = simple(h, "MKCOL", url, NULL);
		if (code < 0)
			return -1;
		/* 201 made; 405 (nginx, Apache) or 301 means it is there already. */
		if (code != 201 && code != 405 && code != 301 && code != 200)
			return refuse(h, "create folder for", code);
	}
	return 0;
}

/* RFC 4331 quota-available-bytes on the folder, when the server reports it. */
static int check_space(struct http_dest *h)
{
	static const char body[] = "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>"
				   "<D:quota-available-bytes/></D:prop></D:propfind>";
	CLEANUP_FREE char *dir = xstrdup(h->url.path);
	*(strrchr(dir, '/') + 1) = '\0';
	CLEANUP_FREE char *url = url_for_curl(&h->url, dir);
	struct curl_slist *hdr = curl_slist_append(NULL, "Depth: 0");
	hdr = curl_slist_append(hdr, "Content-Type: application/xml");
	struct reply r;
	long code = request(h, "PROPFIND", url, hdr, body, sizeof body - 1, &r);
	curl_slist_free_all(hdr);
	const char *tag = r.body ? strstr(r.body, "quota-available-bytes>") : NULL;
	if (code == 207 && tag) {
		uint64_t avail = strtoull(tag + strlen("quota-available-bytes>"), NULL, 10);
		char need[32], have[32];
		if (avail && avail < h->opts->est_size) {
			free(r.body);
			return error("not enough space at '%s': need about %s, the server reports %s free",
				     h->url.display, fmt_size(h->opts->est_size, need, sizeof need),
				     fmt_size(avail, have, sizeof have));
		}
	}
	free(r.body);
	return 0;
}

static int probe_server(struct http_dest *h)
{
	struct reply r;
	long code = request(h, "OPTIONS", h->final_url, NULL, NULL, 0, &r);
	free(r.body);
	if (code < 0)
		return -1;
	if (code == 401)
		return refuse(h, "log in to", code);
	h->webdav = r.dav && !h->vsphere;
	code = simple(h, "HEAD", h->final_url, NULL);
	if (code < 0)
		return -1;
	if (code == 401 || code == 403)
		return refuse(h, "log in to", code);
	if (code >= 200 && code < 300 && !h->opts->force)
		return error("'%s' already exists: choose another name or pass --force to replace it", h->url.display);
	return 0;
}

/* An empty PUT under the upload name: proves the folder exists and we may write. */
static int probe_write(struct http_dest *h)
{
	struct reply r;
	long code = request(h, "PUT", h->upload_url, NULL, "", 0, &r);
	free(r.body);
	if (code < 0)
		return -1;
	h->uploaded = true;
	if (code >= 300)
		return refuse(h, "write to", code);
	return 0;
}

/* ---- the upload ------------------------------------------------------------------------ */

static int upload_setup(void *ctx, CURL *c, uint64_t from)
{
	struct http_dest *h = ctx;
	(void)from;  /* 0: HTTP PUT cannot resume (confirmed() says so) */
	curl_easy_setopt(c, CURLOPT_URL, h->upload_url);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)-1);
	apply_auth(h, c);
	return 0;
}

static int upload_check(void *ctx, CURL *c)
{
	struct http_dest *h = ctx;
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	keep_cookies(h, c);
	return code >= 200 && code < 300 ? 0 : refuse(h, "upload to", code);
}

static const struct upstream_proto http_upload = {
	.setup = upload_setup,
	.confirmed = NULL,  /* plain PUT: no partial upload survives a dropped connection */
	.check = upload_check,
};

static int http_write(struct sink *s, const void *buf, size_t len)
{
	struct http_dest *h = s->priv;
	/* The PUT starts with the first byte, not in prepare: a server drops a request
	 * whose body does not come (nginx after 60 s), and prepare can take longer. */
	if (!h->up) {
		h->up = upstream_start(&http_upload, h, h->opts, h->url.display, HTTP_RING_SIZE);
		if (!h->up)
			return -1;
	}
	if (upstream_push(h->up, buf, len) < 0) {
		s->restartable = upstream_restartable(h->up);
		return -1;
	}
	return 0;
}

static int http_finish(struct sink *s)
{
	struct http_dest *h = s->priv;
	if (!h->up && http_write(s, "", 0) < 0)  /* an empty image still needs its PUT */
		return -1;
	if (upstream_finish(h->up) < 0)
		return -1;
	s->resumes = upstream_resumes(h->up);
	struct reply r;
	long code = request(h, "HEAD", h->upload_url, NULL, NULL, 0, &r);
	free(r.body);
	if (code < 0)
		return -1;
	if (code >= 300)
		return refuse(h, "check the uploaded image at", code);
	if (r.length >= 0 && (uint64_t)r.length != s->pos)
		return error("'%s' holds %lld bytes after the upload but %llu were sent: the transfer was damaged; "
			     "run the clone again",
			     h->url.display, (long long)r.length, (unsigned long long)s->pos);
	return 0;
}

static int move_into_place(struct http_dest *h)
{
	CLEANUP_FREE char *dest = xasprintf("Destination: %s", h->final_url);
	struct curl_slist *hdr = curl_slist_append(NULL, dest);
	hdr = curl_slist_append(hdr, h->opts->force ? "Overwrite: T" : "Overwrite: F");
	long code = simple(h, "MOVE", h->upload_url, hdr);
	curl_slist_free_all(hdr);
	if (code < 0)
		return -1;
	if (code != 201 && code != 204)
		return refuse(h, "rename the finished upload to", code);
	h->moved = true;
	return 0;
}

static int http_publish(struct sink *s, const char *suffix, const void *buf, size_t len)
{
	struct http_dest *h = s->priv;
	if (h->webdav && move_into_place(h) < 0)
		return -1;
	h->moved = true;
	if (!suffix)
		return 0;
	CLEANUP_FREE char *path = xasprintf("%s%s", h->url.path, suffix);
	CLEANUP_FREE char *url = url_for_curl(&h->url, path);
	struct reply r;
	long code = request(h, "PUT", url, NULL, buf, len, &r);
	free(r.body);
	if (code < 0)
		return -1;
	if (code >= 300)
		return refuse(h, "upload the manifest beside", code);
	return 0;
}

static void http_abort(struct sink *s)
{
	struct http_dest *h = s->priv;
	upstream_free(h->up);
	h->up = NULL;
	if (h->uploaded || h->moved)
		simple(h, "DELETE", h->moved ? h->final_url : h->upload_url, NULL);
}

static int http_readback(struct sink *s, uint8_t sha256[32])
{
	struct http_dest *h = s->priv;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char errbuf[CURL_ERROR_SIZE] = "", why[CURL_ERROR_SIZE + 160];
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	CURL *c = net_curl(h->opts);
	curl_easy_setopt(c, CURLOPT_URL, h->final_url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, net_hash_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, md);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	apply_auth(h, c);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	unsigned int n = 0;
	EVP_DigestFinal_ex(md, sha256, &n);
	EVP_MD_CTX_free(md);
	if (rc != CURLE_OK)
		return error("read back '%s': %s", h->url.display, net_describe(rc, code, errbuf, why, sizeof why));
	return 0;
}

static void http_free(struct sink *s)
{
	struct http_dest *h = s->priv;
	if (!h)
		return;
	upstream_free(h->up);
	url_free(&h->url);
	free(h->final_url);
	free(h->upload_url);
	free(h->cookies);
	free(h);
	s->priv = NULL;
}

static const struct sink_ops http_ops = {
	.name = "http",
	.write = http_write,
	.skip = NULL,
	.finish = http_finish,
	.publish = http_publish,
	.abort = http_abort,
	.readback = http_readback,
	.free = http_free,
};

bool dest_is_vsphere(const char *url)
{
	const char *q = strchr(url, '?');
	return (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) && q &&
	       (strstr(q, "dsName=") || strstr(q, "dcPath="));
}

static int http_prepare(struct sink *s, struct http_dest *h)
{
	const char *name = strrchr(h->url.path, '/') + 1;
	if (!*name)
		return error("'%s' names a folder: add the image's file name (for example .../disk.vmdk)", h->url.display);
	h->final_url = url_for_curl(&h->url, NULL);
	h->vsphere = dest_is_vsphere(h->final_url);
	if (h->url.user && net_password(&h->url, h->opts, true) < 0)
		return -1;
	if (probe_server(h) < 0)
		return -1;
	if (h->webdav) {
		CLEANUP_FREE char *tmp = xasprintf("%s.partial", h->url.path);
		h->upload_url = url_for_curl(&h->url, tmp);
		if (make_folders(h) < 0 || check_space(h) < 0)
			return -1;
	} else {
		h->upload_url = xstrdup(h->final_url);
	}
	if (probe_write(h) < 0)
		return -1;
	s->tls_insecure = h->opts->insecure && strcmp(h->url.scheme, "https") == 0;
	info("destination '%s': %s, %s", h->url.display,
	     h->vsphere ? "vSphere datastore" : h->webdav ? "WebDAV server" : "HTTP server (no WebDAV)",
	     h->webdav ? "uploading under a temporary name" : "uploading under the final name");
	return 0;
}

int dest_http_open(struct sink *s, const char *url, const struct dest_options *o)
{
	struct http_dest *h = xcalloc(1, sizeof *h);
	h->opts = o;
	s->ops = &http_ops;
	s->priv = h;
	if (url_parse(url, &h->url) < 0) {
		free(h);
		s->priv = NULL;
		return -1;
	}
	s->display = xstrdup(h->url.display);
	if (o->insecure)
		warning("--insecure: the TLS certificate of '%s' is NOT checked; anyone on the path can read or "
			"change the image. The manifest records this.",
			h->url.display);
	if (http_prepare(s, h) < 0) {
		http_abort(s);
		http_free(s);
		return -1;
	}
	return 0;
}
