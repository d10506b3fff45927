/* digest.c - the content digest, shared by clone, digest and verify. */
#include "digest.h"

#include <openssl/evp.h>

#include "util.h"

int content_digest_init(struct content_digest *d)
{
	*d = (struct content_digest){ 0 };
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1)
		return error("initialise SHA-256: OpenSSL failed");
	return 0;
}

void content_digest_add(struct content_digest *d, uint64_t off, uint32_t len, const uint8_t sha256[32])
{
	uint8_t rec[8 + 32];
	put_le64(rec, off);
	for (int i = 0; i < 32; i++)
		rec[8 + i] = sha256[i];
	EVP_DigestUpdate(d->ctx, rec, sizeof rec);
	d->last_off = off;
	d->chunks++;
	d->bytes += len;
}

void content_digest_final(struct content_digest *d, char hex[65])
{
	uint8_t md[32];
	unsigned int n = 0;
	EVP_DigestFinal_ex(d->ctx, md, &n);
	hex_encode(md, 32, hex);
	content_digest_release(d);
}

void content_digest_release(struct content_digest *d)
{
	EVP_MD_CTX_free(d->ctx);
	d->ctx = NULL;
}
