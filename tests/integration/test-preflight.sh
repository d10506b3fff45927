#!/usr/bin/env bash
# Before copying, coldclone says what will not work after migration. A Windows volume left
# hibernated (or shut down with Fast Startup: hiberfil.sys starts with "HIBR") is refused
# with exit 8 and instructions, and nothing is written; --force clones it whole.
source "$(dirname "$0")/../lib.sh"
requires mkntfs ntfscp sfdisk jq
MiB=1048576
D=$T_TMP/hib.img
truncate -s 64M "$D"
printf 'label: gpt\nstart=2048, size=48M, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' | sfdisk -q "$D"
truncate -s 48M "$T_TMP/ntfs.img"
mkntfs -q -F -Q -L WIN "$T_TMP/ntfs.img" > /dev/null 2>&1
{ printf 'HIBR'; head -c 65532 /dev/zero; } > "$T_TMP/hiberfil.sys"
ntfscp -q "$T_TMP/ntfs.img" "$T_TMP/hiberfil.sys" hiberfil.sys > /dev/null 2>&1
dd if="$T_TMP/ntfs.img" of="$D" bs=$MiB seek=1 conv=notrunc status=none

"$COLDCLONE" list --source "$D" --json > "$T_TMP/list.json" 2>&1
[ "$(jq -r '.disks[0].partitions[0].state' "$T_TMP/list.json" 2>/dev/null)" = hibernated ] \
	&& t_pass "list shows the NTFS volume as hibernated" || t_fail "list state" "$(head -c 400 "$T_TMP/list.json")"

"$COLDCLONE" clone --source "$D" --output "$T_TMP/out.qcow2" --progress none > "$T_TMP/log" 2>&1; rc=$?
[ $rc -eq 8 ] && grep -q 'shutdown /s /t 0' "$T_TMP/log" && t_pass "hibernated Windows refused (exit 8) with what to do" \
	|| t_fail "hibernated refused" "exit $rc: $(tail -3 "$T_TMP/log")"
[ -z "$(ls "$T_TMP" | grep out.qcow2)" ] && t_pass "refused: nothing written" || t_fail "refused: leftovers" "$(ls "$T_TMP")"

"$COLDCLONE" clone --source "$D" --output "$T_TMP/out.qcow2" --progress none --force > "$T_TMP/log" 2>&1; rc=$?
[ $rc -eq 0 ] && [ "$(jq -r '.partitions[0].method' "$T_TMP/out.qcow2.manifest.json")" = all-blocks ] \
	&& jq -r '.partitions[0].reason' "$T_TMP/out.qcow2.manifest.json" | grep -q hibernated \
	&& t_pass "--force clones it whole, the manifest says why" \
	|| t_fail "--force" "exit $rc: $(tail -3 "$T_TMP/log"); $(jq -c '.partitions[0]' "$T_TMP/out.qcow2.manifest.json" 2>&1)"
