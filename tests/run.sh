#!/usr/bin/env bash
# tests/run.sh - run every unit test (sanitizer build) and integration test, then print
# one summary line "N passed, N failed, N skipped". Exit non-zero on any failure.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export BUILD=${BUILD:-build}
export RESULTS=$(mktemp /tmp/cc-results.XXXXXX)
export ASAN_OPTIONS=detect_leaks=1:exitcode=99
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99
ONLY=${ONLY:-}

for t in "$BUILD"/asan/tests/test-*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	case "$name" in *.o|*.d) continue ;; esac
	[ -n "$ONLY" ] && [[ "$name" != *$ONLY* ]] && continue
	log=$(mktemp)
	if "$t" > "$log" 2>&1; then
		echo "PASS unit: $name ($(tail -1 "$log"))"
		echo "pass unit: $name" >> "$RESULTS"
	else
		echo "FAIL unit: $name"
		tail -30 "$log" | sed 's/^/    /'
		echo "fail unit: $name" >> "$RESULTS"
	fi
	rm -f "$log"
done

for t in tests/integration/test-*.sh; do
	[ -f "$t" ] || continue
	[ -n "$ONLY" ] && [[ "$t" != *$ONLY* ]] && continue
	echo "== $t"
	start=$(date +%s)
	bash "$t" || echo "fail $(basename "$t" .sh): script exited $?" >> "$RESULTS"
	echo "   ($(( $(date +%s) - start )) s)"
done

passed=$(grep -c '^pass ' "$RESULTS")
failed=$(grep -c '^fail ' "$RESULTS")
skipped=$(grep -c '^skip ' "$RESULTS")
rm -f "$RESULTS"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
