/* digest.c - the content digest, shared by clone, digest and verify. */
#include "digest.h"

#include <openssl/evp.h>
#include <string.h>
#include <xxhash.h>

#include "util.h"

void chunk_hash(const uint8_t *buf, size_t len, uint8_t out[CHUNK_HASH_LEN])
{
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, XXH3_128bits(buf, len));
	memcpy(out, canon.digest, CHUNK_HASH_LEN);
}

int content_digest_init(struct content_digest *d)
{
	*d = (struct content_digest){ 0 };
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1)
		return error("initialise SHA-256: OpenSSL failed");
	return 0;
}

void content_digest_add(struct content_digest *d, uint64_t off, uint32_t len, const uint8_t hash[CHUNK_HASH_LEN])
{
	uint8_t rec[8 + CHUNK_HASH_LEN];
	put_le64(rec, off);
	memcpy(rec + 8, hash, CHUNK_HASH_LEN);
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
