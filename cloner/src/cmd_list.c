/* cmd_list.c - `coldclone list`: the disks, their partitions, filesystems, states, the
 * copy method `clone` would use and the OS host name found on a partition (oshost.c), as
 * a table or JSON. Read-only, like everything. */
#define _GNU_SOURCE
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "layout.h"
#include "oshost.h"
#include "source.h"
#include "util.h"

static json_object *disk_json(const struct source *s, const struct layout *l, const struct oshost *hosts,
			      uint64_t mapped)
{
	json_object *d = json_object_new_object(), *parts = json_object_new_array();
	json_object_object_add(d, "path", json_object_new_string(s->path));
	json_object_object_add(d, "model", json_object_new_string(s->model));
	json_object_object_add(d, "serial", json_object_new_string(s->serial));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)s->size));
	json_object_object_add(d, "logical_sector_size", json_object_new_int((int)s->lsec));
	json_object_object_add(d, "physical_sector_size", json_object_new_int((int)s->psec));
	json_object_object_add(d, "partition_table", json_object_new_string(l->table));
	json_object_object_add(d, "bytes_to_copy", json_object_new_int64((int64_t)mapped));
	for (size_t i = 0; i < l->nparts; i++) {
		const struct partition *p = &l->parts[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "number", json_object_new_int((int)p->number));
		json_object_object_add(o, "start", json_object_new_int64((int64_t)p->start));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)p->size));
		json_object_object_add(o, "type", json_object_new_string(p->type));
		json_object_object_add(o, "container", json_object_new_boolean(p->container));
		json_object_object_add(o, "filesystem", json_object_new_string(p->fs));
		json_object_object_add(o, "label", json_object_new_string(p->label));
		json_object_object_add(o, "uuid", json_object_new_string(p->uuid));
		json_object_object_add(o, "state", json_object_new_string(fs_state_name(p->state)));
		json_object_object_add(o, "used_bytes", json_object_new_int64((int64_t)p->used_bytes));
		json_object_object_add(o, "method", json_object_new_string(p->container ? "table-only" : copy_method_name(p->method)));
		json_object_object_add(o, "reason", json_object_new_string(p->reason));
		const struct oshost *h = &hosts[i];
		json_object_object_add(o, "hostname", h->os ? json_object_new_string(h->name) : NULL);
		json_object_object_add(o, "os", h->os ? json_object_new_string(oshost_os_id(h->os)) : NULL);
		json_object_array_add(parts, o);
	}
	json_object_object_add(d, "partitions", parts);
	return d;
}

static void disk_text(const struct source *s, const struct layout *l, const struct oshost *hosts, uint64_t mapped)
{
	char size[32], used[32], start[32];
	printf("%s  %s%s%s  %s  sectors %u/%u  table %s  to copy %s\n", s->path,
	       s->model[0] ? s->model : "(no model)", s->serial[0] ? "  serial " : "", s->serial,
	       fmt_size(s->size, size, sizeof size), s->lsec, s->psec, l->table, fmt_size(mapped, used, sizeof used));
	for (size_t i = 0; i < l->nparts; i++) {
		const struct partition *p = &l->parts[i];
		if (p->container) {
			printf("  %2u  start %-10s size %-10s extended (container)\n", p->number,
			       fmt_size(p->start, start, sizeof start), fmt_size(p->size, size, sizeof size));
			continue;
		}
		printf("  %2u  start %-10s size %-10s %-8s %-12s %-10s used %-10s %s: %s\n", p->number,
		       fmt_size(p->start, start, sizeof start), fmt_size(p->size, size, sizeof size),
		       p->fs[0] ? p->fs : "-", p->label[0] ? p->label : "-", fs_state_name(p->state),
		       fmt_size(p->used_bytes, used, sizeof used), copy_method_name(p->method), p->reason);
		if (hosts[i].os)
			printf("      hostname %s (%s)\n", hosts[i].name, oshost_os_name(hosts[i].os));
	}
}

/* One disk (commands.h); returns an exit code. */
int list_disk(const char *path, uint32_t lsec, json_object *arr)
{
	struct source s;
	struct layout l = { 0 };
	struct extmap map;
	int r = EXIT_OK;
	CLEANUP_FREE struct oshost *hosts = NULL;
	extmap_init(&map);
	if (source_open(&s, path, lsec) < 0 || layout_read(&s, &l) < 0 || layout_plan(&s, &l, false, &map) < 0) {
		r = EXIT_SOURCE;
	} else {
		hosts = xcalloc(l.nparts ? l.nparts : 1, sizeof *hosts);
		for (size_t i = 0; i < l.nparts; i++)
			oshost_probe(&s, &l.parts[i], &hosts[i]);
		if (arr)
			json_object_array_add(arr, disk_json(&s, &l, hosts, extmap_bytes(&map)));
		else
			disk_text(&s, &l, hosts, extmap_bytes(&map));
	}
	extmap_release(&map);
	layout_release(&l);
	source_close(&s);
	return r;
}

int cmd_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
		{ "sector-size", required_argument, NULL, 'S' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	const char **sources = xcalloc((size_t)argc + 1, sizeof *sources);
	size_t n = 0;
	bool json = false;
	uint64_t lsec = 0;
	int c, r = EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:jS:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': sources[n++] = optarg; break;
		case 'j': json = true; break;
		case 'S':
			if (parse_u64(optarg, &lsec) < 0 || (lsec != 512 && lsec != 4096)) {
				free(sources);
				error("--sector-size takes 512 or 4096, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': free(sources); print_help("list"); return EXIT_OK;
		default: free(sources); error("see 'coldclone help list'"); return EXIT_USAGE;
		}
	}
	char **found = NULL;
	if (n == 0) {
		if (source_discover(&found) < 0) {
			free(sources);
			return EXIT_SOURCE;
		}
		for (size_t i = 0; found[i]; i++)
			sources = xrealloc(sources, (n + 2) * sizeof *sources), sources[n++] = found[i];
		if (n == 0)
			warning("no disks found: is the storage controller's driver loaded? (see the missing-driver report)");
	}
	json_object *arr = json ? json_object_new_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		int k = list_disk(sources[i], (uint32_t)lsec, arr);
		if (k != EXIT_OK)
			r = k;
	}
	if (arr) {
		json_object *root = json_object_new_object();
		json_object_object_add(root, "disks", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
	}
	source_discover_free(found);
	free(sources);
	return r;
}
