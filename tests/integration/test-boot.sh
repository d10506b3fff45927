#!/usr/bin/env bash
# Boots the live ISO under QEMU (TCG): BIOS and UEFI, as a CD and as a hard disk/USB stick,
# each with one small virtio source disk, and reads the verdict from the serial console.
# Also: a NIC without a driver in the image is reported by PCI ID; a module dropped into the
# COLDCLONE partition's drivers/ loads, one with a foreign vermagic is refused; under Secure
# Boot the same unsigned module is rejected with one line saying why (a FAT stick labelled
# COLDCLONE beside the CD). PXE and coldclone.drivers=URL: test-pxe.sh. Not covered: real USB
# hardware, the interactive shell.
source "$(dirname "$0")/../lib.sh"
requires qemu-system-x86_64 xorriso mcopy mdir sfdisk blkid jq
BOOT_TIMEOUT=${BOOT_TIMEOUT:-180}
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd

IMG=$BUILD/image
ISO=$IMG/coldclone.iso
why=$(live_image_ensure); rc=$?
[ $rc -eq 2 ] && { t_skip all "$why"; exit 0; }
[ $rc -ne 0 ] && { t_fail "image build" "$why"; exit 0; }
KVER=$(ls "$IMG/cache/kernel/lib/modules" 2> /dev/null | head -1)
BADVER="9${KVER:1}"          # same length: patched into a copy of a module

# The default menu entry's arguments (image-build/build.sh) and same-length replacements:
# the serial console becomes primary, with test mode or the stick's coldclone.mode file.
DEFAULT_ARGS='console=ttyS0,115200 console=tty0 coldclone.mode=interactive'
pad() { local s=$1; while [ ${#s} -lt ${#DEFAULT_ARGS} ]; do s="$s "; done; printf '%s' "$s"; }
ARGS_TEST=$(pad 'console=tty0 console=ttyS0,115200 coldclone.mode=test')
ARGS_SERIAL=$(pad 'console=tty0 console=ttyS0,115200 coldclone.mode=interactive')

# iso_copy NEWARGS OUT: the ISO with the default entry's arguments rewritten in place in
# isolinux.cfg and grub.cfg (plain file data in ISO 9660, so same-length bytes are safe).
iso_copy() {
	local n=0 off
	cp "$ISO" "$2"
	for off in $(grep -obUa -- "$DEFAULT_ARGS" "$2" | cut -d: -f1); do
		printf '%s' "$1" | dd of="$2" bs=1 seek="$off" conv=notrunc status=none
		n=$((n + 1))
	done
	[ $n -ge 2 ] || { echo "default boot arguments found $n times in $ISO, want 2 (isolinux, GRUB)"; return 1; }
}

# data_offset IMAGE: byte offset of the FAT partition labelled COLDCLONE.
data_offset() {
	local start
	for start in $(sfdisk -J "$1" | jq -r '.partitiontable.partitions[].start'); do
		if blkid -p -O $((start * 512)) -s LABEL -s TYPE -o export "$1" 2> /dev/null |
			tr '\n' ' ' | grep -q 'LABEL=COLDCLONE TYPE=vfat'; then
			echo $((start * 512)); return 0
		fi
	done
	return 1
}

truncate -s 64M "$T_TMP/src.img"
printf 'label: gpt\nstart=2048, type=linux\n' | sfdisk -q "$T_TMP/src.img"
SRC_ARGS=(-drive "if=none,id=src,file=$T_TMP/src.img,format=raw,snapshot=on"
	-device virtio-blk-pci,drive=src,serial=SRC1)

# boot NAME bios|uefi cd|disk IMAGE [QEMU ARGS...]: run until the result line, poweroff or
# the timeout; the serial log is $T_TMP/NAME.log, the time taken in $ELAPSED.
boot() {
	local name=$1 fw=$2 media=$3 image=$4 log=$T_TMP/$1.log qpid t0 fwargs=() medargs=()
	shift 4
	if [ "$fw" = uefi ]; then
		cp "$OVMF_VARS" "$T_TMP/$name.vars"
		fwargs=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
			-drive "if=pflash,format=raw,unit=1,file=$T_TMP/$name.vars")
	elif [ "$fw" = uefi-sb ]; then     # Microsoft keys enrolled, Secure Boot enforced
		cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$T_TMP/$name.vars"
		fwargs=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
			-drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
			-drive "if=pflash,format=raw,unit=1,file=$T_TMP/$name.vars")
	fi
	if [ "$media" = cd ]; then medargs=(-cdrom "$image" -boot d)
	else medargs=(-drive "file=$image,format=raw,if=ide,index=0,media=disk"); fi
	rm -f "$T_TMP/in"; mkfifo "$T_TMP/in"
	t0=$(date +%s)
	qemu-system-x86_64 -accel tcg -m 512 -smp 2 -nographic -serial mon:stdio -no-reboot \
		"${fwargs[@]}" "${medargs[@]}" "${SRC_ARGS[@]}" "$@" < "$T_TMP/in" > "$log" 2>&1 &
	qpid=$!
	exec 7> "$T_TMP/in"            # a live pipe on stdin: /dev/null makes QEMU flood ^@
	while kill -0 $qpid 2> /dev/null && [ $(($(date +%s) - t0)) -lt "$BOOT_TIMEOUT" ]; do
		grep -aq 'COLDCLONE-RESULT' "$log" && break
		grep -aq 'built-in shell (ash)' "$log" && break      # at a shell: no result will come
		sleep 1
	done
	ELAPSED=$(($(date +%s) - t0))
	for _ in $(seq 30); do kill -0 $qpid 2> /dev/null || break; sleep 1; done   # poweroff, flush
	kill $qpid 2> /dev/null
	wait $qpid 2> /dev/null
	exec 7>&-
	echo "  $name: ${ELAPSED}s to the result line"
}

# expect NAME CASE PATTERN: pass when the serial log of NAME holds PATTERN (fixed string).
expect() { log_expect "$T_TMP/$1.log" "$2" "$3"; }
KEEP=0

echo "  ISO $(du -h --apparent-size "$ISO" | cut -f1), initrd $(du -h --apparent-size "$IMG/initrd.img" | cut -f1), kernel $KVER"

# A tiny unsigned module built against the image kernel's headers, and a copy with another
# vermagic. Built first: the Secure Boot CD boot gets it on a stick too.
build_hello() {
	kmod_hello "$T_TMP/hello" "$KVER" || return 1
	LC_ALL=C sed "s/vermagic=$KVER /vermagic=$BADVER /" "$T_TMP/hello/hello.ko" > "$T_TMP/hello/bad.ko"
	grep -aq "vermagic=$BADVER " "$T_TMP/hello/bad.ko" || { echo "could not patch the vermagic"; return 1; }
}
if why=$(build_hello 2>&1); then
	HELLO=1
else
	HELLO=0
	t_skip "driver injection" "$why"
fi

# CD boots: test mode from the rewritten boot arguments. The BIOS one also carries an
# rtl8139 NIC (8139too is not in the image) beside QEMU's default e1000 with DHCP.
iso_copy "$ARGS_TEST" "$T_TMP/test.iso" || { t_fail "prepare ISO" "$(iso_copy "$ARGS_TEST" "$T_TMP/x.iso")"; exit 0; }
boot bios-cd bios cd "$T_TMP/test.iso" -device rtl8139
expect bios-cd "BIOS CD: boots, finds the one source disk" "COLDCLONE-RESULT: ok disks=1"
expect bios-cd "missing driver reported by PCI ID (rtl8139)" "no driver for 10ec:8139 (class 0200)"
expect bios-cd "DHCP address on the e1000 NIC" "10.0.2.15"
boot uefi-cd uefi cd "$T_TMP/test.iso"
expect uefi-cd "UEFI CD: boots, finds the one source disk" "COLDCLONE-RESULT: ok disks=1"
if [ -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ] && [ -f /usr/share/OVMF/OVMF_VARS_4M.ms.fd ]; then
	# A USB stick without partition table, labelled COLDCLONE, with the unsigned hello.ko and
	# a copy signed by a throwaway key the kernel does not know (when sign-file is at hand).
	SBARGS=()
	SIGNED=()
	SIGNFILE=/usr/src/linux-headers-$KVER/scripts/sign-file
	if [ $HELLO = 1 ] && [ -x "$SIGNFILE" ] && openssl req -new -x509 -newkey rsa:2048 -nodes -days 2 \
			-subj /CN=coldclone-test -keyout "$T_TMP/sign.key" -out "$T_TMP/sign.crt" > /dev/null 2>&1 &&
			cp "$T_TMP/hello/hello.ko" "$T_TMP/hello/signed.ko" &&
			"$SIGNFILE" sha256 "$T_TMP/sign.key" "$T_TMP/sign.crt" "$T_TMP/hello/signed.ko" 2> /dev/null; then
		SIGNED=("$T_TMP/hello/signed.ko")
	fi
	if [ $HELLO = 1 ]; then
		mkfs.vfat -C -n COLDCLONE "$T_TMP/sb-stick.img" 8192 > /dev/null &&
			mmd -i "$T_TMP/sb-stick.img" ::/drivers &&
			mcopy -i "$T_TMP/sb-stick.img" "$T_TMP/hello/hello.ko" "${SIGNED[@]}" ::/drivers/ &&
			SBARGS=(-drive "if=none,id=stk,file=$T_TMP/sb-stick.img,format=raw"
				-device virtio-blk-pci,drive=stk,serial=STICK)
		[ ${#SBARGS[@]} -gt 0 ] || t_skip "Secure Boot: unsigned module rejected" "could not make the stick image"
	fi
	boot uefi-sb-cd uefi-sb cd "$T_TMP/test.iso" "${SBARGS[@]}"
	expect uefi-sb-cd "Secure Boot CD: signed chain boots, kernel locked down" "Kernel is locked down from EFI Secure Boot"
	expect uefi-sb-cd "Secure Boot CD: finds the one source disk" "COLDCLONE-RESULT: ok disks=1"
	if [ ${#SBARGS[@]} -gt 0 ]; then
		SBLINE="drivers/hello.ko: rejected: Secure Boot is on and the module is not signed; sign it"
		expect uefi-sb-cd "Secure Boot: unsigned drivers/hello.ko rejected with one line saying why" "$SBLINE"
		if [ ${#SIGNED[@]} -gt 0 ]; then
			expect uefi-sb-cd "Secure Boot: module signed by an unknown key rejected with one line saying why" \
				"drivers/signed.ko: rejected: Secure Boot is on and the module is not signed by a key the kernel trusts"
		else
			t_skip "Secure Boot: module signed by an unknown key" "no $SIGNFILE or openssl"
		fi
		grep -aqF "module hello" "$T_TMP/uefi-sb-cd.log" && t_fail "Secure Boot: hello.ko not loaded" "it is in /proc/modules"
		mtype -i "$T_TMP/sb-stick.img" '::/reports/boot-*.txt' > "$T_TMP/sb-report.txt" 2> /dev/null
		if grep -qF "$SBLINE" "$T_TMP/sb-report.txt"; then
			t_pass "Secure Boot: the rejection is in the stick's boot report"
		else
			t_fail "Secure Boot: the rejection is in the stick's boot report" "not in reports/boot-*.txt"
		fi
	fi
else
	t_skip "Secure Boot CD" "no OVMF_CODE_4M.secboot.fd / OVMF_VARS_4M.ms.fd"
fi

# Disk (USB stick) boots: interactive arguments on the serial console; test mode comes
# from the COLDCLONE partition's coldclone.mode file. The BIOS one also gets drivers/.
stick() {
	iso_copy "$ARGS_SERIAL" "$1" || return 1
	OFF=$(data_offset "$1") || { echo "no COLDCLONE FAT partition in $1"; return 1; }
	printf 'test\r\n' > "$T_TMP/mode"
	mcopy -o -i "$1@@$OFF" "$T_TMP/mode" ::/coldclone.mode
}

stick "$T_TMP/bios-stick.img" > "$T_TMP/stick.log" 2>&1 || { t_fail "prepare stick image" "$(cat "$T_TMP/stick.log")"; exit 0; }
[ $HELLO = 1 ] && mcopy -i "$T_TMP/bios-stick.img@@$OFF" "$T_TMP/hello/hello.ko" "$T_TMP/hello/bad.ko" ::/drivers/
boot bios-disk bios disk "$T_TMP/bios-stick.img"
expect bios-disk "BIOS disk: boots, finds the one source disk (not the stick)" "COLDCLONE-RESULT: ok disks=1"
expect bios-disk "BIOS disk: mode taken from the stick's coldclone.mode" "mode 'test' from /media/coldclone/coldclone.mode"
if mdir -b -i "$T_TMP/bios-stick.img@@$OFF" ::/reports 2> /dev/null | grep -q 'boot-.*\.txt'; then
	t_pass "boot report saved on the stick"
else
	t_fail "boot report saved on the stick" "no reports/boot-*.txt in the COLDCLONE partition"
fi
if [ $HELLO = 1 ]; then
	expect bios-disk "drivers/hello.ko loaded from the stick" "loaded drivers/hello.ko"
	expect bios-disk "hello module present in /proc/modules" "module hello"
	expect bios-disk "module with a foreign vermagic refused" "drivers/bad.ko: built for kernel $BADVER, this image runs $KVER: skipped"
	grep -aqF "loaded drivers/bad.ko" "$T_TMP/bios-disk.log" && t_fail "bad.ko not inserted" "the init inserted it"
fi

stick "$T_TMP/uefi-stick.img" > "$T_TMP/stick.log" 2>&1 || { t_fail "prepare stick image" "$(cat "$T_TMP/stick.log")"; exit 0; }
boot uefi-disk uefi disk "$T_TMP/uefi-stick.img"
expect uefi-disk "UEFI disk: boots, finds the one source disk (not the stick)" "COLDCLONE-RESULT: ok disks=1"

if [ $KEEP = 1 ]; then
	mkdir -p "$BUILD/test-boot-logs"
	cp "$T_TMP"/*.log "$BUILD/test-boot-logs/" 2> /dev/null
	echo "  serial logs kept in $BUILD/test-boot-logs/"
fi
