/* test-config.c - the job file parser from buffers: section choice and merging, typed
 * values and dest_options, line-numbered errors, and a fuzz replay (random and mutated
 * text must never crash or leak; every error line must carry the file name). */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "test.h"
#include "testutil.h"

static const char good[] =
	"\xef\xbb\xbf# a BOM and comments are fine\r\n"
	"output = /media/target/{name}   ; before any section: [defaults]\n"
	"retries = 3\n"
	"[machine SRV01]\n"
	"output = \"https://files.example/p2v/{name}/#x\"   # quoted keeps the '#'\n"
	"disks = sda, /dev/nvme0n1 serial:ABC\n"
	"verify = yes\n"
	"insecure = on\n"
	"ca-file = ca.pem\n"
	"[mac 52-54-00-AB-CD-EF]\n"
	"name = web-{mac}\n"
	"after = reboot\n"
	"timeout = 30\n";

static size_t count_errors(const char *text, const char *want)
{
	struct config *cfg = config_parse_buffer("t.conf", text, strlen(text));
	size_t n = config_nerrors(cfg);
	if (want) {
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found |= strstr(config_error(cfg, i), want) != NULL;
		if (!found) {
			fprintf(stderr, "no error '%s' for:\n%s\n", want, text);
			for (size_t i = 0; i < n; i++)
				fprintf(stderr, "  got: %s\n", config_error(cfg, i));
		}
		CHECK(found);
	}
	config_free(cfg);
	return n;
}

int main(void)
{
	struct config *cfg = config_parse_buffer("/stick/job.conf", good, strlen(good));
	CHECK_EQ_U64(config_nerrors(cfg), 0);
	for (size_t i = 0; i < config_nerrors(cfg); i++)
		fprintf(stderr, "%s\n", config_error(cfg, i));

	const char *macs[] = { "00:11:22:33:44:55", "52:54:00:ab:cd:ef" };
	struct config_job *j = config_for_machine(cfg, "srv01", macs, 2);  /* serial wins over MAC */
	CHECK(j && strcmp(j->section, "machine SRV01") == 0);
	if (j) {
		CHECK(strcmp(j->output, "https://files.example/p2v/srv01/#x") == 0);
		CHECK(!j->all_disks && j->ndisks == 3 && strcmp(j->disks[1], "/dev/nvme0n1") == 0 &&
		      strcmp(j->disks[2], "serial:ABC") == 0);
		CHECK(j->verify && j->dest.insecure && !j->force);
		CHECK_EQ_U64(j->dest.retries, 3);     /* from [defaults] */
		CHECK_EQ_U64(j->dest.timeout, 60);    /* built-in */
		CHECK(j->dest.ca_file && strcmp(j->dest.ca_file, "/stick/ca.pem") == 0);
		CHECK(j->after == CONFIG_AFTER_STAY);
	}
	config_job_free(j);

	j = config_for_machine(cfg, "other", macs, 2);
	CHECK(j && strcmp(j->section, "mac 52:54:00:ab:cd:ef") == 0);
	if (j) {
		CHECK(strcmp(j->name, "web-52-54-00-ab-cd-ef") == 0);
		CHECK(strcmp(j->output, "/media/target/web-52-54-00-ab-cd-ef") == 0);
		CHECK(j->after == CONFIG_AFTER_REBOOT && j->dest.timeout == 30 && j->all_disks);
	}
	config_job_free(j);

	j = config_for_machine(cfg, NULL, NULL, 0);  /* nothing known: no name for {name} */
	CHECK(j == NULL);
	static const char plain[] = "[defaults]\noutput = /media/target\n";
	struct config *p = config_parse_buffer(NULL, plain, sizeof plain - 1);
	j = config_for_machine(p, NULL, NULL, 0);
	CHECK(j && strcmp(j->section, "defaults") == 0 && j->name == NULL && j->all_disks);
	config_job_free(j);
	config_free(p);
	j = config_for_machine(cfg, "X/1", macs, 1);
	CHECK(j && strcmp(j->output, "/media/target/X_1") == 0);
	config_job_free(j);
	config_free(cfg);

	char mac[18];
	CHECK(config_normalize_mac("AA-bb-CC-dd-EE-ff", mac) == 0 && strcmp(mac, "aa:bb:cc:dd:ee:ff") == 0);
	CHECK(config_normalize_mac("aa:bb-cc:dd:ee:ff", mac) < 0);
	CHECK(config_normalize_mac("aa:bb:cc:dd:ee:ff:00", mac) < 0);
	CHECK(config_normalize_mac("aa:bb:cc:dd:ee", mac) < 0);

	/* Errors: each with its line, all of them collected. */
	CHECK(count_errors("[defaults]\noutput = /x\nouptut = /y\n", "t.conf:3: unknown key 'ouptut'; did you mean 'output'?") == 1);
	CHECK(count_errors("output = /x\nformat = vmdk9\n", "t.conf:2: unknown format 'vmdk9'") == 1);
	CHECK(count_errors("output = /x\nformat = raw\nformat = raw\n", "t.conf:3: duplicate key 'format' (first set on line 2)") == 1);
	CHECK(count_errors("[defaults\noutput = /x\n", "t.conf:1: section header without a closing ']'") >= 1);
	CHECK(count_errors("format = raw\n", "missing required key 'output'") == 1);
	CHECK(count_errors("output = /x\n[mac 52:54:00:zz:00:00]\n", "t.conf:2: bad MAC") == 1);
	CHECK(count_errors("output = relative/dir\n", "t.conf:1: output 'relative/dir' is a relative path") == 1);
	CHECK(count_errors("output = https://u:pw@h/x\n", "output holds a password") == 1);
	CHECK(count_errors("output = /x/{host}\n", "unknown placeholder '{host}'") == 1);
	CHECK(count_errors("output = /x\nname = \"a\n", "no closing quote") == 1);
	CHECK(count_errors("[machine A]\nformat = raw\n", "t.conf:1: missing required key 'output' in [machine A]") == 1);
	CHECK(count_errors("output = /x\n[machine a]\n[machine A]\n", "t.conf:3: duplicate section [machine a] (first on line 2)") == 1);
	static const char nul[] = "output = /x\nx\0y = 1\n";
	p = config_parse_buffer("n.conf", nul, sizeof nul - 1);
	CHECK(config_nerrors(p) == 1 && strstr(config_error(p, 0), "n.conf:2: NUL byte"));
	config_free(p);
	CHECK(count_errors("output = /x\nworkers = 0\nworkers = 65\ncompress-level = 1K\n", NULL) == 3);
	CHECK(count_errors("a\nb\nc\nd\n", NULL) == 5);  /* four bad lines and no output */

	/* Fuzz replay: random bytes, and the good file with bytes flipped. */
	uint64_t seed = 42;
	uint8_t buf[2048];
	for (int round = 0; round < 2000; round++) {
		size_t n;
		if (round % 2) {
			test_fill_random(buf, sizeof buf, &seed);
			n = buf[0] * 8u % sizeof buf;
			for (size_t i = 0; i < n; i++)  /* mostly printable, some newlines and brackets */
				buf[i] = buf[i] % 7 == 0 ? "\n[]=#\"{"[buf[i] % 7] : (uint8_t)(32 + buf[i] % 95);
		} else {
			n = sizeof good - 1;
			memcpy(buf, good, n);
			test_fill_random(buf + n, 8, &seed);
			for (int k = 0; k < 4; k++)
				buf[buf[n + k] * 7u % n] = buf[n + 4 + k];
		}
		cfg = config_parse_buffer("fuzz", (const char *)buf, n);
		for (size_t i = 0; i < config_nerrors(cfg); i++)
			CHECK(strncmp(config_error(cfg, i), "fuzz", 4) == 0);
		if (config_nerrors(cfg) == 0) {
			j = config_for_machine(cfg, "SRV01", macs, 2);
			config_job_free(j);
		}
		config_free(cfg);
	}
	return test_summary();
}
