#!/bin/bash
# `make bench`: times coldclone against qemu-img, partclone and ntfsclone on the benchmark disk
# (tests/fixtures/make-bench-disk.sh), prints a table, the issue's targets as PASS/FAIL and a
# rough stage profile, and writes it all to $BUILD/bench/results.md. It never fails on a missed
# target; it fails only when a tool it runs fails. Peers whose tool is missing are skipped.
#
# Environment: BUILD (build), BENCH_SIZE (8G), BENCH_RUNS (3), BENCH_SCALING (1: also clone a
# 64G disk with the same data), BENCH_SCALE_SIZE (64G), BENCH_KEEP (0: delete the outputs),
# BENCH_PEERS (all; fast skips the slow compressing qemu-img cases: zlib/zstd qcow2 and
# streamOptimized VMDK, several minutes each; the vmdk-stream target then reads SKIP).
set -euo pipefail

BUILD=${BUILD:-build}
SIZE=${BENCH_SIZE:-8G}
RUNS=${BENCH_RUNS:-3}
SCALING=${BENCH_SCALING:-1}
SCALE_SIZE=${BENCH_SCALE_SIZE:-64G}
PEERS=${BENCH_PEERS:-all}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "$BUILD" && pwd)
CC=$BUILD/coldclone
DIR=$BUILD/bench
OUTD=$DIR/out
RES=$DIR/results.md
TIMEF=/usr/bin/time

[ -x "$CC" ] || { echo "bench: $CC missing: run make first" >&2; exit 1; }
[ -c /dev/null ] || { echo "bench: /dev/null is not a character device" >&2; exit 1; }
for t in "$TIMEF" jq awk dd; do
	command -v "$t" >/dev/null ||
		{ echo "bench: missing '$t': install tests/bench-packages.txt" >&2; exit 1; }
done
mkdir -p "$DIR"
rm -rf "$OUTD"
mkdir -p "$OUTD"
: >"$DIR/cases.tsv"
NOTES=()
note() { NOTES+=("$*"); echo "bench: note: $*" >&2; }
have() { command -v "$1" >/dev/null; }

# The disk (cached by make-bench-disk.sh), its partition offsets and the used bytes.
DISK=$DIR/bench-$SIZE.img
if [ "$SIZE" = 8G ] || [ "$SIZE" = 8192M ]; then DISK=$DIR/bench-8G.img; fi
bash "$HERE/fixtures/make-bench-disk.sh" "$DISK" "$SIZE"
DISK_BYTES=$(stat -c %s "$DISK")
LIST=$DIR/list.json
"$CC" list --json --source "$DISK" >"$LIST"
part() { # NUMBER FIELD
	jq -r ".disks[0].partitions[] | select(.number == $1) | .$2" "$LIST"
}
P1_START=$(part 1 start) P1_SIZE=$(part 1 size) P1_USED=$(part 1 used_bytes)
P2_START=$(part 2 start) P2_SIZE=$(part 2 size) P2_USED=$(part 2 used_bytes)

# run NAME USED_BYTES OUTPUT CMD: time CMD (a shell string) RUNS times; OUTPUT is the file
# CMD writes (removed before each run) or - for none. Appends to cases.tsv:
# name, median, min, max wall s, output bytes allocated, peak RSS KiB (largest single process
# of a pipeline: GNU time reports the children's ru_maxrss), CPU s (user+sys, all processes),
# the used bytes it is measured against.
run() {
	local name=$1 used=$2 out=$3 cmd=$4 i walls=() rss=0 cpu=0 size=0 t
	for (( i = 0; i < RUNS; i++ )); do
		[ "$out" = - ] || rm -f "$out" "$out".manifest.json
		sync
		"$TIMEF" -f "%e %M %U %S" -o "$DIR/time.txt" bash -c "$cmd" ||
			{ echo "bench: case '$name' failed: $cmd" >&2; exit 1; }
		read -r t m u s <"$DIR/time.txt"
		walls+=("$t")
		[ "$m" -le "$rss" ] || rss=$m
		cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
	done
	[ "$out" = - ] || size=$(du -B1 "$out" | cut -f1)
	printf '%s\n' "${walls[@]}" | sort -g | awk -v n="$name" -v sz="$size" -v r="$rss" \
		-v c="$cpu" -v u="$used" '{ w[NR] = $1 }
		END { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n, w[int((NR + 1) / 2)], w[1], w[NR], sz, r, c, u }' \
		>>"$DIR/cases.tsv"
	echo "bench: $name: $(tail -1 "$DIR/cases.tsv" | cut -f2-7 | tr '\t' ' ')" >&2
}
get() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$DIR/cases.tsv"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
has() { [ -n "$(get "$1" 1)" ]; }

echo "bench: warming the page cache with $DISK" >&2
cat "$DISK" >/dev/null

# coldclone; the raw run's manifest gives the used bytes (content.bytes_read).
clone() { # FORMAT EXT [EXTRA]
	echo "'$CC' clone --source '$DISK' --output '$OUTD/cc.$2' --format $1 --progress none -q ${3:-}"
}
run cc-raw 0 "$OUTD/cc.raw" "$(clone raw raw)"
USED=$(jq -r .content.bytes_read "$OUTD/cc.raw.manifest.json")
STORED_RAW=$(jq -r .content.bytes_stored "$OUTD/cc.raw.manifest.json")
sed -i "s/^\(cc-raw\t.*\)\t0\$/\1\t$USED/" "$DIR/cases.tsv"
run cc-qcow2 "$USED" "$OUTD/cc.qcow2" "$(clone qcow2 qcow2)"
run cc-vmdk-stream "$USED" "$OUTD/cc.vmdk" "$(clone vmdk-stream vmdk)"
run cc-vhdx "$USED" "$OUTD/cc.vhdx" "$(clone vhdx vhdx)"

# qemu-img reads the whole disk (it has no filesystem knowledge; it skips zeros only).
if have qemu-img; then
	q() { echo "qemu-img convert -f raw -O $1 '$DISK' '$OUTD/$2' && sync '$OUTD/$2'"; }
	run qemu-qcow2 "$USED" "$OUTD/q.qcow2" "$(q qcow2 q.qcow2)"
	if [ "$PEERS" = all ]; then
		run qemu-qcow2-zlib "$USED" "$OUTD/qz.qcow2" "$(q 'qcow2 -c' qz.qcow2)"
		run qemu-qcow2-zstd "$USED" "$OUTD/qs.qcow2" "$(q 'qcow2 -c -o compression_type=zstd' qs.qcow2)"
		run qemu-vmdk-stream "$USED" "$OUTD/q.vmdk" "$(q 'vmdk -o subformat=streamOptimized' q.vmdk)"
	else
		note "BENCH_PEERS=$PEERS: the compressing qemu-img cases (zlib, zstd, streamOptimized) skipped"
	fi
	run qemu-vhdx "$USED" "$OUTD/q.vhdx" "$(q vhdx q.vhdx)"
	rm -f "$OUTD"/q*
else
	note "qemu-img missing: qemu-img cases skipped"
fi

run cat-disk "$DISK_BYTES" - "cat '$DISK' >/dev/null"
# Reading just the used bytes: the first USED bytes of the (cached) disk, contiguous. The
# used blocks themselves are scattered; from the page cache that costs about the same.
USED_MIB=$(( (USED + 1048575) / 1048576 ))
run read-used "$USED" - "dd if='$DISK' of=/dev/null bs=1M count=$USED_MIB status=none"
# The same bytes copied into a file and made durable, as every clone must: the least any
# copy of the used bytes costs on this machine, destination disk included.
run copy-used "$USED" "$OUTD/copy" "dd if='$DISK' of='$OUTD/copy' bs=1M count=$USED_MIB conv=fsync status=none"
rm -f "$OUTD/copy"
# A server too old for SHA instructions: OpenSSL told to ignore SHA-NI and AVX2 (its
# SHA-256 drops from ~1.8 to ~0.47 GB/s a core here). Only coldclone hashes with OpenSSL.
OLDCPU='OPENSSL_ia32cap=:~0x20000020'
run cc-qcow2-oldcpu "$USED" "$OUTD/cc.qcow2" "$OLDCPU $(clone qcow2 qcow2)"
run cc-vmdk-stream-oldcpu "$USED" "$OUTD/cc.vmdk" "$OLDCPU $(clone vmdk-stream vmdk)"

# partclone and ntfsclone need a partition as a device or file: the partitions are copied out
# with dd once, outside the timing, and read from the page cache like the disk.
PARTS=0
if have partclone.ntfs || have partclone.ext4 || have ntfsclone; then
	if have zstd; then
		dd if="$DISK" of="$OUTD/p1.img" bs=4M iflag=skip_bytes,count_bytes skip="$P1_START" \
			count="$P1_SIZE" status=none
		dd if="$DISK" of="$OUTD/p2.img" bs=4M iflag=skip_bytes,count_bytes skip="$P2_START" \
			count="$P2_SIZE" status=none
		PARTS=1
		note "partclone/ntfsclone read partition files copied out of the disk with dd before timing"
	else
		note "zstd missing: partclone/ntfsclone cases skipped"
	fi
fi
ZS="zstd -q -T2 -3"
if [ $PARTS = 1 ] && have partclone.ntfs; then
	run partclone-ntfs "$P1_USED" "$OUTD/pc1.zst" \
		"partclone.ntfs -q -c -L '$OUTD/pc.log' -s '$OUTD/p1.img' -o - 2>/dev/null | $ZS >'$OUTD/pc1.zst' && sync '$OUTD/pc1.zst'"
else
	note "partclone.ntfs missing: skipped"
fi
if [ $PARTS = 1 ] && have partclone.ext4; then
	run partclone-ext4 "$P2_USED" "$OUTD/pc2.zst" \
		"partclone.ext4 -q -c -L '$OUTD/pc.log' -s '$OUTD/p2.img' -o - 2>/dev/null | $ZS >'$OUTD/pc2.zst' && sync '$OUTD/pc2.zst'"
else
	note "partclone.ext4 missing: skipped"
fi
if has partclone-ntfs && has partclone-ext4; then # the whole disk's worth, run one after the other
	awk -F'\t' -v OFS='\t' '$1 == "partclone-ntfs" { for (i = 2; i <= 8; i++) a[i] = $i }
		$1 == "partclone-ext4" { for (i = 2; i <= 8; i++) b[i] = $i }
		END { print "partclone-ntfs+ext4", a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5],
			(a[6] > b[6] ? a[6] : b[6]), a[7] + b[7], a[8] + b[8] }' \
		"$DIR/cases.tsv" >>"$DIR/cases.tsv"
fi
if [ $PARTS = 1 ] && have ntfsclone; then
	run ntfsclone-ntfs "$P1_USED" "$OUTD/nc1.zst" \
		"ntfsclone -f --save-image -o - '$OUTD/p1.img' 2>/dev/null | $ZS >'$OUTD/nc1.zst' && sync '$OUTD/nc1.zst'"
else
	note "ntfsclone missing: skipped"
fi
rm -f "$OUTD/p1.img" "$OUTD/p2.img" "$OUTD"/pc* "$OUTD"/nc*

# Stage profile, each stage alone on this machine, scaled to the used bytes.
echo "bench: stage profile" >&2
STAGES=$DIR/stages.tsv
: >"$STAGES"
stage() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STAGES"; } # name seconds bytes how
stage "read used bytes (page cache)" "$(get read-used 2)" "$USED" "dd of the first used-bytes of the disk"
SLICE=$OUTD/slice-1g
dd if="$DISK" of="$SLICE" bs=1M skip=1 count=1024 status=none
cat "$SLICE" >/dev/null
t0=$EPOCHREALTIME; openssl dgst -sha256 "$SLICE" >/dev/null; t1=$EPOCHREALTIME
SLICE_BYTES=$(stat -c %s "$SLICE")
stage "SHA-256 (openssl dgst, disk slice)" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
	"$SLICE_BYTES" "one core, from the page cache"
t0=$EPOCHREALTIME; "$CC" digest "$SLICE" >/dev/null; t1=$EPOCHREALTIME
stage "coldclone digest (disk slice)" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
	"$SLICE_BYTES" "read + zero check + XXH3-128 per MiB chunk"
ZERO=$OUTD/zero-1g
truncate -s 1G "$ZERO"
t0=$EPOCHREALTIME; cat "$ZERO" >/dev/null; t1=$EPOCHREALTIME
t2=$EPOCHREALTIME; "$CC" digest "$ZERO" >/dev/null; t3=$EPOCHREALTIME
stage "zero-detect (digest of 1 GiB zeros minus cat)" \
	"$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { x = (d - c) - (b - a); print (x > 0 ? x : 0) }')" \
	1073741824 "coldclone digest of a sparse zero file, less cat of it"
rm -f "$ZERO"
# Writing the output durably: coldclone fsyncs the image before the manifest, so the
# destination's write speed is part of every clone (the peers above sync their output too).
t0=$EPOCHREALTIME
dd if="$DISK" of="$OUTD/wr" bs=1M count=$USED_MIB conv=fsync status=none
t1=$EPOCHREALTIME
stage "write + fsync of the used bytes to $DIR" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
	"$USED" "dd conv=fsync; the destination disk, not the source, sets this"
rm -f "$SLICE" "$OUTD/wr"
run cc-vmdk-stream-w1 "$USED" "$OUTD/cc.vmdk" "$(clone vmdk-stream vmdk '--workers 1')"
run cc-vmdk-stream-w2 "$USED" "$OUTD/cc.vmdk" "$(clone vmdk-stream vmdk '--workers 2')"
stage "deflate + VMDK (vmdk-stream, 1 worker, minus raw)" \
	"$(awk -v a="$(get cc-vmdk-stream-w1 2)" -v b="$(get cc-raw 2)" 'BEGIN { print a - b }')" \
	"$USED" "coldclone --workers 1 vmdk-stream wall minus raw wall"
stage "coldclone raw, whole clone" "$(get cc-raw 2)" "$USED" "all stages together"
stage "coldclone vmdk-stream, 1 worker" "$(get cc-vmdk-stream-w1 2)" "$USED" ""
stage "coldclone vmdk-stream, 2 workers" "$(get cc-vmdk-stream-w2 2)" "$USED" ""
rm -f "$OUTD"/cc.*

# Scaling: the same partitions on a bigger disk, the extra space in a larger swap.
if [ "$SCALING" != 0 ]; then
	BIG=$DIR/bench-$SCALE_SIZE-same-data.img
	bash "$HERE/fixtures/make-bench-disk.sh" "$BIG" "$SCALE_SIZE" --same-data-as-8G
	cat "$BIG" >/dev/null # mostly holes: fast
	if [ "$DISK" != "$DIR/bench-8G.img" ]; then
		note "scaling compares $SCALE_SIZE against the $SIZE run, whose data differ from the 8G layout"
	fi
	run "cc-raw@$SCALE_SIZE" "$USED" "$OUTD/big.raw" \
		"'$CC' clone --source '$BIG' --output '$OUTD/big.raw' --format raw --progress none -q"
	run "cc-vmdk-stream@$SCALE_SIZE" "$USED" "$OUTD/big.vmdk" \
		"'$CC' clone --source '$BIG' --output '$OUTD/big.vmdk' --format vmdk-stream --progress none -q"
	rm -f "$OUTD"/big.*
fi

# ---- report ----
counterpart() {
	case $1 in
	qemu-qcow2*) echo cc-qcow2 ;;
	qemu-vmdk-stream) echo cc-vmdk-stream ;;
	qemu-vhdx) echo cc-vhdx ;;
	partclone-*|ntfsclone-*) echo cc-vmdk-stream ;;
	cat-disk|read-used|copy-used) echo cc-qcow2 ;;
	cc-qcow2-oldcpu) echo cc-qcow2 ;;
	cc-vmdk-stream-oldcpu) echo cc-vmdk-stream ;;
	"cc-raw@"*) echo cc-raw ;;
	"cc-vmdk-stream@"*|cc-vmdk-stream-w*) echo cc-vmdk-stream ;;
	*) echo - ;;
	esac
}
{
	echo "# coldclone benchmark"
	echo
	echo "Disk: \`$DISK\` ($(mib "$DISK_BYTES") MiB; used bytes read by coldclone $(mib "$USED") MiB," \
		"stored non-zero $(mib "$STORED_RAW") MiB; NTFS used $(mib "$P1_USED") MiB, ext4 used $(mib "$P2_USED") MiB)."
	echo "Runs per case: $RUNS; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))."
	echo "Page cache warm: every number is CPU/memory bound, not disk bound."
	echo
	echo "| case | wall s median (min-max) | MB/s per used byte | output MiB | peak RSS MiB | CPU s | ratio vs coldclone |"
	echo "|---|---|---|---|---|---|---|"
	while IFS=$'\t' read -r n med mn mx sz rss cpu used; do
		cp=$(counterpart "$n")
		ratio=-
		if [ "$cp" != - ] && has "$cp"; then
			# >1: coldclone is faster. Per used byte for the partition tools, else plain wall.
			case $n in
			partclone-*|ntfsclone-*) pu=$used cu=$(get "$cp" 8) ;;
			*) pu=1 cu=1 ;;
			esac
			ratio=$(awk -v pm="$med" -v pu="$pu" -v cm="$(get "$cp" 2)" -v cu="$cu" \
				'BEGIN { if (pm > 0 && cm > 0) printf "%.2f", (pm / pu) / (cm / cu) }')
			ratio="$ratio (vs $cp)"
		fi
		mbs=$(awk -v u="$used" -v m="$med" 'BEGIN { if (m > 0) printf "%.0f", u / m / 1e6; else print "-" }')
		echo "| $n | $med ($mn-$mx) | $mbs | $(mib "$sz") | $(awk -v r="$rss" 'BEGIN { printf "%.0f", r / 1024 }') | $cpu | $ratio |"
	done <"$DIR/cases.tsv"
	echo
	echo "MB/s per used byte: the used bytes of what the case copies (the whole disk's for disk"
	echo "cases, the partition's for partclone/ntfsclone, the whole disk for cat-disk) over the wall"
	echo "median. Ratio: the peer's wall time over its coldclone counterpart's (named; >1 means"
	echo "coldclone is faster), per used byte for partclone/ntfsclone, which copy one partition:"
	echo "qemu qcow2 (all three) vs our qcow2, qemu vmdk vs our vmdk-stream, qemu vhdx vs our vhdx,"
	echo "partclone|zstd and ntfsclone|zstd vs our vmdk-stream (both compress), cat/dd vs our qcow2"
	echo "(the uncompressed format whose file holds just the used bytes, like the dd copy)."
	echo "*-oldcpu: coldclone with OpenSSL's SHA-NI and AVX2 paths off (OPENSSL_ia32cap), as on a"
	echo "server from before SHA instructions; ratio >1 there means the old CPU is slower."
	echo "Peak RSS of a pipeline is its largest process. Every case that writes a file ends with"
	echo "the output on disk: coldclone fsyncs it itself, the peers' commands end with sync FILE."
	echo
} >"$RES"

# Targets.
pass() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }
{
	echo "## Targets"
	echo
	if has qemu-vmdk-stream; then
		a=$(get qemu-vmdk-stream 2) b=$(get cc-vmdk-stream 2)
		qa=$(get qemu-vmdk-stream 5) qb=$(get cc-vmdk-stream 5)
		sp=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
		sr=$(awk -v a="$qa" -v b="$qb" 'BEGIN { printf "%.1f", 100 * b / a }')
		echo "- $(pass "$sp >= 8 && $sr <= 105") vmdk-stream ≥ 8× faster than qemu-img streamOptimized with output ≤ 105%: ${sp}× faster (${b} s vs ${a} s), output ${sr}% ($(mib "$qb") vs $(mib "$qa") MiB)"
	else
		echo "- SKIP vmdk-stream vs qemu-img streamOptimized (not run)"
	fi
	rd=$(get read-used 2) cd=$(get cat-disk 2) cu=$(get copy-used 2)
	catu=$(awk -v c="$cd" -v u="$USED" -v d="$DISK_BYTES" 'BEGIN { printf "%.2f", c * u / d }')
	for f in raw qcow2 vhdx qcow2-oldcpu; do
		b=$(get "cc-$f" 2)
		if has qemu-qcow2; then
			a=$(get qemu-qcow2 2)
			sp=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
			echo "- $(pass "$sp >= 2") $f ≥ 2× faster than qemu-img convert -O qcow2: ${sp}× (${b} s vs ${a} s)"
		fi
		r=$(awk -v b="$b" -v c="$cu" 'BEGIN { printf "%.2f", b / c }')
		echo "- $(pass "$r <= 1.25") $f within 1.25× of cat of the used bytes into a file (dd conv=fsync): ${r}× (${b} s vs ${cu} s)"
		r=$(awk -v b="$b" -v r="$rd" 'BEGIN { printf "%.2f", b / r }')
		echo "- INFO $f vs only reading the used bytes from the page cache (no write, no hash): ${r}× (${b} s vs ${rd} s; cat of the whole disk × used/disk would be ${catu} s)"
	done
	if has partclone-ntfs+ext4; then
		pm=$(get partclone-ntfs+ext4 2) pu=$(get partclone-ntfs+ext4 8)
		for f in vmdk-stream raw; do
			cm=$(get "cc-$f" 2)
			sp=$(awk -v pm="$pm" -v pu="$pu" -v cm="$cm" -v cu="$USED" 'BEGIN { printf "%.2f", (pm / pu) / (cm / cu) }')
			echo "- $(pass "$sp >= 2") per used byte ≥ 2× faster than partclone|zstd -3 (ntfs+ext4 run in turn) — coldclone $f: ${sp}× ($(awk -v u="$USED" -v m="$cm" 'BEGIN { printf "%.0f", u / m / 1e6 }') vs $(awk -v u="$pu" -v m="$pm" 'BEGIN { printf "%.0f", u / m / 1e6 }') MB/s per used byte)"
		done
	fi
	max=0
	for n in cc-raw cc-qcow2 cc-vmdk-stream cc-vhdx cc-vmdk-stream-w1 cc-vmdk-stream-w2 "cc-raw@$SCALE_SIZE" "cc-vmdk-stream@$SCALE_SIZE"; do
		has "$n" || continue
		r=$(get "$n" 6); [ "$r" -le "$max" ] || { max=$r; mx=$n; }
	done
	echo "- $(pass "$max / 1024 <= 128") peak RSS ≤ 128 MiB: largest $(awk -v r="$max" 'BEGIN { printf "%.1f", r / 1024 }') MiB ($mx)"
	# Busy threads: CPU seconds over wall seconds is the average number of busy cores. The
	# CPU figure is the last run's, the wall the median: close enough for a ceiling check.
	busy=$(awk -F'\t' '$1 ~ /^cc-/ && $2 > 0 { b = $7 / $2; if (b > m) { m = b; n = $1 } }
		END { printf "%.2f %s", m, n }' "$DIR/cases.tsv")
	echo "- $(pass "${busy%% *} <= $(nproc)") no more threads busy than cores: at most ${busy%% *} cores busy on average (${busy#* }) of $(nproc)"
	if [ "$SCALING" != 0 ]; then
		for f in raw vmdk-stream; do
			a=$(get "cc-$f" 2) b=$(get "cc-$f@$SCALE_SIZE" 2)
			r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')
			echo "- $(pass "$r <= 1.3") scaling: $SCALE_SIZE disk with the same data within 1.3× of $SIZE ($f): ${r}× (${b} s vs ${a} s)"
		done
	else
		echo "- SKIP scaling (BENCH_SCALING=0)"
	fi
	echo
	echo "## Stage profile (rough: each stage alone, scaled to the $(mib "$USED") MiB of used bytes)"
	echo
	echo "| stage | measured s | over MiB | GB/s | s for the used bytes | how |"
	echo "|---|---|---|---|---|---|"
	while IFS=$'\t' read -r n s b how; do
		awk -v n="$n" -v s="$s" -v b="$b" -v u="$USED" -v h="$how" 'BEGIN {
			gbs = (s > 0 ? b / s / 1e9 : 0)
			printf "| %s | %.2f | %.0f | %s | %.2f | %s |\n", n, s, b / 1048576,
				(s > 0 ? sprintf("%.2f", gbs) : "-"), (b > 0 ? s * u / b : 0), h }'
	done <"$STAGES"
	echo
	if [ ${#NOTES[@]} -gt 0 ]; then
		echo "## Notes"
		echo
		printf -- '- %s\n' "${NOTES[@]}"
	fi
} >>"$RES"
[ "${BENCH_KEEP:-0}" != 0 ] || rm -rf "$OUTD"
cat "$RES"
