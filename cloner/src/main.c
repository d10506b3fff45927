/* main.c - command dispatch, signal handling and help. The only place that exits;
 * exit codes are listed in commands.h and the README. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "format.h"
#include "util.h"

volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const char overview[] =
	"coldclone " COLDCLONE_VERSION " - cold-clone a physical disk into a hypervisor image\n"
	"\n"
	"usage: coldclone COMMAND [OPTIONS]\n"
	"\n"
	"  list     show the disks, partitions, filesystems and how each would be copied\n"
	"  clone    image one disk, used blocks only, into raw/qcow2/VMDK/VHDX/VHD\n"
	"  digest   content digest of raw disk content (a file, a device or - for stdin)\n"
	"  verify   check an image against the manifest written beside it\n"
	"  help     help on a command: coldclone help clone\n"
	"\n"
	"Exit codes: 0 ok, 1 internal error, 2 usage, 3 source, 4 destination, 5 verify mismatch,\n"
	"6 done with unreadable sectors, 7 too many unreadable sectors, 8 refused, 130 interrupted.\n";

static const char help_list[] =
	"usage: coldclone list [--source DISK]... [--json] [--sector-size 512|4096]\n"
	"\n"
	"Without --source, lists every disk under /sys/block except RAM, loop, optical and the\n"
	"coldclone boot medium. For each partition: start, size, filesystem, label, UUID, state\n"
	"(clean, dirty, hibernated, encrypted, damaged), bytes to copy and the copy method with\n"
	"its reason. --sector-size sets the sector size of an image file (detected from GPT).\n";

static const char help_clone[] =
	"usage: coldclone clone --source DISK --output FILE [options]\n"
	"\n"
	"  --format FMT          raw, qcow2, vmdk-stream, vmdk, vhdx, vhd, vhd-fixed\n"
	"                        (default from the extension: .vmdk is vmdk-stream)\n"
	"  --all-blocks          copy every sector, not just what filesystems use\n"
	"  --progress MODE       plain (default), json (one object per line) or none\n"
	"  --max-unreadable N    stop when more than N sectors cannot be read (default: no limit)\n"
	"  --force               replace an existing image\n"
	"  --sector-size N       sector size of an image-file source (512 or 4096)\n"
	"  --workers N           worker threads (default: one per CPU)\n"
	"  --compress-level N    vmdk-stream deflate level 1 (fastest, default) to 12 (smallest)\n"
	"  --quiet, --verbose\n"
	"\n"
	"The image is written as FILE.partial and renamed to FILE only after FILE.manifest.json\n"
	"is written: an interrupted clone never leaves a finished-looking image.\n";

static const char help_digest[] =
	"usage: coldclone digest [FILE|-]\n"
	"\n"
	"Prints the content digest of raw disk content: SHA-256 over, for each non-zero 1 MiB\n"
	"chunk in order, its 8-byte little-endian offset and its SHA-256. Check any image with\n"
	"a decoder we did not write:  qemu-img convert -O raw IMG /dev/stdout | coldclone digest -\n";

static const char help_verify[] =
	"usage: coldclone verify IMAGE [MANIFEST]\n"
	"\n"
	"Decodes IMAGE (any format coldclone writes) and checks its SHA-256 and content digest\n"
	"against IMAGE.manifest.json (or MANIFEST). Exit 0 when both match, 5 otherwise.\n";

int print_help(const char *command)
{
	static const struct { const char *name, *text; } topics[] = {
		{ "list", help_list }, { "clone", help_clone }, { "digest", help_digest }, { "verify", help_verify },
	};
	if (!command) {
		fputs(overview, stdout);
		printf("\nFormats:\n");
		for (size_t i = 0; fmt_all[i]; i++)
			printf("  %-12s %s\n", fmt_all[i]->name, fmt_all[i]->description);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(topics); i++)
		if (strcmp(command, topics[i].name) == 0) {
			fputs(topics[i].text, stdout);
			return 0;
		}
	return error("no help for '%s': commands are list, clone, digest, verify", command);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(int, char **); } commands[] = {
		{ "list", cmd_list }, { "clone", cmd_clone }, { "digest", cmd_digest }, { "verify", cmd_verify },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		print_help(NULL);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("coldclone %s\n", COLDCLONE_VERSION);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return print_help(argc > 2 ? argv[2] : NULL) < 0 ? EXIT_USAGE : EXIT_OK;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	error("unknown command '%s': run 'coldclone help'", argv[1]);
	return EXIT_USAGE;
}
