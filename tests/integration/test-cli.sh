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

# The content digest as the README defines it, computed by Debian's python3-xxhash and
# hashlib rather than our code: a sparse image with data in three chunks, one of them the
# short last chunk, and an all-zero chunk between them that must be left out.
dd_img="$T_TMP/dg.raw"
truncate -s $(( 5 * 1048576 + 12800 )) "$dd_img"
head -c 700000 /dev/urandom | dd of="$dd_img" bs=4096 seek=10 conv=notrunc status=none
printf 'tail' | dd of="$dd_img" bs=1 seek=$(( 5 * 1048576 + 100 )) conv=notrunc status=none
dd if=/dev/zero of="$dd_img" bs=1M seek=2 count=1 conv=notrunc status=none
printf 'x' | dd of="$dd_img" bs=1 seek=$(( 3 * 1048576 + 7 )) conv=notrunc status=none
want=$(/usr/bin/python3 - "$dd_img" <<'PY'
import hashlib, struct, sys, xxhash
outer = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    off = 0
    while chunk := f.read(1 << 20):
        if chunk.count(0) != len(chunk):
            outer.update(struct.pack("<Q", off) + xxhash.xxh3_128_digest(chunk))
        off += len(chunk)
print(outer.hexdigest())
PY
)
got=$(cc digest "$dd_img")
[ -n "$want" ] && [ "$got" = "$want" ] && t_pass "content digest matches the README's definition (python hashlib + xxhash)" \
	|| t_fail "content digest matches the README's definition" "coldclone $got, python $want"
got=$(cc digest - < "$dd_img")
[ "$got" = "$want" ] && t_pass "digest of a pipe equals digest of the file" || t_fail "digest of a pipe" "$got vs $want"
cc clone --source "$dd_img" --output "$T_TMP/dg.vhdx" --all-blocks --progress none -q
[ "$(jq -r .content.digest "$T_TMP/dg.vhdx.manifest.json")" = "$want" ] \
	&& t_pass "clone manifest carries the same digest" || t_fail "clone manifest digest" "$(jq -c .content "$T_TMP/dg.vhdx.manifest.json")"

# A manifest written with another digest algorithm: the image SHA-256 is still checked, the
# digest is reported as not comparable instead of a false mismatch.
jq '.content.algorithm = "sha256 over (le64 offset, sha256) of each non-zero 1 MiB chunk" | .content.digest = "00"' \
	"$T_TMP/dg.vhdx.manifest.json" > "$T_TMP/old.manifest.json"
expect_rc "verify with an older digest algorithm" 0 cc verify "$T_TMP/dg.vhdx" "$T_TMP/old.manifest.json"
grep -q "content digest not checked" "$T_TMP/out" && grep -q "image sha256.*OK" "$T_TMP/out" \
	&& t_pass "verify says why the digest was not compared" || t_fail "verify older algorithm output" "$(cat "$T_TMP/out")"
