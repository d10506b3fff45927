# tests/lib.sh - shared helpers for integration tests (sourced, not run).
# Each test script calls `t_pass NAME`, `t_fail NAME WHY` or `t_skip NAME WHY` per case;
# results go to $RESULTS (one line per case) so tests/run.sh can add them up.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
# The static binary is what ships; the sanitizer build catches memory errors. Tests use
# the sanitizer build by default (COLDCLONE=... overrides).
COLDCLONE=${COLDCLONE:-$BUILD/asan/coldclone}
COLDCLONE_STATIC=$BUILD/coldclone
FIXTURES=${FIXTURES:-$BUILD/fixtures}
RESULTS=${RESULTS:-/dev/null}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=99}

T_NAME=$(basename "$0" .sh)
T_TMP=$(mktemp -d "/tmp/cc-$T_NAME.XXXXXX")
T_CLEANUP=()

cleanup() { T_CLEANUP+=("$*"); }
t_cleanup_run() {
	local i
	for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUP[$i]}" || true; done
	rm -rf "$T_TMP"
}
trap t_cleanup_run EXIT

t_pass() { echo "PASS $T_NAME: $1"; echo "pass $T_NAME: $1" >> "$RESULTS"; }
t_fail() { echo "FAIL $T_NAME: $1: $2"; echo "fail $T_NAME: $1" >> "$RESULTS"; }
t_skip() { echo "SKIP $T_NAME: $1: $2"; echo "skip $T_NAME: $1" >> "$RESULTS"; }

# requires TOOL...: skip the whole script (one skip line) when a tool is missing.
requires() {
	local t
	for t in "$@"; do
		if ! command -v "$t" > /dev/null 2>&1; then
			t_skip "all" "needs $t"
			exit 0
		fi
	done
}

# check NAME CMD...: run CMD, pass when it exits 0; keep its output on failure.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		t_pass "$name"
	else
		t_fail "$name" "exit $? from: $*"
		printf '%s\n' "$out" | tail -20 | sed 's/^/    /'
	fi
}

# Fixture disks are built once per run (tests/fixtures/make-disks.sh), shared by scripts.
need_fixtures() {
	if [ ! -f "$FIXTURES/.done" ]; then
		rm -rf "$FIXTURES"
		mkdir -p "$FIXTURES"
		bash "$ROOT/tests/fixtures/make-disks.sh" "$FIXTURES" > "$FIXTURES.log" 2>&1 || {
			echo "fixture build failed, see $FIXTURES.log"; tail -20 "$FIXTURES.log"; return 1; }
		touch "$FIXTURES/.done"
	fi
}

# json_get FILE JQ_FILTER
json_get() { jq -r "$2" "$1"; }

# Content digest of any image through qemu-img's decoder, not ours. qemu-img 7.2 cannot
# convert into a pipe (it truncates its output), so go through a sparse file.
qemu_digest() {
	local fmt=$1 img=$2 tmp
	tmp=$(mktemp "$T_TMP/digest.XXXXXX")
	qemu-img convert -f "$fmt" -O raw "$img" "$tmp" && "$COLDCLONE" digest "$tmp"
	rm -f "$tmp"
}

# qemu-img's name for a coldclone format.
qemu_fmt() {
	case "$1" in
	raw) echo raw ;; qcow2) echo qcow2 ;; vmdk|vmdk-stream) echo vmdk ;; vhdx) echo vhdx ;;
	vhd|vhd-fixed) echo vpc ;; *) echo "$1" ;;
	esac
}

# free_port: a TCP port on 127.0.0.1 nobody listens on now (for servers the tests start).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for_line FILE TEXT SECONDS: wait until FILE contains TEXT; non-zero on timeout.
wait_for_line() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# live_image_ensure: (re)build $BUILD/image (image-build/build.sh) when it is missing or older
# than what goes into it; downloads are cached. Returns 2 when there is no static cloner to
# build it from, 1 when the build fails (the reason on stdout).
live_image_ensure() {
	local iso=$BUILD/image/coldclone.iso
	if [ ! -f "$iso" ] || [ ! -f "$BUILD/image/pxe/initrd.img" ] || [ -n "$(find "$ROOT/image-build" \
			"$ROOT/rootfs" "$ROOT/drivers" "$BUILD/coldclone" -newer "$iso" -type f ! -name "*.md" \
			2> /dev/null | head -1)" ]; then
		[ -x "$BUILD/coldclone" ] || { echo "no $BUILD/coldclone: run make cloner"; return 2; }
		echo "building the image: $iso" >&2
		bash "$ROOT/image-build/build.sh" "$BUILD/image" "$BUILD/coldclone" > "$T_TMP/build.log" 2>&1 ||
			{ tail -5 "$T_TMP/build.log"; return 1; }
	fi
	return 0
}

# kmod_hello DIR KVER: build DIR/hello.ko, a tiny unsigned module that logs "coldclone-hello:
# loaded", against the headers of kernel KVER (apt-get installs them when missing). Prints
# the reason and returns non-zero when it cannot.
kmod_hello() {
	local d=$1 kver=$2
	[ -n "$kver" ] || { echo "kernel version unknown"; return 1; }
	if [ ! -d "/usr/src/linux-headers-$kver" ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"linux-headers-$kver" > "$T_TMP/headers.log" 2>&1 ||
			{ echo "cannot install linux-headers-$kver: $(tail -1 "$T_TMP/headers.log")"; return 1; }
	fi
	command -v make > /dev/null && command -v gcc > /dev/null || { echo "needs make and gcc"; return 1; }
	mkdir -p "$d"
	cat > "$d/hello.c" <<-'C'
	#include <linux/module.h>
	#include <linux/init.h>
	static int __init hello_init(void) { pr_info("coldclone-hello: loaded\n"); return 0; }
	static void __exit hello_exit(void) { }
	module_init(hello_init);
	module_exit(hello_exit);
	MODULE_LICENSE("GPL");
	MODULE_DESCRIPTION("coldclone boot test module");
	C
	echo 'obj-m := hello.o' > "$d/Kbuild"
	make -C "/usr/src/linux-headers-$kver" M="$d" modules > "$d/build.log" 2>&1 ||
		{ echo "module build failed: $(tail -3 "$d/build.log")"; return 1; }
	[ -f "$d/hello.ko" ] || { echo "module build made no hello.ko"; return 1; }
}

# start_nginx PORT LOCATIONS: nginx on 127.0.0.1:PORT serving $T_TMP/www, with the given
# location blocks (WebDAV's PROPFIND/OPTIONS come from the dav-ext module), stopped at the
# end of the test. Non-zero when it cannot start.
NGINX_DAV_EXT=/usr/lib/nginx/modules/ngx_http_dav_ext_module.so
start_nginx() {
	mkdir -p "$T_TMP/www" "$T_TMP/body"
	cat > "$T_TMP/nginx.conf" <<-NGINX
	load_module $NGINX_DAV_EXT;
	user root;
	worker_processes 1;
	error_log $T_TMP/error.log;
	pid $T_TMP/nginx.pid;
	events { worker_connections 64; }
	http {
		access_log $T_TMP/access.log;
		client_body_temp_path $T_TMP/body;
		proxy_temp_path $T_TMP/body; fastcgi_temp_path $T_TMP/body;
		uwsgi_temp_path $T_TMP/body; scgi_temp_path $T_TMP/body;
		client_max_body_size 0;
		server { listen 127.0.0.1:$1; root $T_TMP/www; $2 }
	}
	NGINX
	nginx -c "$T_TMP/nginx.conf" -p "$T_TMP" || return 1
	cleanup 'kill $(cat "$T_TMP/nginx.pid") 2>/dev/null'
}

# start_faultproxy LISTEN_PORT TARGET_PORT CUT_AFTER CUTS: tests/tools/faultproxy.py in the
# background, cutting the first CUTS connections that carry more than CUT_AFTER bytes; one
# line per cut goes to $T_TMP/cuts (emptied first). Sets PROXY; stop_faultproxy ends it.
start_faultproxy() {
	rm -f "$T_TMP/cuts"
	python3 "$ROOT/tests/tools/faultproxy.py" --listen "$1" --target "$2" --cut-after "$3" --cuts "$4" \
		--log "$T_TMP/cuts" > "$T_TMP/proxy.out" 2>&1 &
	PROXY=$!
	cleanup "kill $PROXY 2>/dev/null"
	wait_for_line "$T_TMP/proxy.out" ready 10
}
stop_faultproxy() { kill "$PROXY" 2>/dev/null; wait "$PROXY" 2>/dev/null; }

# log_expect LOG CASE PATTERN: pass CASE when the serial log LOG holds PATTERN (a fixed
# string); else fail with the log's tail and set KEEP=1 (the caller keeps its logs).
log_expect() {
	if grep -aqF -- "$3" "$1"; then
		t_pass "$2"
	else
		t_fail "$2" "no '$3' in the serial log $(basename "$1") (${ELAPSED:-?}s); its tail:"
		tr -d '\r' < "$1" | grep -av '^\s*$' | tail -25 | sed 's/^/    /'
		KEEP=1
	fi
}
