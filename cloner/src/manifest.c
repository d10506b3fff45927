/* manifest.c - see manifest.h. The manifest never holds credentials: every path and URL
 * in it comes from display forms. */
#define _GNU_SOURCE
#include "manifest.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "util.h"

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	/* json-c stores int64; sizes stay far below 2^63 */
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static void dmi(json_object *o, const char *key, const char *attr)
{
	char path[128], buf[128] = "";
	snprintf(path, sizeof path, "/sys/class/dmi/id/%s", attr);
	FILE *f = fopen(path, "re");
	if (f) {
		if (fgets(buf, sizeof buf, f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
	add_str(o, key, buf);
}

static json_object *machine_json(void)
{
	json_object *m = json_object_new_object();
	dmi(m, "vendor", "sys_vendor");
	dmi(m, "model", "product_name");
	dmi(m, "serial", "product_serial");
	dmi(m, "bios_version", "bios_version");
	return m;
}

static json_object *source_json(const struct clone_record *r)
{
	const struct source *s = r->src;
	json_object *o = json_object_new_object();
	add_str(o, "path", s->path);
	add_str(o, "vendor", s->vendor);
	add_str(o, "model", s->model);
	add_str(o, "serial", s->serial);
	add_u64(o, "size", s->size);
	add_u64(o, "logical_sector_size", s->lsec);
	add_u64(o, "physical_sector_size", s->psec);
	add_str(o, "partition_table", r->layout->table);
	add_str(o, "disk_id", r->layout->disk_uuid);
	return o;
}

static json_object *partitions_json(const struct layout *l)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < l->nparts; i++) {
		const struct partition *p = &l->parts[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "number", json_object_new_int((int)p->number));
		add_u64(o, "start", p->start);
		add_u64(o, "size", p->size);
		add_str(o, "type", p->type);
		if (p->container) {
			json_object_object_add(o, "container", json_object_new_boolean(1));
			add_str(o, "method", "table-only");
			add_str(o, "reason", "extended partition: its boot records are copied as table data");
		} else {
			add_str(o, "name", p->name);
			add_str(o, "filesystem", p->fs);
			add_str(o, "label", p->label);
			add_str(o, "uuid", p->uuid);
			add_str(o, "state", fs_state_name(p->state));
			add_str(o, "method", copy_method_name(p->method));
			add_str(o, "reason", p->reason);
			add_u64(o, "used_bytes", p->used_bytes);
		}
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *unreadable_json(const struct extmap *bad)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; bad && i < bad->n; i++) {
		json_object *o = json_object_new_object();
		add_u64(o, "start", bad->v[i].start);
		add_u64(o, "length", bad->v[i].len);
		json_object_array_add(a, o);
	}
	return a;
}

char *manifest_render(const struct clone_record *r)
{
	json_object *root = json_object_new_object(), *o;
	char hex[65];

	o = json_object_new_object();
	add_str(o, "name", "coldclone");
	add_str(o, "version", COLDCLONE_VERSION);
	json_object_object_add(root, "tool", o);
	json_object_object_add(root, "machine", machine_json());
	json_object_object_add(root, "source", source_json(r));
	json_object_object_add(root, "partitions", partitions_json(r->layout));

	o = json_object_new_object();
	add_str(o, "path", r->image_path);
	add_str(o, "format", r->format);
	add_u64(o, "size", r->image_size);
	add_u64(o, "virtual_size", r->image_vsize);
	hex_encode(r->image_sha256, 32, hex);
	add_str(o, "sha256", hex);
	json_object_object_add(root, "image", o);

	o = json_object_new_object();
	add_str(o, "digest", r->content_digest);
	add_str(o, "algorithm", CONTENT_DIGEST_ALGORITHM);
	add_u64(o, "chunk_size", 1u << 20);
	add_u64(o, "bytes_mapped", r->bytes_mapped);
	add_u64(o, "bytes_read", r->bytes_read);
	add_u64(o, "bytes_stored", r->bytes_stored);
	json_object_object_add(o, "all_blocks", json_object_new_boolean(r->all_blocks));
	json_object_object_add(root, "content", o);

	o = json_object_new_object();
	add_str(o, "destination", r->dest_kind ? r->dest_kind : "file");
	json_object_object_add(o, "tls_insecure", json_object_new_boolean(r->tls_insecure));
	add_u64(o, "resumes", r->resumes);
	json_object_object_add(root, "transfer", o);

	json_object_object_add(root, "unreadable", unreadable_json(r->unreadable));
	add_str(root, "started", r->started);
	add_str(root, "finished", r->finished);
	json_object_object_add(root, "seconds", json_object_new_double(r->seconds));

	char *out = xasprintf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
									JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return out;
}

static int get_string(json_object *root, const char *obj, const char *key, char *dst, size_t dstsz,
		      const char *path)
{
	json_object *o, *v;
	if (!json_object_object_get_ex(root, obj, &o) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return error("manifest '%s' lacks %s.%s: not a coldclone manifest, or damaged", path, obj, key);
	snprintf(dst, dstsz, "%s", json_object_get_string(v));
	return 0;
}

static int get_u64(json_object *root, const char *obj, const char *key, uint64_t *dst, const char *path)
{
	json_object *o, *v;
	if (!json_object_object_get_ex(root, obj, &o) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return error("manifest '%s' lacks %s.%s: not a coldclone manifest, or damaged", path, obj, key);
	*dst = (uint64_t)json_object_get_int64(v);
	return 0;
}

int manifest_load(const char *path, struct manifest_check *m)
{
	json_object *root = json_object_from_file(path);
	if (!root) {
		const char *why = json_util_get_last_err();
		return error("read manifest '%s': %s", path, why ? why : "not valid JSON");
	}
	int r = 0;
	if (get_string(root, "image", "format", m->format, sizeof m->format, path) < 0 ||
	    get_string(root, "image", "sha256", m->image_sha256, sizeof m->image_sha256, path) < 0 ||
	    get_string(root, "content", "digest", m->content_digest, sizeof m->content_digest, path) < 0 ||
	    get_string(root, "content", "algorithm", m->digest_algorithm, sizeof m->digest_algorithm, path) < 0 ||
	    get_u64(root, "image", "size", &m->image_size, path) < 0 ||
	    get_u64(root, "source", "size", &m->virtual_size, path) < 0)
		r = -1;
	json_object_put(root);
	return r;
}
