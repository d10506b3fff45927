#!/usr/bin/env bash
# Hostile input: broken tables, truncated disks, absurd filesystem values. Each must give
# a clear error or a whole-partition fallback, never a crash (the sanitizer build exits
# 99 on any memory error or undefined behaviour).
source "$(dirname "$0")/../lib.sh"
requires jq
need_fixtures || { t_fail fixtures "could not build the fixture disks"; exit 0; }
H="$FIXTURES/hostile"

run() {   # name disk -> sets rc, log in $T_TMP/log, image $T_TMP/h.raw
	rm -f "$T_TMP"/h.raw*
	"$COLDCLONE" clone --source "$2" --output "$T_TMP/h.raw" --progress none > "$T_TMP/log" 2>&1
	rc=$?
	if [ $rc -ge 99 ]; then t_fail "$1: no crash" "exit $rc: $(tail -20 "$T_TMP/log")"; else t_pass "$1: no crash (exit $rc)"; fi
	"$COLDCLONE" list --source "$2" --json > "$T_TMP/list.json" 2> "$T_TMP/list.log"
	lrc=$?
	[ $lrc -lt 99 ] && t_pass "$1: list does not crash" || t_fail "$1: list does not crash" "exit $lrc: $(tail -20 "$T_TMP/list.log")"
}
# expect_clone_ok name: the clone worked and restores the disk content exactly where copied
expect_same_content() {
	[ $rc -eq 0 ] || { t_fail "$1: clone succeeds" "exit $rc: $(tail -3 "$T_TMP/log")"; return; }
	want=$("$COLDCLONE" digest "$T_TMP/h.raw")
	[ "$want" = "$(jq -r .content.digest "$T_TMP/h.raw.manifest.json")" ] && t_pass "$1: digest consistent" \
		|| t_fail "$1: digest consistent" "file digest $want differs from the manifest"
}

run "tiny (1000 bytes)" "$H/tiny.img"
[ $rc -eq 3 ] && grep -q "not a whole number of 512-byte sectors" "$T_TMP/log" && t_pass "tiny: clear source error" \
	|| t_fail "tiny: clear source error" "exit $rc: $(cat "$T_TMP/log")"

run "empty disk" "$H/empty.img"
expect_same_content "empty disk"
[ "$(jq -r .content.bytes_stored "$T_TMP/h.raw.manifest.json")" = 0 ] && t_pass "empty disk: nothing stored" || t_fail "empty disk: nothing stored" "$(jq .content "$T_TMP/h.raw.manifest.json")"

run "mbr overlapping partitions" "$H/mbr-overlap.img"
expect_same_content "mbr overlap"
jq -e '[.partitions[] | select(.reason | test("overlaps"))] | length >= 2' "$T_TMP/h.raw.manifest.json" > /dev/null \
	&& t_pass "overlap: both partitions copied whole, reason given" || t_fail "overlap: reason" "$(jq -c .partitions "$T_TMP/h.raw.manifest.json")"

run "mbr partition past the end" "$H/mbr-past-end.img"
expect_same_content "past end"
grep -q "runs past the end" "$T_TMP/log" && t_pass "past end: warned" || t_fail "past end: warned" "$(cat "$T_TMP/log")"

run "truncated disk" "$H/truncated.img"
expect_same_content "truncated"

run "gpt primary header broken" "$H/gpt-bad-header.img"
expect_same_content "gpt bad header"
[ "$(jq -r .source.partition_table "$T_TMP/h.raw.manifest.json")" = gpt ] && t_pass "gpt bad header: backup header used" \
	|| t_fail "gpt bad header: backup header used" "$(jq -c .source "$T_TMP/h.raw.manifest.json")"

run "gpt both headers broken" "$H/gpt-bad-both.img"
expect_same_content "gpt both broken"

run "gpt entries CRC wrong" "$H/gpt-bad-entries.img"
expect_same_content "gpt bad entries"

run "ntfs absurd boot sector" "$H/ntfs-absurd.img"
expect_same_content "ntfs absurd"
jq -e '.partitions[0].method == "all-blocks"' "$T_TMP/h.raw.manifest.json" > /dev/null \
	&& t_pass "ntfs absurd: partition copied whole" || t_fail "ntfs absurd: partition copied whole" "$(jq -c .partitions "$T_TMP/h.raw.manifest.json")"
