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
	"  config   check an unattended job file: coldclone config check FILE\n"
	"  collect  receive progress from many machines and show one line each\n"
	"  run      run the unattended job of a job file: coldclone run --config FILE|URL\n"
	"  wizard   interactive questions, then the whole-machine clone (the live image's default)\n"
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
	"usage: coldclone clone --source DISK --output FILE|URL [options]\n"
	"       coldclone clone --all [--disk NAME]... [--name NAME] --output FOLDER|URL [options]\n"
	"\n"
	"  --format FMT          raw, qcow2, vmdk-stream, vmdk, vhdx, vhd, vhd-fixed\n"
	"                        (default from the extension: .vmdk is vmdk-stream)\n"
	"  --all                 every source disk (or the --disk ones: sda, /dev/sda, serial:X),\n"
	"                        one image each named NAME-DISK.EXT, VM descriptors and\n"
	"                        NAME.machine.json beside them (NAME: --name, else the host name\n"
	"                        found on the disks, else the DMI serial)\n"
	"  --vm-cpus N, --vm-memory MiB, --vm-firmware bios|uefi, --vm-bus sata|scsi|ide|virtio,\n"
	"  --vm-nics N           the VM descriptors' values instead of the source's\n"
	"  --all-blocks          copy every sector, not just what filesystems use\n"
	"  --progress MODE       plain (default), json (one object per line) or none\n"
	"  --max-unreadable N    stop when more than N sectors cannot be read (default: no limit)\n"
	"  --force               replace an existing image; clone a hibernated Windows anyway\n"
	"  --sector-size N       sector size of an image-file source (512 or 4096)\n"
	"  --workers N           worker threads (default: one per CPU)\n"
	"  --compress-level N    vmdk-stream deflate level 1 (fastest, default) to 12 (smallest)\n"
	"  --verify              read the image back from the destination and compare its SHA-256\n"
	"  --quiet, --verbose\n"
	"\n"
	"Destinations: a path, http(s)://[USER@]HOST/PATH (WebDAV or PUT; a vSphere datastore\n"
	"URL with ?dcPath=&dsName=), s3://BUCKET/KEY, sftp://USER@HOST/PATH, smb://[USER@]HOST/\n"
	"SHARE/PATH, nfs://HOST/EXPORT/PATH. Password: COLDCLONE_PASSWORD, --password-file FILE,\n"
	"or asked. S3 keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.\n"
	"  --ca-file FILE        trust this CA as well (TLS)\n"
	"  --insecure            do not check TLS certificates (recorded in the manifest)\n"
	"  --s3-endpoint URL     S3-compatible store (default https://s3.REGION.amazonaws.com)\n"
	"  --s3-region REGION    default us-east-1\n"
	"  --ssh-fingerprint FP  SFTP host key, SHA256:... as ssh-keygen -l prints it\n"
	"  --known-hosts FILE    SFTP host keys (default ~/.ssh/known_hosts)\n"
	"  --ssh-key FILE        SFTP private key\n"
	"  --retries N           reconnect attempts after a network failure (default 8)\n"
	"  --timeout S           seconds without progress before a connection is dead (default 60)\n"
	"\n"
	"The image is written under a temporary name and appears under its final name only with\n"
	"its manifest (FILE.manifest.json, written last): an interrupted clone never leaves a\n"
	"finished-looking image.\n";

static const char help_digest[] =
	"usage: coldclone digest [FILE|-]\n"
	"\n"
	"Prints the content digest of raw disk content: SHA-256 over, for each non-zero 1 MiB\n"
	"chunk in order, its 8-byte little-endian offset and its XXH3-128 (16 bytes, as\n"
	"xxhsum -H2 prints it). Check any image with a decoder we did not write:\n"
	"  qemu-img convert -O raw IMG check.raw && coldclone digest check.raw\n";

static const char help_verify[] =
	"usage: coldclone verify IMAGE [MANIFEST]\n"
	"\n"
	"Decodes IMAGE (any format coldclone writes) and checks its SHA-256 and content digest\n"
	"against IMAGE.manifest.json (or MANIFEST). Exit 0 when both match, 5 otherwise.\n";

static const char help_config[] =
	"usage: coldclone config check FILE [--serial SERIAL] [--mac MAC]... [--local]\n"
	"\n"
	"Checks every line of an unattended job file and prints all errors as FILE:LINE: what is\n"
	"wrong; what to do (exit 2). When valid, prints [defaults] and the machine sections, or\n"
	"with --serial/--mac the job that machine would run (its section over [defaults]);\n"
	"--local uses this machine's DMI serial and NIC MACs. The format:\n"
	"\n"
	"  [defaults]\n"
	"  output = https://files.example/p2v/{name}/   # folder or URL; {name} {serial} {mac}\n"
	"  format = vmdk-stream      # default: from the output's extension\n"
	"  disks = all               # or: sda /dev/nvme0n1 serial:S3Z9NB0K\n"
	"  name = {serial}           # default: the DMI serial, else mac-MAC\n"
	"  after = poweroff          # poweroff, reboot or stay (default)\n"
	"  report = http://collector:8080/\n"
	"  [machine SERIAL]          # one machine by DMI serial; keys override [defaults]\n"
	"  [mac 52:54:00:12:34:56]   # one machine by any NIC's MAC\n"
	"\n"
	"Other keys, as the clone options: verify, force, all-blocks, max-unreadable, workers,\n"
	"compress-level, vm-cpus, vm-memory, vm-firmware, vm-bus, vm-nics, ca-file, insecure,\n"
	"retries, timeout, password-file, s3-endpoint, s3-region, ssh-fingerprint, known-hosts,\n"
	"ssh-key. Booleans: yes/no.\n";

static const char help_run[] =
	"usage: coldclone run --config FILE|URL [--serial S] [--mac M]... [--report URL]\n"
	"                     [--progress plain|json|none] [--power] [--after-file FILE]\n"
	"\n"
	"Runs the unattended job of a job file (see 'coldclone help config'): the whole file is\n"
	"checked first (exit 2 with every error and nothing copied), this machine's section is\n"
	"chosen by its DMI serial or a NIC's MAC (or --serial/--mac), then its disks are cloned\n"
	"as by 'clone --all', with progress and the result sent to the job's report URL (or\n"
	"--report). --power carries out 'after = poweroff|reboot'; --after-file writes it to a\n"
	"file instead (the live image's init acts on it). The exit code is the clone's.\n";

static const char help_wizard[] =
	"usage: coldclone wizard\n"
	"\n"
	"Asks on the console, one line at a time (Enter takes the answer in [brackets]): which\n"
	"disks, which destination (tested right away), which format, which machine name; then\n"
	"runs 'clone --all' and shows the result. The answers can be saved as a job file on the\n"
	"COLDCLONE partition (coldclone.conf) for the next machine. The log goes to the\n"
	"partition's reports/ folder, else /run. Exit code: the clone's; 2 at end of input.\n";

static const char help_collect[] =
	"usage: coldclone collect --listen ADDR:PORT [--once N]\n"
	"\n"
	"Receives the JSON events machines POST (coldclone.report=http://ADDR:PORT/) and shows\n"
	"one line per machine: stage, percent, MB/s, ETA, result. On a terminal the table is\n"
	"redrawn; otherwise one line per event, and the table at exit. GET / returns the table.\n"
	"--listen :PORT listens on every address. --once N exits after N machines reported\n"
	"their result.\n";

const char *exit_code_meaning(int rc)
{
	switch (rc) {
	case EXIT_OK: return "every disk cloned";
	case EXIT_USAGE: return "the job or command line is not valid";
	case EXIT_SOURCE: return "a source disk could not be read";
	case EXIT_DEST: return "the destination could not be written";
	case EXIT_VERIFY: return "an image read back differs from what was sent";
	case EXIT_UNREADABLE: return "cloned, with unreadable sectors listed in the manifests";
	case EXIT_TOO_UNREADABLE: return "stopped: too many unreadable sectors";
	case EXIT_REFUSED: return "refused: Windows is hibernated (shut it down fully)";
	case EXIT_INTERRUPTED: return "interrupted: unfinished images were removed";
	default: return "internal error: please report it with the log";
	}
}

int print_help(const char *command)
{
	static const struct { const char *name, *text; } topics[] = {
		{ "list", help_list }, { "clone", help_clone }, { "digest", help_digest }, { "verify", help_verify },
		{ "config", help_config }, { "collect", help_collect }, { "run", help_run },
		{ "wizard", help_wizard },
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
	return error("no help for '%s': commands are list, clone, digest, verify, config, collect, run, wizard", command);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(int, char **); } commands[] = {
		{ "list", cmd_list }, { "clone", cmd_clone }, { "digest", cmd_digest }, { "verify", cmd_verify },
		{ "config", cmd_config }, { "collect", cmd_collect }, { "run", cmd_run },
		{ "wizard", cmd_wizard },
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
