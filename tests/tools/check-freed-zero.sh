#!/bin/bash
# Proves a clone did not copy free space: every block (ext2/3/4) or cluster (NTFS) that the
# ORIGINAL's allocation map calls free must read as zeros in the clone, while at least some of
# them hold data in the original (else the test proves nothing). Other filesystems: refused.
#
# Usage: check-freed-zero.sh ORIG_DISK CLONE_DISK PARTNO
# The free map comes from dumpe2fs (ext) or the $Bitmap file via ntfscat (NTFS), both read from
# the original. Sector size as in fs-compare.sh (ORIG_DISK.sectorsize, or a GPT probe).
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 ORIG_DISK CLONE_DISK PARTNO" >&2; exit 2; }
ORIG=$1
CLONE=$2
PARTNO=$3
die() { echo "check-freed-zero: $*" >&2; exit 1; }
for f in "$ORIG" "$CLONE"; do [ -f "$f" ] || die "'$f' is not a file"; done
command -v perl >/dev/null || die "perl is needed"

TMP=$(mktemp -d /tmp/check-freed-zero.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

if [ -f "$ORIG.sectorsize" ]; then
	SS=$(cat "$ORIG.sectorsize")
elif [ "$(dd if="$ORIG" bs=1 skip=512 count=8 status=none | tr -d '\0')" != "EFI PART" ] &&
     [ "$(dd if="$ORIG" bs=1 skip=4096 count=8 status=none | tr -d '\0')" = "EFI PART" ]; then
	SS=4096
else
	SS=512
fi

# START and SECTORS in 512-byte units whatever SS is (libblkid's unit).
read -r START SECTORS < <(partx -g -r -o START,SECTORS -S "$SS" -n "$PARTNO" "$ORIG" 2>/dev/null) ||
	die "no partition $PARTNO in '$ORIG'"
OFF=$((START * 512))
LEN=$((SECTORS * 512))
dd if="$ORIG" of="$TMP/part.img" bs=1M iflag=skip_bytes,count_bytes skip="$OFF" count="$LEN" \
	conv=sparse status=none
TYPE=$(blkid -p -o value -s TYPE "$TMP/part.img" 2>/dev/null || true)

# Free units as "FIRST LAST" lines (inclusive) in $TMP/free, unit size in UNIT.
case $TYPE in
ext2|ext3|ext4)
	dumpe2fs "$TMP/part.img" 2>/dev/null >"$TMP/dump" || die "dumpe2fs on p$PARTNO failed"
	UNIT=$(sed -n 's/^Block size: *//p' "$TMP/dump")
	# Group lines are indented ("  Free blocks: 1698-2381, 2620"); the superblock's total is not.
	sed -n 's/^  Free blocks: *//p' "$TMP/dump" | tr ',' '\n' |
		awk 'NF { n = split($1, r, "-"); print r[1], (n == 2 ? r[2] : r[1]) }' >"$TMP/free"
	WHAT=blocks
	;;
ntfs)
	# shellcheck disable=SC2016 # an NTFS system file name
	ntfscat "$TMP/part.img" '$Bitmap' >"$TMP/bitmap" 2>/dev/null || die "ntfscat \$Bitmap failed"
	# Boot sector: bytes per sector (u16 @11), sectors per cluster (u8 @13, >0x80 means a
	# negative power of two), total sectors (u64 @40).
	UNIT=$(perl -e '
		open(my $f, "<", $ARGV[0]) or die; binmode $f; read($f, my $b, 512) == 512 or die;
		my ($bps, $spc) = unpack("v C", substr($b, 11, 3));
		$spc = 1 << (256 - $spc) if $spc > 0x80;
		print $bps * $spc, "\n";' "$TMP/part.img")
	TOTAL=$(perl -e '
		open(my $f, "<", $ARGV[0]) or die; binmode $f; read($f, my $b, 512) == 512 or die;
		my ($bps, $spc) = unpack("v C", substr($b, 11, 3));
		$spc = 1 << (256 - $spc) if $spc > 0x80;
		print int(unpack("Q<", substr($b, 40, 8)) / $spc), "\n";' "$TMP/part.img")
	# Runs of clear bits in $Bitmap (bit n of byte n/8, LSB first), up to the cluster count.
	perl -e '
		my ($file, $total) = @ARGV;
		open(my $f, "<", $file) or die; binmode $f;
		my ($run, $n, $buf) = (-1, 0);
		while ($n < $total && read($f, $buf, 65536)) {
			for my $bit (split //, unpack("b*", $buf)) {
				last if $n >= $total;
				if ($bit eq "0") { $run = $n if $run < 0 }
				elsif ($run >= 0) { print "$run ", $n - 1, "\n"; $run = -1 }
				$n++;
			}
		}
		print "$run ", $n - 1, "\n" if $run >= 0;' "$TMP/bitmap" "$TOTAL" >"$TMP/free"
	WHAT=clusters
	;;
*)
	die "p$PARTNO is '${TYPE:-unknown}': only ext2/3/4 and ntfs are supported"
	;;
esac
[ -s "$TMP/free" ] || die "p$PARTNO $TYPE has no free $WHAT: nothing to check"

# Reads each free unit from both disks in bounded chunks; prints
# "FREE ORIG_NONZERO CLONE_NONZERO FIRST_BAD" (FIRST_BAD -1 when the clone is clean).
read -r FREE ON CN BAD < <(perl -e '
	my ($orig, $clone, $off, $unit, $ranges) = @ARGV;
	open(my $o, "<", $orig) or die "open $orig: $!"; binmode $o;
	open(my $c, "<", $clone) or die "open $clone: $!"; binmode $c;
	open(my $r, "<", $ranges) or die;
	my ($free, $on, $cn, $bad) = (0, 0, 0, -1);
	my $per = int(4194304 / $unit) || 1;
	my $zero = "\0" x $unit;
	sub rd {
		my ($fh, $pos, $len) = @_;
		my $buf = "";
		sysseek($fh, $pos, 0) or die "seek: $!";
		defined(sysread($fh, $buf, $len)) or die "read: $!";
		return $buf . "\0" x ($len - length $buf);  # past EOF reads as zero
	}
	while (<$r>) {
		my ($a, $b) = split;
		for (my $u = $a; $u <= $b; $u += $per) {
			my $k = $b - $u + 1; $k = $per if $k > $per;
			my $bo = rd($o, $off + $u * $unit, $k * $unit);
			my $bc = rd($c, $off + $u * $unit, $k * $unit);
			for my $i (0 .. $k - 1) {
				$on++ if substr($bo, $i * $unit, $unit) ne $zero;
				if (substr($bc, $i * $unit, $unit) ne $zero) {
					$cn++; $bad = $u + $i if $bad < 0;
				}
			}
			$free += $k;
		}
	}
	print "$free $on $cn $bad\n";' "$ORIG" "$CLONE" "$OFF" "$UNIT" "$TMP/free")

echo "p$PARTNO $TYPE: $FREE free $WHAT of $UNIT bytes; non-zero in original: $ON, in clone: $CN"
if [ "$CN" -ne 0 ]; then
	echo "FAIL p$PARTNO $TYPE: $CN free $WHAT are not zero in the clone (first: ${WHAT%s} $BAD)"
	exit 1
fi
if [ "$ON" -eq 0 ]; then
	echo "FAIL p$PARTNO $TYPE: all free $WHAT are zero in the original too; the check proves nothing"
	exit 1
fi
echo "check-freed-zero: p$PARTNO ok (free space was not copied)"
