#!/usr/bin/env bash
# build.sh OUTDIR CLONER_BINARY - build the coldclone live image around a static cloner:
# OUTDIR/vmlinuz, OUTDIR/initrd.img, OUTDIR/coldclone.iso (hybrid BIOS+UEFI, CD or USB, with a
# writable FAT partition labelled COLDCLONE) and OUTDIR/pxe/. Downloads Debian's signed kernel,
# busybox-static, shim and signed GRUB with apt-get into OUTDIR/cache (reused by later runs).
# Runs as root on Debian 12 with the packages in image-build/packages.txt installed.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 OUTDIR CLONER_BINARY" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
CLONER=$(realpath "$2")
[ -x "$CLONER" ] || { echo "build.sh: cloner '$2' is not an executable: run make cloner first" >&2; exit 2; }
CACHE=$OUT/cache
WORK=$OUT/work
DATA_MB=${COLDCLONE_DATA_MB:-16}       # size of the writable COLDCLONE partition
ZSTD_LEVEL=${COLDCLONE_ZSTD_LEVEL:-9}
mkdir -p "$CACHE/debs"

log() { printf '  %-8s %s\n' "$1" "$2"; }
die() { echo "build.sh: $*" >&2; exit 1; }

# --- downloads --------------------------------------------------------------------------
# fetch PKG: the .deb of PKG in $CACHE/debs (kept across runs); apt-get update only on a miss.
fetch() {
	local pkg=$1 f
	f=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | head -1)
	if [ -z "$f" ]; then
		log FETCH "$pkg" >&2
		( cd "$CACHE/debs" && apt-get download -q "$pkg" > /dev/null 2>&1 ) ||
			{ apt-get update -qq && ( cd "$CACHE/debs" && apt-get download -q "$pkg" > /dev/null ); } ||
			return 1
		f=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | head -1)
	fi
	[ -n "$f" ] && echo "$f"
}

# unpack PKG DIR: extract the .deb once (stamp file), so a rebuild does not redo it.
unpack() {
	local deb
	deb=$(fetch "$1") || return 1
	if [ ! -f "$2/.from" ] || [ "$(cat "$2/.from")" != "$deb" ]; then
		rm -rf "$2" && mkdir -p "$2"
		dpkg-deb -x "$deb" "$2" || return 1
		echo "$deb" > "$2/.from"
	fi
}

KPKG=$(cat "$CACHE/kernel-package" 2>/dev/null || true)
if [ -z "$KPKG" ]; then
	KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	[ -n "$KPKG" ] || die "apt-cache depends linux-image-amd64 names no kernel: run apt-get update"
	echo "$KPKG" > "$CACHE/kernel-package"
fi
unpack "$KPKG" "$CACHE/kernel" || die "cannot download $KPKG"
unpack busybox-static "$CACHE/busybox" || die "cannot download busybox-static"
KROOT=$CACHE/kernel
KVER=$(ls "$KROOT/lib/modules" | head -1)
[ -n "$KVER" ] && [ -f "$KROOT/boot/vmlinuz-$KVER" ] || die "no kernel found in $KPKG"
# Secure Boot chain: optional; without it UEFI boots an unsigned standalone GRUB.
SECUREBOOT=yes
unpack shim-signed "$CACHE/shim" 2> /dev/null && unpack grub-efi-amd64-signed "$CACHE/grub-signed" 2> /dev/null || SECUREBOOT=no
[ -f "$CACHE/kernel/.depmod-done" ] || { depmod -b "$KROOT" "$KVER"; touch "$CACHE/kernel/.depmod-done"; }

VERSION=$("$CLONER" --version 2>/dev/null | awk '{ print $NF; exit }' || true)
[ -n "$VERSION" ] || VERSION=$(cat "$REPO/VERSION" 2>/dev/null || echo unknown)
log KERNEL "$KVER ($KPKG), cloner $VERSION, Secure Boot chain: $SECUREBOOT"

# --- initramfs --------------------------------------------------------------------------
rm -rf "$WORK"
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,etc,root,media/coldclone,lib/firmware,lib/modules,usr/lib/coldclone/drivers}
cp "$CACHE/busybox/bin/busybox" "$ROOTFS/bin/busybox"
for applet in $("$ROOTFS/bin/busybox" --list-full); do
	[ -e "$ROOTFS/$applet" ] || [ -L "$ROOTFS/$applet" ] || ln -s /bin/busybox "$ROOTFS/$applet"
done
# --list-full omits a few applets that --list names (blkid): those go to the image's /bin.
for applet in $("$ROOTFS/bin/busybox" --list); do
	found=no
	for d in bin sbin usr/bin usr/sbin; do
		[ -L "$ROOTFS/$d/$applet" ] || [ -e "$ROOTFS/$d/$applet" ] && found=yes
	done
	[ $found = yes ] || ln -s /bin/busybox "$ROOTFS/bin/$applet"
done
# Applets the init needs beyond the basics: coldclone.drivers=URL fetches with wget (https
# through busybox's own TLS), unpacks with tar/gzip, bounds the fetch with timeout.
for applet in wget tar gzip bzip2 unxz od timeout tail modinfo insmod modprobe udhcpc; do
	found=no
	for d in bin sbin usr/bin usr/sbin; do [ -L "$ROOTFS/$d/$applet" ] && found=yes; done
	[ $found = yes ] || die "busybox-static has no '$applet' applet, which rootfs/init needs"
done
install -m 0755 "$CLONER" "$ROOTFS/usr/bin/coldclone"
cp -a "$REPO/rootfs/." "$ROOTFS/"
chmod 0755 "$ROOTFS/init" "$ROOTFS/usr/share/udhcpc/default.script"
echo "$VERSION" > "$ROOTFS/etc/coldclone-version"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$ROOTFS/etc/passwd"
printf 'root:x:0:\n' > "$ROOTFS/etc/group"

# Modules: storage, USB, input, NICs, device-mapper/md, SMB and NFS clients. Exact names:
# modprobe matches a name like sha512 to extra variants that fail under emulation.
MODULES=(
	ahci ata_piix ata_generic sata_nv sata_sil sata_sil24 sata_via sata_sx4 sata_promise
	sata_svw sata_qstor sata_sis sata_uli sata_vsc sata_mv
	mptsas mptspi mpt3sas megaraid_sas megaraid_mbox hpsa smartpqi aacraid 3w-9xxx 3w-sas
	nvme usb-storage uas virtio_blk virtio_scsi virtio_pci vmw_pvscsi hv_storvsc hv_vmbus
	xen-blkfront sd_mod sr_mod isofs vfat ext4 nls_cp437 nls_iso8859-1 nls_utf8 nls_ascii loop
	xhci_pci ehci_pci ohci_pci uhci_hcd usbhid hid_generic
	e1000 e1000e igb ixgbe i40e tg3 bnx2 bnx2x be2net r8169 vmxnet3 virtio_net hv_netvsc
	xen-netfront mlx4_en mlx5_core
	dm_mod raid1 raid0 raid10 raid456 linear
	cifs cifs_md4 cifs_arc4 netfs fscache dns_resolver
	gcm ccm cmac ecb ctr ghash_generic sha512_generic
	nfs nfsv3 nfsv4 lockd grace nfs_acl sunrpc
)
for f in "$KROOT/lib/modules/$KVER"/kernel/drivers/ata/pata_*.ko*; do
	MODULES+=("$(basename "${f%%.ko*}")")
done
SKIPPED=()
declare -A WANT=()
for m in "${MODULES[@]}"; do
	if ! deps=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2> /dev/null); then
		SKIPPED+=("$m"); continue
	fi
	while read -r kind path _; do
		[ "$kind" = insmod ] && WANT[$path]=1
	done <<< "$deps"
done
[ ${#SKIPPED[@]} -eq 0 ] || log NOTE "not in kernel $KVER (skipped): ${SKIPPED[*]}"
MODDIR=$ROOTFS/lib/modules/$KVER
for path in "${!WANT[@]}"; do
	rel=${path#"$KROOT/lib/modules/$KVER/"}
	mkdir -p "$MODDIR/$(dirname "$rel")"
	cp "$path" "$MODDIR/$rel"
done
cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$MODDIR/" 2> /dev/null || true
depmod -b "$ROOTFS" "$KVER"
log MODULES "${#WANT[@]} files ($(du -sh "$MODDIR" | cut -f1))"

# The repository's drivers/: loaded by the init like a stick's drivers/ (same code path).
shopt -s nullglob
for ko in "$REPO"/drivers/*.ko; do cp "$ko" "$ROOTFS/usr/lib/coldclone/drivers/"; done
[ -d "$REPO/drivers/firmware" ] && cp -a "$REPO/drivers/firmware/." "$ROOTFS/lib/firmware/"
shopt -u nullglob

( cd "$ROOTFS" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) |
	zstd -q -"$ZSTD_LEVEL" -T0 > "$WORK/initrd.img"
cp "$WORK/initrd.img" "$OUT/initrd.img"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

# --- boot menus (one list of entries for isolinux, GRUB and PXE) ---------------------------
# The default entry's arguments are also what tests/integration/test-boot.sh rewrites in a
# copy of the ISO (same length) to boot in test mode: keep them in sync.
ENTRIES=(
	"interactive|coldclone (interactive)|console=ttyS0,115200 console=tty0 coldclone.mode=interactive"
	"unattended|coldclone (unattended)|console=ttyS0,115200 console=tty0 coldclone.mode=unattended"
	"serial|coldclone on serial console ttyS0|console=tty0 console=ttyS0,115200 coldclone.mode=interactive"
	"shell|rescue shell|console=ttyS0,115200 console=tty0 coldclone.mode=shell"
)

isolinux_cfg() {   # $1: kernel path, $2: initrd path
	printf 'SERIAL 0 115200\nUI menu.c32\nPROMPT 0\nTIMEOUT 50\nDEFAULT interactive\n'
	printf 'MENU TITLE coldclone %s (kernel %s)\n' "$VERSION" "$KVER"
	local e id title args
	for e in "${ENTRIES[@]}"; do
		IFS='|' read -r id title args <<< "$e"
		printf '\nLABEL %s\n  MENU LABEL %s\n  KERNEL %s\n  INITRD %s\n  APPEND %s\n' \
			"$id" "$title" "$1" "$2" "$args"
	done
}

grub_cfg() {
	# No `serial` here: Debian's signed GRUB lacks it; the firmware mirrors its console.
	printf 'insmod all_video\nset timeout=5\nset default=0\n'
	local e id title args
	for e in "${ENTRIES[@]}"; do
		IFS='|' read -r id title args <<< "$e"
		printf 'menuentry "%s" --id %s {\n\tlinux /live/vmlinuz %s\n\tinitrd /live/initrd.img\n}\n' \
			"$title" "$id" "$args"
	done
}

# --- ISO tree -----------------------------------------------------------------------------
ISO=$WORK/iso
mkdir -p "$ISO"/{isolinux,live,boot/grub,.disk}
cp "$OUT/vmlinuz" "$OUT/initrd.img" "$ISO/live/"
cp /usr/lib/ISOLINUX/isolinux.bin "$ISO/isolinux/"
for c in ldlinux menu libutil libcom32; do cp "/usr/lib/syslinux/modules/bios/$c.c32" "$ISO/isolinux/"; done
isolinux_cfg /live/vmlinuz /live/initrd.img > "$ISO/isolinux/isolinux.cfg"
grub_cfg > "$ISO/boot/grub/grub.cfg"
# Debian's signed GRUB finds its disc by /.disk/info and reads /boot/grub/grub.cfg there.
echo "coldclone $VERSION live $(date -u +%Y%m%d)" > "$ISO/.disk/info"

# EFI system partition image.
EFI=$WORK/efi
mkdir -p "$EFI/EFI/BOOT"
if [ "$SECUREBOOT" = yes ]; then
	cp "$CACHE/shim/usr/lib/shim/shimx64.efi.signed" "$EFI/EFI/BOOT/BOOTX64.EFI"
	cp "$CACHE/grub-signed/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed" "$EFI/EFI/BOOT/grubx64.efi"
else
	cat > "$WORK/grub-embed.cfg" <<-'G'
	search --no-floppy --file --set=root /.disk/info
	set prefix=($root)/boot/grub
	configfile $prefix/grub.cfg
	G
	grub-mkstandalone -O x86_64-efi -o "$EFI/EFI/BOOT/BOOTX64.EFI" \
		--modules="part_gpt part_msdos iso9660 fat all_video search linux" \
		"boot/grub/grub.cfg=$WORK/grub-embed.cfg"
fi
efi_kb=$(( $(du -sk "$EFI" | cut -f1) + 512 ))
mkfs.vfat -C -n CCEFI "$WORK/efiboot.img" "$efi_kb" > /dev/null
mcopy -s -i "$WORK/efiboot.img" "$EFI/EFI" ::/

# The writable data partition: drivers/, reports/, an example config.
mkfs.vfat -C -n COLDCLONE "$WORK/data.img" $((DATA_MB * 1024)) > /dev/null
mmd -i "$WORK/data.img" ::/drivers ::/drivers/firmware ::/reports
cat > "$WORK/README.txt" <<-R
	coldclone $VERSION - this partition is read and written by the live system.

	drivers/            kernel modules (.ko) built for kernel $KVER, loaded at boot
	drivers/firmware/   firmware files, copied to /lib/firmware before the modules load
	reports/            boot reports: detected hardware, missing drivers, disks
	coldclone.mode      optional: one word (shell, test, interactive) used unless the boot
	                    menu entry asks for the rescue shell
R
sed 's/$/\r/' "$WORK/README.txt" > "$WORK/README.dos"
mcopy -i "$WORK/data.img" "$WORK/README.dos" ::/README.txt
mcopy -i "$WORK/data.img" "$WORK/README.dos" ::/drivers/README.txt
printf '# rename to coldclone.mode to use: one word, e.g. shell\r\ninteractive\r\n' > "$WORK/mode.example"
mcopy -i "$WORK/data.img" "$WORK/mode.example" ::/coldclone.mode.example

xorriso -as mkisofs -quiet -iso-level 3 -joliet -joliet-long -rational-rock -volid COLDCLONE \
	-isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
	-eltorito-boot isolinux/isolinux.bin -eltorito-catalog isolinux/boot.cat \
	-no-emul-boot -boot-load-size 4 -boot-info-table \
	-eltorito-alt-boot -e --interval:appended_partition_2:all:: -no-emul-boot \
	-append_partition 2 0xef "$WORK/efiboot.img" \
	-append_partition 3 0x0c "$WORK/data.img" \
	-appended_part_as_gpt \
	-o "$OUT/coldclone.iso.tmp" "$ISO" 2>&1 | grep -v '^xorriso : UPDATE' || true
[ -s "$OUT/coldclone.iso.tmp" ] || die "xorriso wrote no image"
mv "$OUT/coldclone.iso.tmp" "$OUT/coldclone.iso"

# --- PXE ----------------------------------------------------------------------------------
PXE=$OUT/pxe
rm -rf "$PXE"
mkdir -p "$PXE/pxelinux.cfg"
cp "$OUT/vmlinuz" "$OUT/initrd.img" "$PXE/"
{
	echo '#!ipxe'
	echo '# Serve this folder over HTTP and set the URL below.'
	echo 'set base http://SERVER.EXAMPLE/coldclone'
	echo '# Extra drivers without a stick: add coldclone.drivers=${base}/drivers.tgz to the kernel'
	echo '# line (a .tar or .tar.gz laid out like drivers/ on the stick; see drivers/README.md).'
	echo "kernel \${base}/vmlinuz initrd=initrd.img ${ENTRIES[0]##*|}"
	echo "initrd \${base}/initrd.img"
	echo 'boot'
} > "$PXE/coldclone.ipxe"
isolinux_cfg vmlinuz initrd.img > "$PXE/pxelinux.cfg/default"
[ -f /usr/lib/PXELINUX/pxelinux.0 ] && cp /usr/lib/PXELINUX/pxelinux.0 "$PXE/"
for c in ldlinux menu libutil libcom32; do cp "/usr/lib/syslinux/modules/bios/$c.c32" "$PXE/"; done

size() { printf '%s %s' "$(du -h --apparent-size "$1" | cut -f1)" "$1"; }
log SIZE "$(size "$OUT/vmlinuz")"
log SIZE "$(size "$OUT/initrd.img")"
log SIZE "$(size "$OUT/coldclone.iso")"
