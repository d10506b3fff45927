#!/bin/bash
# Checks that a cloned raw disk holds the same data as the original, filesystem by filesystem,
# using tools we did not write (e2fsck, debugfs, ntfs-3g's ntfsprogs, dosfstools, mtools).
# Free space is not compared (see check-freed-zero.sh); table and gap sectors are, byte for byte.
#
# Usage: fs-compare.sh ORIG_DISK CLONE_DISK
# Sector size: ORIG_DISK.sectorsize if present, else 4096 when a GPT header sits at byte 4096
# and not at 512, else 512. Prints one line per partition; exits 1 on any difference.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 ORIG_DISK CLONE_DISK" >&2; exit 2; }
ORIG=$1
CLONE=$2
for f in "$ORIG" "$CLONE"; do
	[ -f "$f" ] || { echo "fs-compare: '$f' is not a file" >&2; exit 2; }
done
export MTOOLS_SKIP_CHECK=1

TMP=$(mktemp -d /tmp/fs-compare.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
FAILED=0

fail() {
	echo "FAIL $*"
	FAILED=1
}

# sector_size DISK: logical sector size the table was written with.
sector_size() {
	if [ -f "$1.sectorsize" ]; then
		cat "$1.sectorsize"
	elif [ "$(dd if="$1" bs=1 skip=512 count=8 status=none | tr -d '\0')" != "EFI PART" ] &&
	     [ "$(dd if="$1" bs=1 skip=4096 count=8 status=none | tr -d '\0')" = "EFI PART" ]; then
		echo 4096
	else
		echo 512
	fi
}

# partitions DISK SS: "NR START SECTORS TYPE" per line, START/SECTORS in 512-byte units
# (libblkid's unit whatever the logical sector size); nothing when there is no table.
partitions() {
	partx -g -r -o NR,START,SECTORS,TYPE -S "$2" "$1" 2>/dev/null | sort -n || true
}

# extract DISK OFFSET LENGTH FILE
extract() {
	dd if="$1" of="$4" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" conv=sparse \
		status=none
}

# same_bytes DISK_A DISK_B OFFSET LENGTH: true when the ranges are identical.
same_bytes() {
	cmp -s <(dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$3" count="$4" status=none) \
	       <(dd if="$2" bs=1M iflag=skip_bytes,count_bytes skip="$3" count="$4" status=none)
}

# tree_listing DIR: type, mode, owner, size, link target and (files) mtime of every entry.
tree_listing() {
	(cd "$1" && find . -mindepth 1 \( -type f -printf '%p %y %m %U:%G %s %T@\n' \) \
		-o -printf '%p %y %m %U:%G %s %l\n' | LC_ALL=C sort)
}

# compare_trees LABEL DIR_A DIR_B: listings and contents; prints the regular file count.
compare_trees() {
	local label=$1 a=$2 b=$3
	tree_listing "$a" >"$TMP/list.a"
	tree_listing "$b" >"$TMP/list.b"
	if ! diff "$TMP/list.a" "$TMP/list.b" >"$TMP/list.diff"; then
		fail "$label: file listings differ (< original, > clone):"
		head -20 "$TMP/list.diff" | sed 's/^/    /'
		return 1
	fi
	if ! diff -r --no-dereference "$a" "$b" >"$TMP/content.diff" 2>&1; then
		fail "$label: file contents differ:"
		sed -e "s|$a|<orig>|g" -e "s|$b|<clone>|g" "$TMP/content.diff" | head -20 |
			sed 's/^/    /'
		return 1
	fi
	find "$a" -type f | wc -l >"$TMP/count"
}

cmp_ext() {
	local label=$1 o=$2 c=$3 n
	if ! e2fsck -fn "$c" >"$TMP/fsck.log" 2>&1; then
		fail "$label: e2fsck -fn on the clone reports errors:"
		tail -20 "$TMP/fsck.log" | sed 's/^/    /'
		return
	fi
	mkdir "$TMP/a" "$TMP/b"
	if ! debugfs -R "rdump / $TMP/a" "$o" >"$TMP/dump.log" 2>&1 ||
	   ! debugfs -R "rdump / $TMP/b" "$c" >>"$TMP/dump.log" 2>&1 ||
	   grep -qi -e error -e "not found" -e "bad " "$TMP/dump.log"; then
		fail "$label: debugfs rdump failed:"
		sed 's/^/    /' "$TMP/dump.log" | head -20
		return
	fi
	compare_trees "$label" "$TMP/a" "$TMP/b" || return 0
	n=$(cat "$TMP/count")
	echo "$label: $n files identical, e2fsck ok"
}

# ntfs_files IMG: "dir/name" of every non-directory in the ntfsls -R listing on stdin.
ntfs_files() {
	sed -n -e '/^\(.*\):$/{s//\1/;h;d}' \
	       -e 's|^ *[0-9][0-9]* [A-Z][a-z][a-z] [ 0-9][0-9] [0-9][0-9]:[0-9][0-9] [0-9]* \(.*[^/]\)$|\1|' \
	       -e 't file' -e d -e ':file' -e 'G;s|^\(.*\)\n\(.*\)$|\2\1|p'
}

cmp_ntfs() {
	local label=$1 o=$2 c=$3 n=0 sys=0 f ho hc
	if ! ntfsfix -n "$c" >"$TMP/fix.log" 2>&1; then
		fail "$label: ntfsfix -n on the clone fails:"
		sed 's/^/    /' "$TMP/fix.log" | tail -20
		return
	fi
	ntfsls -R -a -l -F "$o" >"$TMP/ls.a" 2>&1 || true
	ntfsls -R -a -l -F "$c" >"$TMP/ls.b" 2>&1 || true
	ntfsls -s -l -F "$o" >>"$TMP/ls.a" 2>&1 || true
	ntfsls -s -l -F "$c" >>"$TMP/ls.b" 2>&1 || true
	if ! diff "$TMP/ls.a" "$TMP/ls.b" >"$TMP/ls.diff"; then
		fail "$label: ntfsls listings differ (< original, > clone):"
		head -20 "$TMP/ls.diff" | sed 's/^/    /'
		return
	fi
	while IFS= read -r f; do
		ho=$(ntfscat "$o" "$f" 2>/dev/null | sha256sum) || true
		hc=$(ntfscat "$c" "$f" 2>/dev/null | sha256sum) || true
		if [ "$ho" != "$hc" ]; then
			fail "$label: file '$f' differs (ntfscat sha256 ${ho%% *} vs ${hc%% *})"
			return
		fi
		case $f in /\$*) sys=$((sys + 1)) ;; *) n=$((n + 1)) ;; esac
	done < <(ntfs_files <"$TMP/ls.a")
	echo "$label: $n files and $sys system files identical, ntfsfix ok"
}

cmp_vfat() {
	local label=$1 o=$2 c=$3 n
	if ! fsck.vfat -n "$c" >"$TMP/fsck.log" 2>&1; then
		fail "$label: fsck.vfat -n on the clone reports errors:"
		sed 's/^/    /' "$TMP/fsck.log" | tail -20
		return
	fi
	mdir -/ -a -i "$o" :: >"$TMP/dir.a" 2>&1 || true
	mdir -/ -a -i "$c" :: >"$TMP/dir.b" 2>&1 || true
	if ! diff "$TMP/dir.a" "$TMP/dir.b" >"$TMP/dir.diff"; then
		fail "$label: mdir listings differ (< original, > clone):"
		head -20 "$TMP/dir.diff" | sed 's/^/    /'
		return
	fi
	mkdir "$TMP/a" "$TMP/b"
	if ! mcopy -s -m -n -Q -i "$o" ::/ "$TMP/a" >"$TMP/mcopy.log" 2>&1 ||
	   ! mcopy -s -m -n -Q -i "$c" ::/ "$TMP/b" >>"$TMP/mcopy.log" 2>&1; then
		fail "$label: mcopy failed:"
		sed 's/^/    /' "$TMP/mcopy.log" | head -20
		return
	fi
	compare_trees "$label" "$TMP/a" "$TMP/b" || return 0
	n=$(cat "$TMP/count")
	echo "$label: $n files identical, fsck.vfat ok"
}

cmp_swap() {
	local label=$1 o=$2 c=$3
	if cmp -s -n 4096 "$o" "$c"; then
		echo "$label: header (first 4096 bytes) identical"
	else
		fail "$label: swap header (first 4096 bytes) differs"
	fi
}

cmp_raw() {
	local label=$1 o=$2 c=$3 at
	if at=$(cmp "$o" "$c" 2>&1); then
		echo "$label: $(stat -c %s "$o") bytes identical"
	else
		fail "$label: bytes differ (${at#*: })"
	fi
}

# compare_partition NR START SECTORS (512-byte units)
compare_partition() {
	local nr=$1 off=$(($2 * 512)) len=$(($3 * 512)) to tc label
	extract "$ORIG" "$off" "$len" "$TMP/o.img"
	extract "$CLONE" "$off" "$len" "$TMP/c.img"
	to=$(blkid -p -o value -s TYPE "$TMP/o.img" 2>/dev/null || true)
	tc=$(blkid -p -o value -s TYPE "$TMP/c.img" 2>/dev/null || true)
	label="p$nr ${to:-raw}"
	if [ "$to" != "$tc" ]; then
		fail "$label: the clone's partition is detected as '${tc:-nothing}'"
	else
		case $to in
		ext2|ext3|ext4) cmp_ext "$label" "$TMP/o.img" "$TMP/c.img" ;;
		ntfs) cmp_ntfs "$label" "$TMP/o.img" "$TMP/c.img" ;;
		vfat) cmp_vfat "$label" "$TMP/o.img" "$TMP/c.img" ;;
		swap) cmp_swap "$label" "$TMP/o.img" "$TMP/c.img" ;;
		*) cmp_raw "$label" "$TMP/o.img" "$TMP/c.img" ;;
		esac
	fi
	rm -rf "$TMP/o.img" "$TMP/c.img" "$TMP/a" "$TMP/b"
}

# compare_gaps SIZE: every byte outside the (non-extended) partitions: tables, boot code,
# EBRs, unpartitioned gaps, the backup GPT.
compare_gaps() {
	local size=$1 pos=0 start len ranges=0 bytes=0 bad=0
	while read -r start len; do
		if [ "$start" -gt "$pos" ]; then
			ranges=$((ranges + 1)) bytes=$((bytes + start - pos))
			if ! same_bytes "$ORIG" "$CLONE" "$pos" $((start - pos)); then
				fail "gaps: bytes $pos..$((start - 1)) outside partitions differ"
				bad=1
			fi
		fi
		[ $((start + len)) -gt "$pos" ] && pos=$((start + len))
	done < <(awk '$4 !~ /^0x(5|f|85)$/ { print $2 * 512, $3 * 512 }' "$TMP/parts" | sort -n;
	         echo "$size 0")
	[ "$bad" = 1 ] || echo "gaps: $bytes bytes in $ranges ranges outside partitions identical"
}

SS=$(sector_size "$ORIG")
SIZE=$(stat -c %s "$ORIG")
CSIZE=$(stat -c %s "$CLONE")
# A format may round the virtual size up (VHD geometry): a larger clone is fine if the extra
# tail is zero; everything is compared at the original's offsets.
if [ "$CSIZE" -lt "$SIZE" ]; then
	fail "the clone is smaller: original $SIZE bytes, clone $CSIZE bytes"
	exit 1
elif [ "$CSIZE" -gt "$SIZE" ]; then
	if ! cmp -s -n $((CSIZE - SIZE)) /dev/zero \
	     <(dd if="$CLONE" bs=1M iflag=skip_bytes skip="$SIZE" status=none); then
		fail "the clone is $((CSIZE - SIZE)) bytes larger and the extra tail is not zero"
		exit 1
	fi
	echo "note: the clone is $((CSIZE - SIZE)) bytes larger; the extra tail is zero"
fi
partitions "$ORIG" "$SS" >"$TMP/parts"
partitions "$CLONE" "$SS" >"$TMP/parts.clone"
if ! diff "$TMP/parts" "$TMP/parts.clone" >"$TMP/parts.diff"; then
	fail "partition tables differ (NR START SECTORS TYPE; < original, > clone):"
	sed 's/^/    /' "$TMP/parts.diff"
	exit 1
fi
echo "table: $(wc -l <"$TMP/parts") partitions, $SS-byte sectors, $SIZE bytes"

while read -r nr start sectors type; do
	case $type in
	0x5|0xf|0x85) echo "p$nr extended: container (its EBRs are compared with the gaps)" ;;
	*) compare_partition "$nr" "$start" "$sectors" ;;
	esac
done <"$TMP/parts"
compare_gaps "$SIZE"

if [ "$FAILED" = 1 ]; then
	echo "fs-compare: '$CLONE' differs from '$ORIG'"
	exit 1
fi
echo "fs-compare: '$CLONE' matches '$ORIG'"
