#!/usr/bin/env bash
# The P2V proof, end to end under QEMU (TCG): a bootable "legacy server" disk
# (tests/fixtures/make-legacy-server.sh) is cloned by the live system (direct kernel boot of
# build/image/vmlinuz + initrd.img, coldclone.target + coldclone.run) onto a target disk, the
# image is taken off the target on the host, checked (qemu-img check, coldclone verify, the
# files' checksums, e2fsck) and booted as a VM, which must print the legacy server's marker.
# Covers MBR+extlinux (BIOS) from AHCI to an ext4 target as VMDK, from virtio to a FAT32 target
# as qcow2, and GPT+GRUB (UEFI) to ext4 as VHDX. Not covered: the ISO boot path (test-boot.sh).
source "$(dirname "$0")/../lib.sh"
requires qemu-system-x86_64 qemu-img debugfs e2fsck mkfs.ext4 mkfs.vfat mcopy sfdisk jq \
	losetup cpio zstd extlinux grub-mkstandalone sha256sum
[ "$(id -u)" = 0 ] || { t_skip all "needs root: the fixture mounts a loop device for extlinux"; exit 0; }
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
TSTART=$(date +%s)

IMG=$BUILD/image
# (Re)build when the image is missing or older than what goes into it (as test-boot.sh does).
if [ ! -f "$IMG/initrd.img" ] || [ -n "$(find "$ROOT/image-build" "$ROOT/rootfs" "$ROOT/drivers" \
		"$BUILD/coldclone" -newer "$IMG/initrd.img" -type f ! -name "*.md" 2> /dev/null | head -1)" ]; then
	[ -x "$BUILD/coldclone" ] || { t_skip all "no $BUILD/coldclone: run make cloner"; exit 0; }
	echo "building the image: $IMG"
	bash "$ROOT/image-build/build.sh" "$IMG" "$BUILD/coldclone" > "$T_TMP/build.log" 2>&1 ||
		{ t_fail "image build" "$(tail -5 "$T_TMP/build.log")"; exit 0; }
fi
KVER=$(ls "$IMG/cache/kernel/lib/modules" 2> /dev/null | head -1)

# --- fixtures -------------------------------------------------------------------------------
FX=$T_TMP/legacy
if ! BUILD=$BUILD bash "$ROOT/tests/fixtures/make-legacy-server.sh" "$FX" > "$T_TMP/fixture.log" 2>&1; then
	t_fail "legacy server fixture" "$(tail -5 "$T_TMP/fixture.log")"
	exit 0
fi

# The image must mount an ext4 target: image-build/build.sh puts ext4 in its module list.
INITRD=$IMG/initrd.img
modlist=$(zstd -dc "$INITRD" | cpio -t --quiet 2> /dev/null)
grep -q '/ext4\.ko$' <<< "$modlist" && t_pass "the image carries the ext4 module" \
	|| t_fail "the image carries the ext4 module" "no ext4.ko in $INITRD"

# --- QEMU -------------------------------------------------------------------------------------
# run_vm NAME bios|uefi PATTERN [QEMU ARGS...]: run until PATTERN (fixed string) shows on the
# serial console and the VM powers off, or the timeout; serial log $T_TMP/NAME.log, $ELAPSED.
run_vm() {
	local name=$1 fw=$2 pattern=$3 log=$T_TMP/$1.log qpid t0 fwargs=()
	shift 3
	if [ "$fw" = uefi ]; then
		cp "$OVMF_VARS" "$T_TMP/$name.vars"
		fwargs=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
			-drive "if=pflash,format=raw,unit=1,file=$T_TMP/$name.vars")
	fi
	rm -f "$T_TMP/in"; mkfifo "$T_TMP/in"
	t0=$(date +%s)
	qemu-system-x86_64 -accel tcg -m 512 -smp 2 -nographic -serial mon:stdio -no-reboot -net none \
		"${fwargs[@]}" "$@" < "$T_TMP/in" > "$log" 2>&1 &
	qpid=$!
	exec 7> "$T_TMP/in"            # a live pipe on stdin: /dev/null makes QEMU flood ^@
	while kill -0 $qpid 2> /dev/null && [ $(($(date +%s) - t0)) -lt "$BOOT_TIMEOUT" ]; do
		grep -aqF -- "$pattern" "$log" && break
		sleep 1
	done
	ELAPSED=$(($(date +%s) - t0))
	for _ in $(seq 30); do kill -0 $qpid 2> /dev/null || break; sleep 1; done   # poweroff, flush
	kill $qpid 2> /dev/null
	wait $qpid 2> /dev/null
	exec 7>&-
	echo "  $name: ${ELAPSED}s"
}

# expect NAME CASE PATTERN: pass when the serial log of NAME holds PATTERN (fixed string).
expect() {
	if grep -aqF -- "$3" "$T_TMP/$1.log"; then
		t_pass "$2"
		return 0
	fi
	t_fail "$2" "no '$3' in the serial log of $1 (${ELAPSED}s); its tail:"
	tr -d '\r' < "$T_TMP/$1.log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' | grep -av '^\s*$' | tail -25 | sed 's/^/    /'
	KEEP=1
	return 1
}
KEEP=0
MARKER='P2V-MARKER: legacy server booted from BOOT_IMAGE='

# --- the steps --------------------------------------------------------------------------------
# sanity NAME FW DISK: the fixture itself boots (proves the disk, not the clone).
sanity() {
	run_vm "$1" "$2" "$MARKER" -drive "file=$3,format=raw,if=ide,index=0,media=disk,snapshot=on"
	expect "$1" "$1: the legacy disk itself boots" "$MARKER"
}

# make_target FILE ext4|vfat SIZE_MIB: a whole-disk filesystem labelled CCTARGET, no table.
make_target() {
	truncate -s "$3M" "$1"
	case $2 in
	ext4) mkfs.ext4 -q -F -L CCTARGET "$1" ;;
	vfat) mkfs.vfat -F 32 -n CCTARGET "$1" > /dev/null ;;
	esac
}

# disk_args BUS ID FILE SERIAL: a raw disk on AHCI (/dev/sdX) or virtio (/dev/vdX), writable.
disk_args() {
	if [ "$1" = ahci ]; then
		echo "-device ahci,id=ahci$2 -drive id=$2,if=none,format=raw,file=$3 -device ide-hd,drive=$2,bus=ahci$2.0,serial=$4"
	else
		echo "-drive id=$2,if=none,format=raw,file=$3 -device virtio-blk-pci,drive=$2,serial=$4"
	fi
}

# live NAME SRC_IMG SRC_BUS TARGET_IMG OUTFILE: boot the live image with the source on
# SRC_BUS and the target on the other bus (one disk per bus: the device names are then
# certain), clone the source to /media/target/OUTFILE.
live() {
	local name=$1 src=$2 bus=$3 tgt=$4 out=$5 dev tbus
	if [ "$bus" = ahci ]; then dev=/dev/sda; tbus=virtio; else dev=/dev/vda; tbus=ahci; fi
	# shellcheck disable=SC2046 # word splitting of disk_args is wanted
	run_vm "$name" bios "COLDCLONE-RESULT" -kernel "$IMG/vmlinuz" -initrd "$INITRD" \
		-append "console=ttyS0,115200 coldclone.target=CCTARGET coldclone.run=\"clone --source $dev --output /media/target/$out --progress plain\"" \
		$(disk_args "$bus" src "$src" LEGACY1) $(disk_args "$tbus" tgt "$tgt" TARGET1)
	expect "$name" "$name: target CCTARGET mounted" "target CCTARGET mounted at /media/target" &&
		expect "$name" "$name: clone of $dev to $out in the guest" "COLDCLONE-RESULT: ok rc=0"
}

# fetch TARGET_IMG ext4|vfat NAME DEST: copy a file off the target disk image, no mount.
fetch() {
	case $2 in
	ext4) debugfs -R "dump /$3 $4" "$1" > /dev/null 2>&1 && [ -s "$4" ] ;;
	vfat) MTOOLS_SKIP_CHECK=1 mcopy -n -i "$1" "::/$3" "$4" 2> /dev/null ;;
	esac
}

# files_ok NAME IMAGE FMT: the clone's last partition (ext4) passes e2fsck and holds the
# fixture's files with their checksums; read through qemu-img, not our decoder.
files_ok() {
	local raw=$T_TMP/$1.raw part=$T_TMP/$1.part start size
	qemu-img convert -f "$3" -O raw "$2" "$raw" || return 1
	start=$(sfdisk -J "$raw" | jq '.partitiontable.partitions[-1].start')
	size=$(sfdisk -J "$raw" | jq '.partitiontable.partitions[-1].size')
	dd if="$raw" of="$part" bs=512 skip="$start" count="$size" status=none
	rm -f "$raw"
	e2fsck -fn "$part" > "$T_TMP/$1.fsck" 2>&1 || { cat "$T_TMP/$1.fsck"; return 1; }
	mkdir -p "$T_TMP/$1.files"
	debugfs -R "rdump /data $T_TMP/$1.files" "$part" > /dev/null 2>&1
	rm -f "$part"
	( cd "$T_TMP/$1.files/data" && sha256sum -c --quiet "$FX/SHA256SUMS" )
}

# p2v NAME FIXTURE FW SRC_BUS TARGET_FS OUTFILE: the whole chain for one legacy disk.
p2v() {
	local name=$1 src=$FX/$2 fw=$3 bus=$4 tfs=$5 out=$6 fmt sum tgt=$T_TMP/$1-target.img got
	local img=$T_TMP/$1-$6 size
	fmt=$(qemu_fmt "${out##*.}")
	sum=$(sha256sum < "$src")
	size=$(( $(stat -c %s "$src") / 1048576 ))
	make_target "$tgt" "$tfs" $((size * 2 + 32))
	live "$name" "$src" "$bus" "$tgt" "$out" || return 0
	got=$(sha256sum < "$src")
	if [ "$got" = "$sum" ]; then
		t_pass "$name: source disk unchanged (sha256, attached writable)"
	else
		t_fail "$name: source disk unchanged (sha256, attached writable)" "the live system wrote to the source"
	fi
	[ "$tfs" = ext4 ] && check "$name: target unmounted clean at poweroff (e2fsck)" e2fsck -fn "$tgt"
	if ! fetch "$tgt" "$tfs" "$out" "$img" || ! fetch "$tgt" "$tfs" "$out.manifest.json" "$img.manifest.json"; then
		t_fail "$name: image and manifest on the target" "no /$out or /$out.manifest.json on the $tfs target"
		return 0
	fi
	fetch "$tgt" "$tfs" "$out.partial" "$T_TMP/$name.partial" &&
		t_fail "$name: no .partial left" "/$out.partial is on the target"
	t_pass "$name: image and manifest on the $tfs target ($(du -h --apparent-size "$img" | cut -f1))"
	check "$name: qemu-img check ($fmt)" qemu-img check -q -f "$fmt" "$img"
	check "$name: coldclone verify" "$COLDCLONE_STATIC" verify "$img" "$img.manifest.json"
	check "$name: e2fsck clean, files with their checksums" files_ok "$name" "$img" "$fmt"
	run_vm "$name-vm" "$fw" "$MARKER" -drive "file=$img,format=$fmt,if=ide,index=0,media=disk,snapshot=on"
	expect "$name-vm" "$name: the clone boots as a $fw VM ($fmt)" "$MARKER"
	rm -f "$img" "$tgt"
}

echo "  kernel $KVER, initrd $(du -h --apparent-size "$INITRD" | cut -f1) (direct kernel boot of the live image)"
sanity mbr-bios bios "$FX/mbr-server.img"
p2v mbr-ahci-vmdk mbr-server.img bios ahci ext4 server.vmdk
p2v mbr-virtio-qcow2 mbr-server.img bios virtio vfat server.qcow2
if [ -f "$FX/gpt-uefi-server.img" ]; then
	sanity gpt-uefi uefi "$FX/gpt-uefi-server.img"
	p2v gpt-ahci-vhdx gpt-uefi-server.img uefi ahci ext4 server.vhdx
else
	t_skip "GPT/UEFI server" "the fixture built no gpt-uefi-server.img"
fi

# Bad sectors on the source, through QEMU's blkdebug: the guest kernel gets real EIO for
# the page holding sector 2056 (inside the ext4 partition's metadata, so always read). The
# clone completes with exit 6 and the manifest lists exactly that 4 KiB page.
cat > "$T_TMP/bad.conf" <<'R'
[inject-error]
event = "read_aio"
errno = "5"
sector = "2056"
once = "off"
R
make_target "$T_TMP/bad-target.img" vfat 160
run_vm badsect bios "COLDCLONE-RESULT" -kernel "$IMG/vmlinuz" -initrd "$INITRD" \
	-append "console=ttyS0,115200 coldclone.target=CCTARGET coldclone.run=\"clone --source /dev/vda --output /media/target/bad.qcow2 --progress plain\"" \
	-drive "id=src,if=none,format=raw,file=blkdebug:$T_TMP/bad.conf:$FX/mbr-server.img,snapshot=on" \
	-device virtio-blk-pci,drive=src,serial=LEGACY1 \
	$(disk_args ahci tgt "$T_TMP/bad-target.img" TARGET1)
if expect badsect "bad sectors: clone completes with exit 6" "COLDCLONE-RESULT: fail rc=6" &&
	fetch "$T_TMP/bad-target.img" vfat bad.qcow2.manifest.json "$T_TMP/bad.json"; then
	got=$(jq -c '[.unreadable[] | [.start, .length]]' "$T_TMP/bad.json")
	[ "$got" = "[[$((2056 * 512)),4096]]" ] && t_pass "bad sectors: manifest lists exactly the injected page" \
		|| t_fail "bad sectors: manifest lists exactly the injected page" "got $got"
	expect badsect "bad sectors: named on the console" "bad sector"
fi
rm -f "$T_TMP/bad-target.img"

# A target label that is not there: a clear line, and no clone into the live system's RAM.
run_vm no-target bios "COLDCLONE-RESULT" -kernel "$IMG/vmlinuz" -initrd "$INITRD" \
	-append "console=ttyS0,115200 coldclone.target=NOSUCHDISK coldclone.run=\"clone --source /dev/vda --output /media/target/x.qcow2\"" \
	-drive "file=$FX/mbr-server.img,format=raw,if=virtio,snapshot=on"
expect no-target "missing target: reported by label" "target NOSUCHDISK: no filesystem labelled NOSUCHDISK found" &&
	expect no-target "missing target: nothing cloned, fail rc=4" "COLDCLONE-RESULT: fail rc=4 (target NOSUCHDISK not mounted)"
grep -aq '^running: coldclone' "$T_TMP/no-target.log" && t_fail "missing target: clone not started" "coldclone ran"
grep -ah 'target CCTARGET mounted' "$T_TMP"/*.log | tr -d '\r' | sed 's/^/  /'
echo "  total $(($(date +%s) - TSTART))s"

if [ $KEEP = 1 ]; then
	mkdir -p "$BUILD/test-p2v-logs"
	cp "$T_TMP"/*.log "$BUILD/test-p2v-logs/" 2> /dev/null
	echo "  serial logs kept in $BUILD/test-p2v-logs/"
fi
