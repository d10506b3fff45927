#!/usr/bin/env bash
# A real block device source (a loop device): the kernel's read-only flag is set during
# the clone and restored after; a disk with a partition mounted read-write is refused.
source "$(dirname "$0")/../lib.sh"
requires losetup blockdev openssl qemu-img
img="$T_TMP/disk.img"
truncate -s 600M "$img"
printf 'label: dos\nstart=2048, size=204800, type=83\n' | sfdisk -q "$img"
openssl enc -aes-128-ctr -pass pass:blk -nosalt -pbkdf2 < /dev/zero 2>/dev/null | head -c 500M | dd of="$img" bs=1M seek=100 conv=notrunc status=none
dev=$(losetup -f --show -P "$img" 2>/dev/null) || { t_skip all "cannot create loop devices here"; exit 0; }
cleanup "losetup -d $dev"

blockdev --setrw "$dev"   # a recycled loop device may keep an earlier read-only flag
[ "$(blockdev --getro "$dev")" = 0 ] || { t_fail setup "$dev starts read-only"; exit 0; }
"$COLDCLONE" clone --source "$dev" --output "$T_TMP/out.vmdk" --workers 1 --progress none -q 2> "$T_TMP/log" &
pid=$!
seen=0
for _ in $(seq 200); do
	[ "$(blockdev --getro "$dev")" = 1 ] && { seen=1; break; }
	kill -0 $pid 2>/dev/null || break
	sleep 0.05
done
wait $pid; rc=$?
[ $seen = 1 ] && t_pass "kernel read-only flag set during the clone" || t_fail "kernel read-only flag set during the clone" "never saw ro=1"
[ "$(blockdev --getro "$dev")" = 0 ] && t_pass "read-only flag restored after" || t_fail "read-only flag restored after" "still ro"
[ $rc -eq 0 ] && t_pass "clone of a block device" || t_fail "clone of a block device" "exit $rc: $(tail -3 "$T_TMP/log")"
check "image equals the device where data is" qemu-img compare -f raw -F vmdk "$dev" "$T_TMP/out.vmdk"

# Mounted read-write: refused, before anything is written. A whole-disk filesystem on a
# second loop device (partition nodes need udev, which this machine may lack).
truncate -s 64M "$T_TMP/fs.img"
mkfs.ext4 -q -F "$T_TMP/fs.img"
fsdev=$(losetup -f --show "$T_TMP/fs.img")
cleanup "losetup -d $fsdev"
mkdir -p "$T_TMP/mnt"
if mount "$fsdev" "$T_TMP/mnt" 2>/dev/null; then
	cleanup "umount '$T_TMP/mnt'"
	"$COLDCLONE" clone --source "$fsdev" --output "$T_TMP/m.raw" --progress none > "$T_TMP/log" 2>&1; rc=$?
	[ $rc -eq 3 ] && grep -q "mounted read-write" "$T_TMP/log" && t_pass "mounted read-write source refused (exit 3)" \
		|| t_fail "mounted read-write source refused" "exit $rc: $(cat "$T_TMP/log")"
	[ ! -e "$T_TMP/m.raw" ] && [ ! -e "$T_TMP/m.raw.partial" ] && t_pass "refusal leaves no file" || t_fail "refusal leaves no file" "$(ls "$T_TMP")"
	[ "$(blockdev --getro "$fsdev")" = 0 ] && t_pass "refusal leaves the read-only flag alone" || t_fail "refusal leaves the read-only flag alone" "ro=1"
else
	t_skip "mounted read-write source refused" "cannot mount a loop device here"
fi
