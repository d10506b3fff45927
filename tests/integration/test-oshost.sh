#!/usr/bin/env bash
# The OS host name on a source disk (oshost.c): a GPT disk with an NTFS partition holding a
# real SYSTEM registry hive (written by hivexsh, checked with hivexget) and an ext4 partition
# with /etc/hostname; `list` (text and JSON) shows each on its partition. A garbage,
# truncated or byte-flipped hive and a free-text /etc/hostname list fine with no host name.
source "$(dirname "$0")/../lib.sh"
requires jq sfdisk mkntfs ntfs-3g ntfscp mkfs.ext4 hivexsh hivexget /usr/bin/python3
[ -c /dev/fuse ] || { t_skip all "no /dev/fuse (ntfs-3g mounts the NTFS image to create its folders)"; exit 0; }
cc() { "$COLDCLONE" "$@"; }

MiB=1048576
P1=2048 P2=$((2048 + 32 * 2048))  # sectors: 32 MiB NTFS, 16 MiB ext4
disk=$T_TMP/d.img hive=$T_TMP/hive

# An empty but valid regf file (hivex cannot start a hive from nothing): the 4096-byte
# base block (sequence numbers, root cell offset 0x20, hive bins size, XOR checksum of its
# first 508 bytes at 508) and one 4096-byte hbin with the root "nk" cell (KEY_HIVE_ENTRY |
# KEY_NO_DELETE | KEY_COMP_NAME), the "sk" cell it points to (hivexsh's add copies it) and
# one free cell. Layouts: hivex lib/hivex-internal.h.
/usr/bin/python3 - "$T_TMP/empty.hive" <<'PY'
import struct, sys
name = b"ROOT"
nk_cell = (80 + len(name) + 7) // 8 * 8
sd = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 0)  # self-relative, no owner/ACLs
sk_cell = (24 + len(sd) + 7) // 8 * 8
nk_off, sk_off = 0x20, 0x20 + nk_cell
nk = struct.pack("<i2sHQIIIIIIIIIIHHIIIIHH", -nk_cell, b"nk", 0x2c, 0, 0, 0, 0, 0, 0xffffffff,
                 0xffffffff, 0, 0xffffffff, sk_off, 0xffffffff, 0, 0, 0, 0, 0, 0, len(name), 0) + name
sk = struct.pack("<i2sHIIII", -sk_cell, b"sk", 0, sk_off, sk_off, 1, len(sd)) + sd
free = 4096 - 32 - nk_cell - sk_cell
hbin = (struct.pack("<4sIIQQI", b"hbin", 0, 4096, 0, 0, 0) + nk.ljust(nk_cell, b"\0")
        + sk.ljust(sk_cell, b"\0") + struct.pack("<i", free)).ljust(4096, b"\0")
base = bytearray(4096)
struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, 0, 1, 3, 0, 1, nk_off, 4096, 1)
csum = 0
for i in range(0, 508, 4):
    csum ^= struct.unpack_from("<I", base, i)[0]
struct.pack_into("<I", base, 508, csum)
open(sys.argv[1], "wb").write(bytes(base) + hbin)
PY

# hivexsh commands that create ControlSet00SET\Control\ComputerName\ComputerName and
# set the values given as "name type:value" lines on stdin (from the hive's root).
control_set_cmds() {
	local n
	printf '%s\n' "add ControlSet00$1" "cd ControlSet00$1" add\ Control cd\ Control \
		add\ ComputerName cd\ ComputerName add\ ComputerName cd\ ComputerName
	n=$(printf '%s\n' "${@:2}" | wc -l)
	echo "setval $n"
	printf '%s\n' "${@:2}" | tr ' ' '\n'
	printf '%s\n' 'cd \'
}

# make_hive FILE CURRENT NAME: a SYSTEM hive whose Select\Current is CURRENT (1-3) and
# whose ControlSet00CURRENT\Control\ComputerName\ComputerName\ComputerName is NAME; a
# decoy control set (the next one) names another machine.
make_hive() {
	local decoy=$(($2 % 3 + 1)) utf16
	# REG_SZ as Windows writes it: UTF-16LE with its NUL (hivexsh's string: is 7-bit only).
	utf16=$(/usr/bin/python3 -c 'import sys; print(",".join("%02x" % b for b in (sys.argv[1] + "\0").encode("utf-16-le")))' "$3")
	cp "$T_TMP/empty.hive" "$1"
	{
		printf '%s\n' 'add Select' 'cd Select' 'setval 1' Current "dword:0x$2" 'cd \'
		control_set_cmds "$decoy" "ComputerName string:OLD-DECOY"
		control_set_cmds "$2" "ComputerName hex:1:$utf16" "Junk string:x"
		echo commit
	} | hivexsh -w "$1"
}

# The NTFS partition: Windows/System32/config made through an ntfs-3g mount, then the hive
# file replaced with ntfscp for each case.
ntfs=$T_TMP/ntfs.img
truncate -s $((32 * MiB)) "$ntfs"
mkntfs -Q -F -q -s 512 -c 4096 -p $P1 -H 255 -S 63 -L WINDOWS "$ntfs" > /dev/null 2>&1
mkdir -p "$T_TMP/mnt"
if ! ntfs-3g "$ntfs" "$T_TMP/mnt" 2> "$T_TMP/mount.err"; then
	t_skip all "cannot mount NTFS with ntfs-3g: $(head -1 "$T_TMP/mount.err")"
	exit 0
fi
mkdir -p "$T_TMP/mnt/Windows/System32/config" "$T_TMP/mnt/Users"
umount "$T_TMP/mnt"

# ext_part HOSTNAME_FILE_CONTENT: the ext4 partition image with that /etc/hostname.
ext_part() {
	rm -rf "$T_TMP/root" "$T_TMP/ext.img"
	mkdir -p "$T_TMP/root/etc" "$T_TMP/root/boot"
	printf '%b' "$1" > "$T_TMP/root/etc/hostname"
	truncate -s $((16 * MiB)) "$T_TMP/ext.img"
	mkfs.ext4 -q -F -d "$T_TMP/root" "$T_TMP/ext.img"
}

# build_disk HIVE_FILE: the GPT disk from the NTFS image (hive replaced) and ext.img.
build_disk() {
	ntfscp -f -q "$ntfs" "$1" Windows/System32/config/SYSTEM || return 1
	rm -f "$disk"
	truncate -s $(((P2 + 16 * 2048 + 2048) * 512)) "$disk"
	sfdisk -q "$disk" > /dev/null <<-EOF
	label: gpt
	start=$P1, size=$((32 * 2048)), type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="Basic data"
	start=$P2, size=$((16 * 2048)), type=linux, name="root"
	EOF
	dd if="$ntfs" of="$disk" bs=1M seek=1 conv=notrunc status=none &&
		dd if="$T_TMP/ext.img" of="$disk" bs=512 seek=$P2 conv=notrunc status=none
}

# list_json CASE: `list --json` of $disk into $T_TMP/out; passes CASE on exit 0.
list_json() {
	"$COLDCLONE" list --source "$disk" --json > "$T_TMP/out" 2> "$T_TMP/err"
	local rc=$?
	[ $rc -eq 0 ] && return 0
	t_fail "$1" "list exit $rc: $(tail -3 "$T_TMP/err")"
	return 1
}

# 1. A real hive and /etc/hostname (after a comment line, as hostname(5) allows).
make_hive "$hive" 2 SRV-FIN-01
got=$(hivexget "$hive" '\ControlSet002\Control\ComputerName\ComputerName' ComputerName)
[ "$got" = SRV-FIN-01 ] && t_pass "hivexsh wrote a hive hivexget reads" || t_fail "hive fixture" "hivexget says '$got'"
ext_part '# set by the installer\nweb-01\n'
build_disk "$hive" || t_fail "build disk" "ntfscp/sfdisk failed"
if list_json "list --json"; then
	jq -e '.disks[0].partitions[0] | .hostname == "SRV-FIN-01" and .os == "windows"' "$T_TMP/out" > /dev/null \
		&& t_pass "Windows ComputerName of the current control set on the NTFS partition" \
		|| t_fail "Windows host name" "$(jq -c '.disks[0].partitions[0]' "$T_TMP/out")"
	jq -e '.disks[0].partitions[1] | .hostname == "web-01" and .os == "linux"' "$T_TMP/out" > /dev/null \
		&& t_pass "Linux /etc/hostname on the ext4 partition" \
		|| t_fail "Linux host name" "$(jq -c '.disks[0].partitions[1]' "$T_TMP/out")"
fi
cc list --source "$disk" > "$T_TMP/out" 2>&1
grep -q "hostname SRV-FIN-01 (Windows)" "$T_TMP/out" && grep -q "hostname web-01 (Linux)" "$T_TMP/out" \
	&& t_pass "list text shows both host names" || t_fail "list text" "$(cat "$T_TMP/out")"

# 2. A non-ASCII ComputerName comes out as UTF-8; Select\Current = 1 picks ControlSet001
# over the decoy ControlSet002.
make_hive "$hive" 3 "SRV-MÜNCHEN"
build_disk "$hive" && list_json "non-ASCII" &&
	{ jq -e '.disks[0].partitions[0].hostname == "SRV-MÜNCHEN"' "$T_TMP/out" > /dev/null \
		&& t_pass "non-ASCII ComputerName decoded from UTF-16LE" \
		|| t_fail "non-ASCII ComputerName" "$(jq -c '.disks[0].partitions[0]' "$T_TMP/out")"; }
make_hive "$hive" 1 CS-ONE
build_disk "$hive" && list_json "Select\\Current = 1" &&
	{ jq -e '.disks[0].partitions[0].hostname == "CS-ONE"' "$T_TMP/out" > /dev/null \
		&& t_pass "Select\\Current chooses the control set" \
		|| t_fail "Select\\Current" "$(jq -c '.disks[0].partitions[0]' "$T_TMP/out")"; }

# 3. Hostile or broken: no host name, exit 0, no sanitizer report (exit 99 would fail).
no_host() {  # CASE PARTITION_INDEX
	list_json "$1" || return
	jq -e ".disks[0].partitions[$2] | .hostname == null and .os == null" "$T_TMP/out" > /dev/null \
		&& t_pass "$1: listed, no host name" || t_fail "$1" "$(jq -c ".disks[0].partitions[$2]" "$T_TMP/out")"
}
make_hive "$hive" 2 SRV-FIN-01
head -c $((2 * MiB)) /dev/urandom > "$T_TMP/garbage"
ext_part 'hello from a free-text file\n'
build_disk "$T_TMP/garbage" && no_host "random bytes as the hive" 0
no_host "free text in /etc/hostname" 1
ext_part ''
head -c 8192 "$hive" > "$T_TMP/trunc"
build_disk "$T_TMP/trunc" && no_host "hive truncated to its first hbin" 0
no_host "empty /etc/hostname" 1
head -c 6000 "$hive" > "$T_TMP/trunc"
build_disk "$T_TMP/trunc" && no_host "hive truncated inside its first hbin" 0

# Byte flips in the cells (the header checksum stays valid, so hivex opens each one):
# every variant must list with exit 0 and no sanitizer report; a name may survive a flip.
/usr/bin/python3 - "$hive" "$T_TMP/flip" <<'PY'
import random, sys
data = open(sys.argv[1], "rb").read()
rnd = random.Random(20240601)
for k in range(24):
    b = bytearray(data)
    for _ in range(1 + k % 6):
        i = rnd.randrange(4096, len(b))
        b[i] = rnd.choice([0x00, 0xff, 0x7f, 0x80, rnd.randrange(256)])
    open("%s.%02d" % (sys.argv[2], k), "wb").write(b)
PY
bad=0
for f in "$T_TMP"/flip.*; do
	build_disk "$f" || { bad=$((bad + 1)); continue; }
	"$COLDCLONE" list --source "$disk" --json > "$T_TMP/out" 2> "$T_TMP/err" || { bad=$((bad + 1)); tail -5 "$T_TMP/err"; continue; }
	jq -e '.disks[0].partitions[0].hostname | . == null or (explode | all(. >= 32 and (. < 127 or . >= 160)))' \
		"$T_TMP/out" > /dev/null || { bad=$((bad + 1)); jq -c '.disks[0].partitions[0]' "$T_TMP/out"; }
done
[ $bad -eq 0 ] && t_pass "24 byte-flipped hives: exit 0, no sanitizer report" || t_fail "byte-flipped hives" "$bad of 24 failed"

# The static binary (no iconv converters of its own) reads the same names.
make_hive "$hive" 2 SRV-FIN-01
ext_part 'web-01\n'
build_disk "$hive"
if [ -x "$COLDCLONE_STATIC" ]; then
	"$COLDCLONE_STATIC" list --source "$disk" --json > "$T_TMP/out" 2> "$T_TMP/err"
	jq -e '[.disks[0].partitions[].hostname] == ["SRV-FIN-01", "web-01"]' "$T_TMP/out" > /dev/null \
		&& t_pass "static binary finds both host names" || t_fail "static binary" "$(cat "$T_TMP/err") $(jq -c '[.disks[0].partitions[].hostname]' "$T_TMP/out")"
else
	t_skip "static binary" "no $COLDCLONE_STATIC"
fi
