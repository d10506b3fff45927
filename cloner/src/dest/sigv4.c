/* sigv4.c - AWS Signature Version 4 (header form) for the S3 destination: canonical request,
 * string to sign, signing key and Authorization value. It does not send anything or read the
 * clock; s3.c does. Checked against AWS's published test suite in tests/unit/test-sigv4.c. */
#define _GNU_SOURCE
#include "sigv4.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

char *sigv4_uri_encode(const char *s, bool keep_slash)
{
	char *out = xmalloc(3 * strlen(s) + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep_slash && *p == '/'))
			*o++ = (char)*p;
		else
			o += sprintf(o, "%%%02X", *p);
	}
	*o = '\0';
	return out;
}

void sigv4_sha256_hex(const void *buf, size_t len, char out[65])
{
	uint8_t md[32];
	unsigned int n = 0;
	EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL);
	hex_encode(md, sizeof md, out);
}

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* One header as signed: lower-case name, value trimmed with inner space runs collapsed. */
struct canon_header {
	char *name;
	char *value;
};

static int canon_header_parse(const char *line, struct canon_header *h)
{
	const char *colon = strchr(line, ':');
	if (!colon)
		return -1;
	h->name = xstrndup(line, (size_t)(colon - line));
	for (char *p = h->name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *v = colon + 1;
	char *o = h->value = xmalloc(strlen(v) + 1);
	for (; *v; v++) {
		if (isspace((unsigned char)*v)) {
			if (o > h->value && o[-1] != ' ')
				*o++ = ' ';
			continue;
		}
		*o++ = *v;
	}
	if (o > h->value && o[-1] == ' ')
		o--;
	*o = '\0';
	return 0;
}

static void canon_headers_free(struct canon_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

/* Parse and stably sort by name (duplicates keep their order: their values are joined). */
static struct canon_header *canon_headers(const struct sigv4_request *r)
{
	struct canon_header *h = xcalloc(r->nheaders ? r->nheaders : 1, sizeof *h);
	for (size_t i = 0; i < r->nheaders; i++) {
		if (canon_header_parse(r->headers[i], &h[i]) < 0) {
			canon_headers_free(h, i);
			return NULL;
		}
		for (size_t j = i; j > 0 && strcmp(h[j - 1].name, h[j].name) > 0; j--) {
			struct canon_header t = h[j - 1];
			h[j - 1] = h[j];
			h[j] = t;
		}
	}
	return h;
}

/* "a;b;c": the distinct names, sorted. */
static void put_signed_headers(FILE *f, const struct canon_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i && strcmp(h[i - 1].name, h[i].name) == 0)
			continue;
		fprintf(f, "%s%s", i ? ";" : "", h[i].name);
	}
}

static void put_canonical_headers(FILE *f, const struct canon_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool same = i && strcmp(h[i - 1].name, h[i].name) == 0;
		if (same)
			fprintf(f, ",%s", h[i].value);
		else
			fprintf(f, "%s%s:%s", i ? "\n" : "", h[i].name, h[i].value);
	}
	fputs("\n", f);
}

struct query_param {
	const char *name;
	size_t nlen;
	const char *value;
	size_t vlen;
};

static int query_param_cmp(const void *a, const void *b)
{
	const struct query_param *x = a, *y = b;
	int c = strncmp(x->name, y->name, MIN(x->nlen, y->nlen));
	if (c || x->nlen != y->nlen)
		return c ? c : (x->nlen < y->nlen ? -1 : 1);
	c = strncmp(x->value, y->value, MIN(x->vlen, y->vlen));
	if (c || x->vlen == y->vlen)
		return c;
	return x->vlen < y->vlen ? -1 : 1;
}

/* Parameters sorted by name, then value; "name" alone becomes "name=". */
static void put_canonical_query(FILE *f, const char *query)
{
	if (!query || !*query)
		return;
	size_t n = 1;
	for (const char *p = query; *p; p++)
		n += *p == '&';
	struct query_param *q = xcalloc(n, sizeof *q);
	size_t k = 0;
	for (const char *p = query;; p++) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		if (len)
			q[k++] = (struct query_param){ .name = p, .nlen = eq ? (size_t)(eq - p) : len,
						       .value = eq ? eq + 1 : p + len,
						       .vlen = eq ? len - (size_t)(eq - p) - 1 : 0 };
		p += len;
		if (!*p)
			break;
	}
	qsort(q, k, sizeof *q, query_param_cmp);
	for (size_t i = 0; i < k; i++)
		fprintf(f, "%s%.*s=%.*s", i ? "&" : "", (int)q[i].nlen, q[i].name, (int)q[i].vlen, q[i].value);
	free(q);
}

/* The canonical request and, when names is not NULL, its SignedHeaders list (what the
 * Authorization header repeats), from one canonicalisation of the headers. */
static char *canonical_request(const struct sigv4_request *r, char **names)
{
	struct canon_header *h = canon_headers(r);
	if (!h)
		return NULL;
	char *out = NULL, *list = NULL;
	size_t len = 0, list_len = 0;
	FILE *f = open_memstream(&out, &len);
	FILE *g = names ? open_memstream(&list, &list_len) : NULL;
	if (!f || (names && !g)) {
		if (f)
			fclose(f);
		free(out);
		canon_headers_free(h, r->nheaders);
		return NULL;
	}
	fprintf(f, "%s\n%s\n", r->method, r->uri);
	put_canonical_query(f, r->query);
	fputs("\n", f);
	put_canonical_headers(f, h, r->nheaders);
	fputs("\n", f);
	put_signed_headers(f, h, r->nheaders);
	fprintf(f, "\n%s", r->payload_sha256);
	fclose(f);
	if (g) {
		put_signed_headers(g, h, r->nheaders);
		fclose(g);
		*names = list;
	}
	canon_headers_free(h, r->nheaders);
	return out;
}

char *sigv4_canonical_request(const struct sigv4_request *r)
{
	return canonical_request(r, NULL);
}

/* "20150830/us-east-1/service/aws4_request" */
static char *credential_scope(const struct sigv4_key *k, const struct sigv4_request *r)
{
	return xasprintf("%.8s/%s/%s/aws4_request", r->amz_date, k->region, k->service);
}

static char *string_to_sign_of(const struct sigv4_key *k, const struct sigv4_request *r, const char *creq)
{
	char hash[65];
	sigv4_sha256_hex(creq, strlen(creq), hash);
	CLEANUP_FREE char *scope = credential_scope(k, r);
	return xasprintf(SIGV4_ALGORITHM "\n%s\n%s\n%s", r->amz_date, scope, hash);
}

char *sigv4_string_to_sign(const struct sigv4_key *k, const struct sigv4_request *r)
{
	CLEANUP_FREE char *creq = canonical_request(r, NULL);
	return creq ? string_to_sign_of(k, r, creq) : NULL;
}

static void hmac(const void *key, size_t klen, const char *msg, uint8_t out[32])
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static void signing_key(const struct sigv4_key *k, const char *amz_date, uint8_t out[32])
{
	char date[9];
	snprintf(date, sizeof date, "%.8s", amz_date);
	CLEANUP_FREE char *secret = xasprintf("AWS4%s", k->secret_key);
	uint8_t a[32], b[32];
	hmac(secret, strlen(secret), date, a);
	explicit_bzero(secret, strlen(secret));
	hmac(a, sizeof a, k->region, b);
	hmac(b, sizeof b, k->service, a);
	hmac(a, sizeof a, "aws4_request", out);
	explicit_bzero(a, sizeof a);
	explicit_bzero(b, sizeof b);
}

char *sigv4_authorization(const struct sigv4_key *k, const struct sigv4_request *r)
{
	CLEANUP_FREE char *names = NULL;
	CLEANUP_FREE char *creq = canonical_request(r, &names);
	if (!creq)
		return NULL;
	CLEANUP_FREE char *sts = string_to_sign_of(k, r, creq);
	uint8_t key[32], sig[32];
	signing_key(k, r->amz_date, key);
	hmac(key, sizeof key, sts, sig);
	explicit_bzero(key, sizeof key);
	char hex[65];
	hex_encode(sig, sizeof sig, hex);
	CLEANUP_FREE char *scope = credential_scope(k, r);
	return xasprintf(SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s", k->access_key, scope,
			 names, hex);
}
