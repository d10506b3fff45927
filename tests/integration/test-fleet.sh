#!/usr/bin/env bash
# Unattended fleet mode, end to end: two "machines" (two QEMU runs of the PXE kernel and
# initrd, with different DMI serials and different source disks) boot with the command line
# a PXE server gives (coldclone.mode=unattended coldclone.config=URL), fetch one job file from
# the host, each picks its own [machine SERIAL] section, clones its disk to the host's WebDAV
# server, reports progress and the result to `coldclone collect` on the host, and powers
# off as the job says. The host checks both images against their sources, the machine
# manifests and descriptors, and the collector's view of both machines.
source "$(dirname "$0")/../lib.sh"
requires qemu-system-x86_64 qemu-img nginx python3 sfdisk mkfs.ext4 jq
DAV_EXT=$(ls /usr/lib/nginx/modules/ngx_http_dav_ext_module.so 2>/dev/null || true)
[ -n "$DAV_EXT" ] || { t_skip all "nginx's dav-ext module (libnginx-mod-http-dav-ext) is not installed"; exit 0; }
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
IMG=$BUILD/image
msg=$(live_image_ensure); case $? in
0) ;; 2) t_skip all "$msg"; exit 0 ;; *) t_fail "image build" "$msg"; exit 0 ;;
esac

# --- the two source disks ---------------------------------------------------------------------
make_disk() {  # FILE LABEL SEED
	mkdir -p "$T_TMP/tree-$2"
	head -c 2M /dev/urandom > "$T_TMP/tree-$2/data.bin"
	echo "machine $2" > "$T_TMP/tree-$2/hello.txt"
	truncate -s 40M "$1"
	printf 'label: gpt\nstart=2048, size=32M, type=linux\n' | sfdisk -q "$1"
	mkfs.ext4 -q -F -L "$2" -d "$T_TMP/tree-$2" "$T_TMP/p-$2.img" 32M > /dev/null
	dd if="$T_TMP/p-$2.img" of="$1" bs=1M seek=1 conv=notrunc status=none
}
make_disk "$T_TMP/alpha.img" ALPHA
make_disk "$T_TMP/bravo.img" BRAVO
make_disk "$T_TMP/charlie.img" CHARLIE

# --- servers on 127.0.0.1: WebDAV for the images, HTTP for the job file, the collector --------
DAV=$(free_port); WEB=$(free_port); COL=$(free_port)
mkdir -p "$T_TMP/www/fleet" "$T_TMP/pub"
# /full/ is a 1 MiB tmpfs: machine charlie's image does not fit there.
mkdir -p "$T_TMP/www/full"
mount -t tmpfs -o size=1m coldclone-fleet-full "$T_TMP/www/full" 2>/dev/null && cleanup "umount '$T_TMP/www/full'" &&
	FULL=yes || FULL=no
mkdir -p "$T_TMP/www/full/.tmp"   # nginx's upload buffer on the same tmpfs: it fills up too
start_nginx "$DAV" "location /fleet/ { dav_methods PUT DELETE MKCOL MOVE; dav_ext_methods PROPFIND OPTIONS; }
	location /full/ { dav_methods PUT DELETE MKCOL MOVE; dav_ext_methods PROPFIND OPTIONS;
		client_body_temp_path $T_TMP/www/full/.tmp; }" ||
	{ t_fail nginx "did not start"; exit 0; }
MACHINES=2; [ $FULL = yes ] && MACHINES=3

cat > "$T_TMP/pub/fleet.conf" <<EOF
# coldclone fleet job: one file for every machine
[defaults]
output = http://10.0.2.2:$DAV/fleet/{name}/
format = qcow2
report = http://10.0.2.2:$COL/
after = poweroff
verify = yes

[machine SRV-ALPHA]
name = alpha

[machine SRV-BRAVO]
name = bravo
format = vhdx

[machine SRV-CHARLIE]
name = charlie
output = http://10.0.2.2:$DAV/full/{name}/
retries = 1
EOF
( cd "$T_TMP/pub" && exec python3 -m http.server "$WEB" --bind 127.0.0.1 ) > "$T_TMP/web.log" 2>&1 &
cleanup "kill $! 2>/dev/null"
"$COLDCLONE" collect --listen "127.0.0.1:$COL" --once "$MACHINES" > "$T_TMP/collect.out" 2> "$T_TMP/collect.err" &
COLPID=$!
cleanup "kill $COLPID 2>/dev/null"
check "job file is valid for both machines" "$COLDCLONE" config check "$T_TMP/pub/fleet.conf" --serial SRV-ALPHA

# --- the machines -------------------------------------------------------------------------------
boot() {  # NAME SERIAL DISK
	local log=$T_TMP/$1.log t0
	t0=$(date +%s)
	timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -serial file:"$log" \
		-monitor none -no-reboot -smbios "type=1,serial=$2" \
		-kernel "$IMG/pxe/vmlinuz" -initrd "$IMG/pxe/initrd.img" \
		-append "console=ttyS0,115200 coldclone.mode=unattended coldclone.config=http://10.0.2.2:$WEB/fleet.conf" \
		-drive "id=d0,if=none,format=raw,readonly=on,file=$3" -device virtio-blk-pci,drive=d0,serial=DISK-$1 \
		-netdev user,id=n0 -device virtio-net-pci,netdev=n0 > /dev/null 2>&1
	echo "$1 $? $(($(date +%s) - t0))" >> "$T_TMP/boots"
}
boot alpha SRV-ALPHA "$T_TMP/alpha.img" & B1=$!
boot bravo SRV-BRAVO "$T_TMP/bravo.img" & B2=$!
wait $B1 $B2
[ $FULL = yes ] && boot charlie SRV-CHARLIE "$T_TMP/charlie.img"
while read -r name rc secs; do
	echo "  $name: ${secs}s, qemu exit $rc"
	[ "$rc" = 0 ] && t_pass "$name: powered off by itself after the job" \
		|| t_fail "$name: powered off by itself" "qemu exit $rc (124: still running after ${BOOT_TIMEOUT}s)"
done < "$T_TMP/boots"

for m in alpha:qcow2 bravo:vhdx; do
	name=${m%%:*} ext=${m#*:} dir=$T_TMP/www/fleet/${m%%:*}
	log=$T_TMP/$name.log
	grep -aq 'COLDCLONE-RESULT: ok rc=0' "$log" && t_pass "$name: unattended job succeeded" \
		|| { t_fail "$name: unattended job" "serial log tail:"; tr -d '\r' < "$log" | grep -av '^$' | tail -20 | sed 's/^/    /'; }
	grep -aq "\[machine SRV-$(echo "$name" | tr a-z A-Z)\]" "$log" && t_pass "$name: chose its own section by DMI serial" \
		|| t_fail "$name: section" "not in the log"
	grep -aq '"event":"progress"' "$log" && t_pass "$name: JSON progress lines on the serial console" \
		|| t_fail "$name: JSON on the console" "no progress lines"
	img=$dir/$name-vda.$ext
	fmt=$ext; [ "$ext" = vhdx ] && fmt=vhdx
	if [ -f "$img.manifest.json" ] && qemu-img compare -q -f raw -F "$fmt" "$T_TMP/$name.img" "$img"; then
		t_pass "$name: image equals its source disk"
	else
		t_fail "$name: image" "$(ls -la "$dir" 2>&1 | tail -5)"
	fi
	[ -f "$dir/$name.machine.json" ] && [ "$(jq -r .machine "$dir/$name.machine.json")" = "$name" ] \
		&& [ "$(jq -r .inventory.serial "$dir/$name.machine.json")" = "SRV-$(echo "$name" | tr a-z A-Z)" ] \
		&& t_pass "$name: machine manifest with its DMI serial" || t_fail "$name: machine manifest" "$(ls "$dir" 2>&1)"
	L=$dir/$name.log
	[ -f "$L" ] && grep -q "^coldclone .*: job \[machine SRV-$(echo "$name" | tr a-z A-Z)\] for machine '$name'" "$L" \
		&& grep -q "result: .*(exit 0)" "$L" && grep -q "^finished " "$L" && ! grep -q '"event"' "$L" \
		&& t_pass "$name: job log stored beside the images ($name.log: header, messages, result)" \
		|| t_fail "$name: job log" "$(ls "$dir" 2>&1; head -5 "$L" 2>&1)"
done
[ -f "$T_TMP/www/fleet/alpha/alpha.xml" ] && [ -f "$T_TMP/www/fleet/bravo/bravo.ps1" ] \
	&& t_pass "descriptors: libvirt XML for qcow2, Hyper-V script for vhdx" || t_fail "descriptors" "$(ls -R "$T_TMP/www/fleet")"

# charlie's destination filled up: the job fails, says why, and leaves a failure report
# (never a machine manifest) beside what it could store.
if [ $FULL = yes ]; then
	grep -aq 'COLDCLONE-RESULT: fail rc=4' "$T_TMP/charlie.log" && t_pass "charlie: destination full, job failed (exit 4)" \
		|| t_fail "charlie: failure" "$(tr -d '\r' < "$T_TMP/charlie.log" | grep -av '^$' | tail -8)"
	F=$T_TMP/www/full/charlie/charlie.failed.json
	[ -f "$F" ] && [ "$(jq -r .result.complete "$F")" = false ] && [ "$(jq -r '.disks[0].exit_code' "$F")" = 4 ] \
		&& [ ! -e "$T_TMP/www/full/charlie/charlie.machine.json" ] && [ ! -e "$T_TMP/www/full/charlie/charlie-vda.qcow2" ] \
		&& t_pass "charlie: failure report stored, no image, no machine manifest" \
		|| t_fail "charlie: failure report" "$(ls -la "$T_TMP/www/full/charlie" 2>&1)"
else
	t_skip "charlie: destination full" "cannot mount a small tmpfs here"
fi

# The collector saw every machine end and exited by itself (--once N).
for _ in $(seq 30); do kill -0 $COLPID 2>/dev/null || break; sleep 1; done
kill -0 $COLPID 2>/dev/null && t_fail "collector" "still running: it did not see $MACHINES results" \
	|| t_pass "collector exited after every machine reported its result"
for name in alpha bravo; do
	grep -q "$name" "$T_TMP/collect.out" && grep "$name" "$T_TMP/collect.out" | grep -qi 'ok\|done\|success' \
		&& t_pass "collector: $name reported with its result" \
		|| t_fail "collector: $name" "$(tail -5 "$T_TMP/collect.out")"
done
if [ $FULL = yes ]; then
	grep charlie "$T_TMP/collect.out" | grep -qi 'fail' && t_pass "collector: charlie reported as failed" \
		|| t_fail "collector: charlie" "$(tail -6 "$T_TMP/collect.out")"
fi
