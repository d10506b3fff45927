#!/usr/bin/env bash
# Command line contract: exit codes, help, version, format from the extension, JSON
# progress, refusal to overwrite, and the static binary.
source "$(dirname "$0")/../lib.sh"
requires jq file qemu-img
cc() { "$COLDCLONE" "$@"; }
expect_rc() { local name=$1 want=$2; shift 2; "$@" > "$T_TMP/out" 2> "$T_TMP/err"; local rc=$?
	[ $rc -eq "$want" ] && t_pass "$name (exit $want)" || t_fail "$name" "exit $rc, want $want: $(head -3 "$T_TMP/err")"; }

disk="$T_TMP/d.img"
truncate -s 32M "$disk"
printf 'label: gpt\nstart=2048, size=20480, type=L\n' | sfdisk -q "$disk"
head -c 4M /dev/urandom | dd of="$disk" bs=1M seek=2 conv=notrunc status=none

file "$COLDCLONE_STATIC" | grep -q 'statically linked' && t_pass "static binary" || t_fail "static binary" "$(file "$COLDCLONE_STATIC")"
"$COLDCLONE_STATIC" --version | grep -q "^coldclone $(cat "$ROOT/VERSION")$" && t_pass "--version" || t_fail "--version" "$("$COLDCLONE_STATIC" --version)"
expect_rc "no arguments" 2 cc
expect_rc "unknown command" 2 cc frobnicate
expect_rc "help clone" 0 cc help clone
grep -q -- "--all-blocks" "$T_TMP/out" && t_pass "help clone lists options" || t_fail "help clone lists options" "$(cat "$T_TMP/out")"
expect_rc "clone without --output" 2 cc clone --source "$disk"
expect_rc "bad --progress" 2 cc clone --source "$disk" --output "$T_TMP/x.raw" --progress fancy
expect_rc "unknown extension" 2 cc clone --source "$disk" --output "$T_TMP/x.unknown"
expect_rc "missing source" 3 cc clone --source "$T_TMP/nope.img" --output "$T_TMP/x.raw"
expect_rc "missing destination folder" 4 cc clone --source "$disk" --output "$T_TMP/no/such/dir/x.raw"
grep -q "no/such/dir" "$T_TMP/err" && t_pass "destination error names the path" || t_fail "destination error names the path" "$(cat "$T_TMP/err")"

expect_rc ".vmdk clone" 0 cc clone --source "$disk" --output "$T_TMP/x.vmdk" --progress json
[ "$(qemu-img info --output=json "$T_TMP/x.vmdk" | jq -r '."format-specific".data."create-type"')" = streamOptimized ] \
	&& t_pass ".vmdk means streamOptimized" || t_fail ".vmdk means streamOptimized" "$(qemu-img info "$T_TMP/x.vmdk")"
grep '^{' "$T_TMP/err" | jq -e . > /dev/null && t_pass "json progress lines parse" || t_fail "json progress lines parse" "$(head -5 "$T_TMP/err")"
grep '^{' "$T_TMP/err" | jq -se 'map(select(.event == "progress" and .final == true)) | length == 1 and .[0].percent == 100' > /dev/null \
	&& t_pass "json progress ends at 100%" || t_fail "json progress ends at 100%" "$(tail -3 "$T_TMP/err")"
expect_rc "existing output refused" 4 cc clone --source "$disk" --output "$T_TMP/x.vmdk"
expect_rc "--force replaces" 0 cc clone --source "$disk" --output "$T_TMP/x.vmdk" --force --progress none

expect_rc "list --json" 0 cc list --source "$disk" --json
jq -e '.disks[0].partition_table == "gpt" and (.disks[0].partitions | length) == 1 and .disks[0].partitions[0].method == "all-blocks"' "$T_TMP/out" > /dev/null \
	&& t_pass "list --json content" || t_fail "list --json content" "$(cat "$T_TMP/out")"
expect_rc "list text" 0 cc list --source "$disk"
grep -q "no filesystem recognised" "$T_TMP/out" && t_pass "list text gives the reason" || t_fail "list text gives the reason" "$(cat "$T_TMP/out")"

# verify catches a changed image
cc clone --source "$disk" --output "$T_TMP/v.qcow2" --progress none -q
printf 'X' | dd of="$T_TMP/v.qcow2" bs=1 seek=$(( $(stat -c %s "$T_TMP/v.qcow2") - 100 )) conv=notrunc status=none
expect_rc "verify detects a modified image" 5 cc verify "$T_TMP/v.qcow2"
expect_rc "digest of a missing file" 3 cc digest "$T_TMP/nope"
