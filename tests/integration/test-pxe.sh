#!/usr/bin/env bash
# PXE-style boot of the live image under QEMU (TCG): the kernel and initramfs of
# $BUILD/image/pxe/ with the command line of its pxelinux.cfg "serial" entry in test mode, plus
# coldclone.drivers= naming driver tarballs on a web server the test runs on the host
# (127.0.0.1:PORT, which the guest reaches as 10.0.2.2:PORT in QEMU user networking). One boot
# covers: a .tgz with the test's unsigned hello.ko and a firmware file is fetched after DHCP
# and loaded like the stick's drivers/; a 404, a refused connection, a file that is not a
# tarball and a truncated .tgz each give one line naming the URL; the boot still reaches the
# summary, whose missing-driver report comes after all loading. Not covered: https, a real
# PXE ROM/TFTP (QEMU's -kernel stands in for it), a slow or silent server (90 s timeout).
source "$(dirname "$0")/../lib.sh"
requires qemu-system-x86_64 python3 sfdisk
BOOT_TIMEOUT=${BOOT_TIMEOUT:-180}

IMG=$BUILD/image
PXE=$IMG/pxe
why=$(live_image_ensure); rc=$?
[ $rc -eq 2 ] && { t_skip all "$why"; exit 0; }
[ $rc -ne 0 ] && { t_fail "image build" "$why"; exit 0; }
KVER=$(ls "$IMG/cache/kernel/lib/modules" 2> /dev/null | head -1)

# What a PXE server hands over: pxelinux.cfg/default's "serial" entry (console on ttyS0).
APPEND=$(awk '/^LABEL serial/ { f = 1 } f && $1 == "APPEND" { $1 = ""; sub(/^ /, ""); print; exit }' \
	"$PXE/pxelinux.cfg/default")
case "$APPEND" in *coldclone.mode=interactive*) ;; *)
	t_fail "PXE menu" "no serial entry with coldclone.mode=interactive in $PXE/pxelinux.cfg/default"; exit 0 ;;
esac

if ! why=$(kmod_hello "$T_TMP/hello" "$KVER" 2>&1); then
	t_skip all "$why"
	exit 0
fi

# The web root: the good tarball (drivers/ inside, as on a stick), and broken ones.
WWW=$T_TMP/www
mkdir -p "$WWW" "$T_TMP/set/drivers/firmware/coldclone"
cp "$T_TMP/hello/hello.ko" "$T_TMP/set/drivers/"
echo "coldclone test firmware" > "$T_TMP/set/drivers/firmware/coldclone/test.bin"
tar -C "$T_TMP/set" -czf "$WWW/drivers.tgz" drivers
echo "<html>not a tarball</html>" > "$WWW/notatar.tgz"
head -c 300 "$WWW/drivers.tgz" > "$WWW/truncated.tgz"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$WWW" "$PORT" > "$T_TMP/httpd.log" 2>&1 &
HTTPD=$!
cleanup "kill $HTTPD 2> /dev/null; wait $HTTPD 2> /dev/null"
for _ in $(seq 50); do
	python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/drivers.tgz')" 2> /dev/null && break
	sleep 0.2
done
H=http://10.0.2.2:$PORT
GOOD=$H/drivers.tgz
BAD_404=$H/missing.tgz
BAD_REFUSED=http://10.0.2.2:1/drivers.tgz
BAD_NOTAR=$H/notatar.tgz
BAD_TRUNC=$H/truncated.tgz
ARGS="${APPEND/coldclone.mode=interactive/coldclone.mode=test} coldclone.drivers=\"$BAD_404 $BAD_REFUSED $BAD_NOTAR $BAD_TRUNC $GOOD\""

truncate -s 64M "$T_TMP/src.img"
printf 'label: gpt\nstart=2048, type=linux\n' | sfdisk -q "$T_TMP/src.img"

# pxe_boot NAME ARGS: boot $PXE's kernel and initramfs with ARGS until the result line, the
# poweroff or the timeout; the serial log is $T_TMP/NAME.log, the time taken in $ELAPSED.
pxe_boot() {
	local name=$1 log=$T_TMP/$1.log qpid t0
	rm -f "$T_TMP/in"; mkfifo "$T_TMP/in"
	t0=$(date +%s)
	qemu-system-x86_64 -accel tcg -m 512 -smp 2 -nographic -serial mon:stdio -no-reboot \
		-kernel "$PXE/vmlinuz" -initrd "$PXE/initrd.img" -append "$2" \
		-netdev user,id=n0 -device e1000,netdev=n0 \
		-drive "if=none,id=src,file=$T_TMP/src.img,format=raw,snapshot=on" \
		-device virtio-blk-pci,drive=src,serial=SRC1 < "$T_TMP/in" > "$log" 2>&1 &
	qpid=$!
	exec 7> "$T_TMP/in"            # a live pipe on stdin: /dev/null makes QEMU flood ^@
	while kill -0 $qpid 2> /dev/null && [ $(($(date +%s) - t0)) -lt "$BOOT_TIMEOUT" ]; do
		grep -aq 'COLDCLONE-RESULT' "$log" && break
		grep -aq 'built-in shell (ash)' "$log" && break
		sleep 1
	done
	ELAPSED=$(($(date +%s) - t0))
	for _ in $(seq 30); do kill -0 $qpid 2> /dev/null || break; sleep 1; done
	kill $qpid 2> /dev/null
	wait $qpid 2> /dev/null
	exec 7>&-
	echo "  $name: ${ELAPSED}s to the result line"
}

KEEP=0
# expect CASE PATTERN: pass when the serial log holds PATTERN (fixed string).
expect() { log_expect "$T_TMP/pxe.log" "$1" "$2"; }
# line_no PATTERN: number of the first serial log line holding PATTERN (0: none).
line_no() { tr -d '\r' < "$T_TMP/pxe.log" | grep -naF -- "$1" | head -1 | cut -d: -f1 | grep . || echo 0; }

echo "  kernel $KVER, command line: $ARGS"
pxe_boot pxe "$ARGS"
expect "PXE boot reaches the summary and finds the one source disk" "COLDCLONE-RESULT: ok disks=1"
expect "no stick on a PXE boot: reports stay in /run" "no writable COLDCLONE partition found"
expect "coldclone.drivers: the tarball is fetched" "coldclone.drivers=$GOOD: fetched, loading it like drivers/"
expect "coldclone.drivers: its firmware is copied first" "$GOOD/firmware: copied to /lib/firmware"
expect "coldclone.drivers: hello.ko from the tarball is loaded" "loaded $GOOD/hello.ko"
expect "hello module present in /proc/modules" "module hello"
expect "404: one line naming the URL" "coldclone.drivers=$BAD_404: cannot fetch: server returned error: HTTP/1.0 404"
expect "refused connection: one line naming the URL" "coldclone.drivers=$BAD_REFUSED: cannot fetch: can't connect to remote host"
expect "not a tarball: one line naming the URL" "coldclone.drivers=$BAD_NOTAR: not a .tar or .tar.gz archive"
expect "truncated tarball: one line naming the URL" "coldclone.drivers=$BAD_TRUNC: damaged archive"
if grep -aq '"GET /drivers.tgz' "$T_TMP/httpd.log"; then
	t_pass "the host's web server served drivers.tgz"
else
	t_fail "the host's web server served drivers.tgz" "not in its log: $(tail -3 "$T_TMP/httpd.log")"
fi
loaded=$(line_no "loaded $GOOD/hello.ko")
fw=$(line_no "$GOOD/firmware: copied")
report=$(line_no "--- missing drivers ---")
if [ "$fw" -gt 0 ] && [ "$loaded" -gt "$fw" ] && [ "$report" -gt "$loaded" ]; then
	t_pass "order: firmware, then the module, then the missing-driver report"
else
	t_fail "order: firmware, then the module, then the missing-driver report" \
		"lines: firmware $fw, module $loaded, report $report"
	KEEP=1
fi
# Each failure is one line: no wget/tar chatter on the console besides it.
if tr -d '\r' < "$T_TMP/pxe.log" | grep -aE '^(wget|tar): ' > "$T_TMP/noise.txt"; then
	t_fail "failures are one line each" "stray output: $(head -3 "$T_TMP/noise.txt" | tr '\n' ' ')"
else
	t_pass "failures are one line each"
fi

if [ $KEEP = 1 ]; then
	mkdir -p "$BUILD/test-pxe-logs"
	cp "$T_TMP"/*.log "$BUILD/test-pxe-logs/" 2> /dev/null
	echo "  serial logs kept in $BUILD/test-pxe-logs/"
fi
