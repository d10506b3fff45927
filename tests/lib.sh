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
