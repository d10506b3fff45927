#!/usr/bin/env bash
# Real I/O errors: the source is served through QEMU's blkdebug driver and a FUSE export,
# so reads of chosen sectors fail with EIO in the kernel. The clone must finish, report
# exactly the failed range (the kernel reads 4 KiB pages, so a bad sector costs its
# page), store zeros there, match the source everywhere else, and exit 6; with
# --max-unreadable it stops with exit 7 and leaves nothing under the final name.
source "$(dirname "$0")/../lib.sh"
requires qemu-storage-daemon qemu-img openssl jq cmp
[ -c /dev/fuse ] || { t_skip all "no /dev/fuse"; exit 0; }

disk="$T_TMP/disk.img"
openssl enc -aes-128-ctr -pass pass:bad -nosalt -pbkdf2 < /dev/zero 2>/dev/null | head -c 64M > "$disk"
cat > "$T_TMP/rules.conf" <<'R'
[inject-error]
event = "read_aio"
errno = "5"
sector = "20000"
once = "off"

[inject-error]
event = "read_aio"
errno = "5"
sector = "50001"
once = "off"
R
exported="$T_TMP/exported"
touch "$exported"
qemu-storage-daemon \
	--blockdev driver=file,node-name=f,filename="$disk",read-only=on \
	--blockdev driver=blkdebug,node-name=bd,image=f,config="$T_TMP/rules.conf",read-only=on \
	--blockdev driver=raw,node-name=r,file=bd,read-only=on \
	--export type=fuse,id=e,node-name=r,mountpoint="$exported",writable=off > "$T_TMP/qsd.log" 2>&1 &
qsd=$!
cleanup "kill $qsd; sleep 0.3; umount '$exported' 2>/dev/null"
for _ in $(seq 50); do [ "$(stat -c %s "$exported")" = 67108864 ] && break; sleep 0.1; done
if dd if="$exported" of=/dev/null bs=4k skip=2500 count=1 2>/dev/null; then
	t_skip all "blkdebug did not inject errors here ($(cat "$T_TMP/qsd.log"))"; exit 0
fi

out="$T_TMP/out.qcow2"
"$COLDCLONE" clone --source "$exported" --output "$out" --progress none > "$T_TMP/log" 2>&1; rc=$?
[ $rc -eq 6 ] && t_pass "exit 6 when sectors were unreadable" || t_fail "exit 6 when sectors were unreadable" "rc $rc: $(tail -3 "$T_TMP/log")"
got=$(jq -c '[.unreadable[] | [.start, .length]]' "$out.manifest.json")
want="[[$((20000 / 8 * 4096)),4096],[$((50001 / 8 * 4096)),4096]]"
[ "$got" = "$want" ] && t_pass "manifest lists exactly the failed ranges" || t_fail "manifest lists exactly the failed ranges" "got $got want $want"
grep -q "bad sector" "$T_TMP/log" && t_pass "console names the bad sectors" || t_fail "console names the bad sectors" "$(cat "$T_TMP/log")"
cp "$disk" "$T_TMP/expected.img"
dd if=/dev/zero of="$T_TMP/expected.img" bs=4096 seek=2500 count=1 conv=notrunc status=none
dd if=/dev/zero of="$T_TMP/expected.img" bs=4096 seek=$((50001 / 8)) count=1 conv=notrunc status=none
check "image equals the source with the bad pages zeroed" qemu-img compare -f raw -F qcow2 "$T_TMP/expected.img" "$out"
check "coldclone verify accepts the image" "$COLDCLONE" verify "$out"

out2="$T_TMP/limit.qcow2"
"$COLDCLONE" clone --source "$exported" --output "$out2" --max-unreadable 8 --progress none > "$T_TMP/log2" 2>&1; rc=$?
[ $rc -eq 7 ] && t_pass "--max-unreadable stops with exit 7" || t_fail "--max-unreadable stops with exit 7" "rc $rc: $(tail -3 "$T_TMP/log2")"
[ ! -e "$out2" ] && [ ! -e "$out2.manifest.json" ] && [ ! -e "$out2.partial" ] && t_pass "--max-unreadable leaves nothing behind" \
	|| t_fail "--max-unreadable leaves nothing behind" "$(ls "$T_TMP")"
