/* sigv4.h - AWS Signature Version 4 for request headers (src/dest/sigv4.c), as S3 wants it:
 * the caller gives the canonical URI already encoded (S3 encodes each path segment once and
 * never normalises the path); query parameters and headers are canonicalised here.
 * Pure functions over strings: no network, no clock, no globals. Results are malloc'd. */
#ifndef COLDCLONE_SIGV4_H
#define COLDCLONE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Who signs and for what scope. The secret never leaves this module except as HMACs. */
struct sigv4_key {
	const char *access_key;   /* AWS_ACCESS_KEY_ID */
	const char *secret_key;   /* AWS_SECRET_ACCESS_KEY */
	const char *region;       /* "us-east-1" */
	const char *service;      /* "s3" */
};

struct sigv4_request {
	const char *method;           /* "PUT" */
	const char *uri;              /* URI-encoded path: "/bucket/dir/disk.qcow2" */
	const char *query;            /* "b=2&a=1" (each name and value URI-encoded) or NULL */
	const char *const *headers;   /* "Name: value" lines to sign (Host and X-Amz-Date included) */
	size_t nheaders;
	const char *payload_sha256;   /* lower-case hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
	const char *amz_date;         /* "20150830T123600Z", same as the X-Amz-Date header */
};

/* The canonical request (Task 1 of the AWS documentation); NULL when a header line has no ':'. */
char *sigv4_canonical_request(const struct sigv4_request *r);
/* The string to sign (Task 2). */
char *sigv4_string_to_sign(const struct sigv4_key *k, const struct sigv4_request *r);
/* The Authorization header value: "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...". */
char *sigv4_authorization(const struct sigv4_key *k, const struct sigv4_request *r);

/* URI-encode per AWS rules: unreserved A-Z a-z 0-9 - . _ ~ kept, everything else %XX (upper
 * case); '/' kept when keep_slash (object key paths), encoded otherwise (query values). */
char *sigv4_uri_encode(const char *s, bool keep_slash);
/* Lower-case hex SHA-256 of len bytes into out (65 bytes). */
void sigv4_sha256_hex(const void *buf, size_t len, char out[65]);
/* "YYYYMMDDTHHMMSSZ" for t (UTC) into out (17 bytes). */
void sigv4_amz_date(time_t t, char out[17]);

#endif
