#!/usr/bin/env bash
# --all-blocks: every format's raw content equals the source byte for byte; and in
# used-blocks mode, freed blocks read zero while the source holds old data there.
source "$(dirname "$0")/../lib.sh"
requires qemu-img jq cmp
need_fixtures || { t_fail fixtures "could not build the fixture disks"; exit 0; }
src="$FIXTURES/gpt-mixed.img"
size=$(stat -c %s "$src")

for fmt in raw qcow2 vmdk-stream vmdk vhdx vhd vhd-fixed; do
	img="$T_TMP/all.$fmt"
	if ! "$COLDCLONE" clone --all-blocks --source "$src" --output "$img" --format "$fmt" --progress none -q 2> "$T_TMP/log"; then
		t_fail "$fmt --all-blocks: clone" "$(tail -3 "$T_TMP/log")"
		continue
	fi
	qemu-img convert -f "$(qemu_fmt "$fmt")" -O raw "$img" "$T_TMP/r.raw"
	truncate -s "$size" "$T_TMP/r.raw"
	check "$fmt --all-blocks: identical to the source byte for byte" cmp "$src" "$T_TMP/r.raw"
	[ "$(jq -r '.partitions[] | select(.container != true) | .method' "$img.manifest.json" | sort -u)" = "all-blocks" ] \
		&& t_pass "$fmt --all-blocks: manifest says all-blocks" || t_fail "$fmt --all-blocks: manifest says all-blocks" "$(jq -c .partitions "$img.manifest.json")"
	rm -f "$img" "$img.manifest.json" "$T_TMP/r.raw"
done

# Used-blocks mode: free ext blocks are zero in the clone, not the source's old bytes.
for disk in gpt-mixed mbr-legacy; do
	src="$FIXTURES/$disk.img"
	"$COLDCLONE" clone --source "$src" --output "$T_TMP/u.qcow2" --progress none -q || { t_fail "$disk used-blocks clone" "exit $?"; continue; }
	qemu-img convert -f qcow2 -O raw "$T_TMP/u.qcow2" "$T_TMP/u.raw"
	for p in $(sfdisk -J "$src" | jq -r '.partitiontable.partitions[] | .node' | sed 's/.*[^0-9]\([0-9]*\)$/\1/'); do
		t=$(jq -r ".partitions[] | select(.number == $p) | .filesystem" "$T_TMP/u.qcow2.manifest.json")
		case "$t" in ext2|ext3|ext4)
			check "$disk p$p $t: freed blocks read zero" bash "$ROOT/tests/tools/check-freed-zero.sh" "$src" "$T_TMP/u.raw" "$p" ;;
		esac
	done
	stored=$(jq .content.bytes_stored "$T_TMP/u.qcow2.manifest.json")
	[ "$stored" -lt "$(stat -c %s "$src")" ] && t_pass "$disk: stores less than the disk ($stored bytes)" \
		|| t_fail "$disk: stores less than the disk" "$stored bytes stored"
	rm -f "$T_TMP"/u.*
done
