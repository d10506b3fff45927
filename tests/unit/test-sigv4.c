/* test-sigv4.c - SigV4 signing against AWS's published examples: the generic "aws-sig-v4-test-suite"
 * (service "service", 2015-08-30) and the S3 header-auth examples of the S3 API reference
 * (examplebucket, 2013-05-24), plus the URI-encoding rules S3 keys need. */
#include <stdio.h>
#include <string.h>

#include "sigv4.h"
#include "test.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SUITE_CRED "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "

static const struct sigv4_key suite_key = {
	.access_key = "AKIDEXAMPLE",
	.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "service",
};

static const struct sigv4_key s3_key = {
	.access_key = "AKIAIOSFODNN7EXAMPLE",
	.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "s3",
};

struct vector {
	const char *name;
	const struct sigv4_key *key;
	struct sigv4_request req;
	const char *creq;   /* expected canonical request, or NULL */
	const char *authz;  /* expected Authorization value */
};

static const char *const vanilla_headers[] = { "Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z" };
static const char *const trim_headers[] = { "Host:example.amazonaws.com", "My-Header1: value1",
					    "My-Header2: \"a   b   c\"", "X-Amz-Date:20150830T123600Z" };
static const char *const key_sort_headers[] = { "Host:example.amazonaws.com", "My-Header1:value1",
						"X-Amz-Date:20150830T123600Z" };
static const char *const s3_get_headers[] = { "Host: examplebucket.s3.amazonaws.com", "Range: bytes=0-9",
					      "x-amz-content-sha256:" EMPTY_SHA256, "x-amz-date: 20130524T000000Z" };
static const char *const s3_put_headers[] = {
	"Host: examplebucket.s3.amazonaws.com", "Date: Fri, 24 May 2013 00:00:00 GMT",
	"x-amz-date: 20130524T000000Z", "x-amz-storage-class: REDUCED_REDUNDANCY",
	"x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
};
static const char *const s3_list_headers[] = { "Host: examplebucket.s3.amazonaws.com",
					       "x-amz-content-sha256:" EMPTY_SHA256, "x-amz-date: 20130524T000000Z" };

#define SUITE(m, u, q, h) { .method = m, .uri = u, .query = q, .headers = h, .nheaders = sizeof h / sizeof h[0], \
			    .payload_sha256 = EMPTY_SHA256, .amz_date = "20150830T123600Z" }
#define S3REQ(m, u, q, h, p) { .method = m, .uri = u, .query = q, .headers = h, .nheaders = sizeof h / sizeof h[0], \
			       .payload_sha256 = p, .amz_date = "20130524T000000Z" }

static const struct vector vectors[] = {
	{ "get-vanilla", &suite_key, SUITE("GET", "/", NULL, vanilla_headers),
	  "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
	  SUITE_CRED "SignedHeaders=host;x-amz-date, "
		     "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
	{ "post-vanilla", &suite_key, SUITE("POST", "/", NULL, vanilla_headers), NULL,
	  SUITE_CRED "SignedHeaders=host;x-amz-date, "
		     "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
	{ "get-vanilla-empty-query-key", &suite_key, SUITE("GET", "/", "Param1=value1", vanilla_headers), NULL,
	  SUITE_CRED "SignedHeaders=host;x-amz-date, "
		     "Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb" },
	{ "get-vanilla-query-order-key-case", &suite_key,
	  SUITE("GET", "/", "Param2=value2&Param1=value1", vanilla_headers),
	  "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
	  "host;x-amz-date\n" EMPTY_SHA256,
	  SUITE_CRED "SignedHeaders=host;x-amz-date, "
		     "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
	{ "get-utf8", &suite_key, SUITE("GET", "/%E1%88%B4", NULL, vanilla_headers),
	  "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
	  SUITE_CRED "SignedHeaders=host;x-amz-date, "
		     "Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
	{ "get-unreserved", &suite_key,
	  SUITE("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", NULL, vanilla_headers),
	  NULL,
	  SUITE_CRED "SignedHeaders=host;x-amz-date, "
		     "Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },
	{ "get-header-value-trim", &suite_key, SUITE("GET", "/", NULL, trim_headers),
	  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
	  "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY_SHA256,
	  SUITE_CRED "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
		     "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
	{ "post-header-key-sort", &suite_key, SUITE("POST", "/", NULL, key_sort_headers), NULL,
	  SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
		     "Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c" },
	{ "s3 GET object with Range", &s3_key, S3REQ("GET", "/test.txt", NULL, s3_get_headers, EMPTY_SHA256),
	  "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:" EMPTY_SHA256
	  "\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
	  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
	  "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
	  "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41" },
	{ "s3 PUT object", &s3_key,
	  S3REQ("PUT", "/test%24file.text", NULL, s3_put_headers,
		"44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
	  NULL,
	  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
	  "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
	  "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd" },
	{ "s3 GET bucket lifecycle", &s3_key, S3REQ("GET", "/", "lifecycle", s3_list_headers, EMPTY_SHA256),
	  "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:" EMPTY_SHA256
	  "\nx-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
	  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
	  "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
	  "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543" },
	{ "s3 list objects", &s3_key, S3REQ("GET", "/", "prefix=J&max-keys=2", s3_list_headers, EMPTY_SHA256), NULL,
	  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
	  "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
	  "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7" },
};

static void check_str(const char *what, const char *name, const char *got, const char *want)
{
	test_checks++;
	if (got && strcmp(got, want) == 0)
		return;
	test_failures++;
	fprintf(stderr, "%s: %s\n  got:  %s\n  want: %s\n", name, what, got ? got : "(null)", want);
}

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const struct vector *v = &vectors[i];
		if (v->creq) {
			char *creq = sigv4_canonical_request(&v->req);
			check_str("canonical request", v->name, creq, v->creq);
			free(creq);
		}
		char *authz = sigv4_authorization(v->key, &v->req);
		check_str("authorization", v->name, authz, v->authz);
		free(authz);
	}
}

static void test_uri_encode(void)
{
	static const struct {
		const char *in;
		bool keep_slash;
		const char *out;
	} t[] = {
		{ "dir/disk.qcow2", true, "dir/disk.qcow2" },
		{ "dir/disk.qcow2", false, "dir%2Fdisk.qcow2" },
		{ "a b+c=d&e~f_g-h", true, "a%20b%2Bc%3Dd%26e~f_g-h" },
		{ "\xe1\x88\xb4", true, "%E1%88%B4" },
		{ "x*y:z", true, "x%2Ay%3Az" },
		{ "", true, "" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char *got = sigv4_uri_encode(t[i].in, t[i].keep_slash);
		check_str("uri encode", t[i].in, got, t[i].out);
		free(got);
	}
}

static void test_misc(void)
{
	char hex[65], date[17];
	sigv4_sha256_hex("", 0, hex);
	check_str("sha256 of nothing", "sha256", hex, EMPTY_SHA256);
	sigv4_amz_date(1440938160, date);
	check_str("amz date", "date", date, "20150830T123600Z");
	/* A header line without ':' is refused, not signed. */
	const char *bad[] = { "Host example.com" };
	struct sigv4_request r = { .method = "GET", .uri = "/", .headers = bad, .nheaders = 1,
				   .payload_sha256 = EMPTY_SHA256, .amz_date = "20150830T123600Z" };
	char *a = sigv4_authorization(&suite_key, &r);
	CHECK(a == NULL);
	free(a);
	/* Parameters sort by name, then value; a bare name gets "=". */
	const char *h[] = { "Host:h" };
	struct sigv4_request q = { .method = "PUT", .uri = "/b/k", .query = "uploadId=x%2By&partNumber=2&a-b=1&a=2&a=1&uploads",
				   .headers = h, .nheaders = 1, .payload_sha256 = "UNSIGNED-PAYLOAD", .amz_date = "20150830T123600Z" };
	char *creq = sigv4_canonical_request(&q);
	check_str("query order", "query", creq,
		  "PUT\n/b/k\na=1&a=2&a-b=1&partNumber=2&uploadId=x%2By&uploads=\nhost:h\n\nhost\nUNSIGNED-PAYLOAD");
	free(creq);
}

int main(void)
{
	test_vectors();
	test_uri_encode();
	test_misc();
	return test_summary();
}
