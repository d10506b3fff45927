#!/usr/bin/env bash
# The interactive wizard, end to end on the serial console: the live image boots (PXE
# kernel and initrd, coldclone.mode=interactive, the default menu entry) with a small source
# disk and a COLDCLONE stick, and tests/tools/serial-expect.py answers the wizard's prompts:
# a destination on a closed port first (the connection test fails and the question comes
# back), then the host's WebDAV server with a login (the password is not echoed), qcow2
# from the numbered menu, Enter for everything else. Then, in the shell that follows, end
# of input and Ctrl-C at a prompt. The host checks the image against the source, the
# machine manifest, that the probe left nothing, and the job file and log on the stick.
source "$(dirname "$0")/../lib.sh"
requires qemu-system-x86_64 qemu-img nginx python3 sfdisk mkfs.ext4 mkfs.vfat mtype openssl jq
DAV_EXT=$(ls /usr/lib/nginx/modules/ngx_http_dav_ext_module.so 2>/dev/null || true)
[ -n "$DAV_EXT" ] || { t_skip all "nginx's dav-ext module (libnginx-mod-http-dav-ext) is not installed"; exit 0; }
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}

# --- the source disk and the stick ------------------------------------------------------------
mkdir -p "$T_TMP/tree"
head -c 2M /dev/urandom > "$T_TMP/tree/data.bin"
echo "wizard machine" > "$T_TMP/tree/hello.txt"
truncate -s 40M "$T_TMP/disk.img"
printf 'label: gpt\nstart=2048, size=32M, type=linux\n' | sfdisk -q "$T_TMP/disk.img"
mkfs.ext4 -q -F -L WIZDISK -d "$T_TMP/tree" "$T_TMP/p.img" 32M > /dev/null
dd if="$T_TMP/p.img" of="$T_TMP/disk.img" bs=1M seek=1 conv=notrunc status=none
truncate -s 16M "$T_TMP/stick.img"
mkfs.vfat -n COLDCLONE "$T_TMP/stick.img" > /dev/null

# --- the sanitizer build on the host, every answer through stdin: invalid answers are asked
# again, a local folder is created, a vhdx is written. A private mount namespace shows it one
# fake disk (/sys/block/fakea, /dev/fakea bound to disk.img) and a tmpfs as the stick, so no
# host disk is looked at and nothing outside T_TMP is written.
if command -v unshare > /dev/null && unshare -m true 2>/dev/null; then
	printf '%s\n' 7 fakea relative/folder "$T_TMP/out/sub/" "" 9 vhdx "bad name!" "" "" "" > "$T_TMP/host-answers"
	cat > "$T_TMP/host.sh" <<-NS
	set -e
	mount -t tmpfs tmpfs /sys/block && mkdir /sys/block/fakea && echo 81920 > /sys/block/fakea/size
	mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && touch /dev/fakea
	mount --bind "$T_TMP/disk.img" /dev/fakea
	mount -t tmpfs tmpfs /run
	mount -t tmpfs tmpfs /media && mkdir /media/coldclone && mount -t tmpfs tmpfs /media/coldclone
	set +e
	"$COLDCLONE" wizard < "$T_TMP/host-answers" > "$T_TMP/host.out" 2>&1
	echo \$? > "$T_TMP/host.rc"
	cp /media/coldclone/coldclone.conf "$T_TMP/host.conf"
	cat /media/coldclone/reports/wizard-*.txt > "$T_TMP/host-log.txt"
	NS
	unshare -m bash "$T_TMP/host.sh" > "$T_TMP/host-ns.out" 2>&1
	out=$T_TMP/host.out
	if [ "$(cat "$T_TMP/host.rc" 2>/dev/null)" = 0 ] && grep -q 'RESULT: OK' "$out"; then
		t_pass "host (ASan): wizard from stdin cloned to a new local folder, exit 0"
	else
		t_fail "host (ASan) run" "exit $(cat "$T_TMP/host.rc" 2>/dev/null)"
		tail -15 "$out" "$T_TMP/host-ns.out" | sed 's/^/    /'
	fi
	grep -q 'AddressSanitizer\|runtime error' "$out" && t_fail "host (ASan): sanitizers" "$(grep -m3 'Sanitizer\|runtime error' "$out")"
	grep -Eq "^  fakea +OK +$T_TMP/out/sub/[^ ]+-fakea\.vhdx \(\+ \.manifest\.json\)" "$out" \
		&& t_pass "host (ASan): result screen lists the disk as OK with its image" \
		|| t_fail "host (ASan): per-disk result" "$(grep -A4 'RESULT' "$out")"
	for hint in "'7' is not a disk here" "give a full path starting with /" "does not exist. Create it" \
		"answer 1 to 5, or a format name" "use letters, digits" "Connection test: OK"; do
		grep -q -- "$hint" "$out" && t_pass "host (ASan): $hint" || t_fail "host (ASan): $hint" "not in the output"
	done
	himg=$(ls "$T_TMP"/out/sub/*-fakea.vhdx 2>/dev/null | head -1)
	[ -n "$himg" ] && qemu-img compare -q -f raw -F vhdx "$T_TMP/disk.img" "$himg" \
		&& [ -z "$(ls -A "$T_TMP/out/sub" | grep 'probe\|partial')" ] \
		&& t_pass "host (ASan): vhdx equals the source, no probe left" || t_fail "host (ASan): image" "$(ls -A "$T_TMP/out/sub" 2>&1)"
	check "host (ASan): saved job file is valid" "$COLDCLONE" config check "$T_TMP/host.conf"
	grep -q 'RESULT: OK' "$T_TMP/host-log.txt" 2>/dev/null && t_pass "host (ASan): log on the stick" \
		|| t_fail "host (ASan): log" "no wizard-*.txt with the result"
else
	t_skip "host (ASan) run" "needs unshare -m (root)"
fi

# --- the live image ---------------------------------------------------------------------------
IMG=$BUILD/image
msg=$(live_image_ensure); case $? in
0) ;; 2) t_skip "live image" "$msg"; exit 0 ;; *) t_fail "image build" "$msg"; exit 0 ;;
esac

# --- WebDAV with a login on 127.0.0.1 (the guest reaches it as 10.0.2.2) ---------------------
DAV=$(free_port); CLOSED=$(free_port)
PASSWORD=wiz-Secret-42
mkdir -p "$T_TMP/www/wiz" "$T_TMP/body"
printf 'tech:%s\n' "$(openssl passwd -apr1 "$PASSWORD")" > "$T_TMP/htpasswd"
start_nginx "$DAV" "location /wiz/ {
	auth_basic p2v; auth_basic_user_file $T_TMP/htpasswd;
	dav_methods PUT DELETE MKCOL MOVE; dav_ext_methods PROPFIND OPTIONS;
}" || { t_fail nginx "did not start"; exit 0; }

# --- the answers ------------------------------------------------------------------------------
cat > "$T_TMP/answers" <<EOF
expect boot $BOOT_TIMEOUT coldclone wizard: copy this machine
expect summary-disk 30 1  /dev/vda\s+\S.*40\.0 MiB\s+table gpt
expect summary-partition 10 ext4\s+"WIZDISK"
expect summary-nic 10 Network:\s+\S+\s+52:54:00:12:34:56\s+link up\s+10\.0\.2\.15/24
expect summary-missing-drivers 10 Missing drivers:\s+none
expect ask-disks 30 Which disks .*\[all\]: \$
send
expect ask-destination 10 Destination folder or URL: \$
send http://10.0.2.2:$CLOSED/wiz/
expect connection-test-fails 90 Connection test: FAILED
expect asked-again 10 Destination folder or URL \[http://10\.0\.2\.2:$CLOSED/wiz/\]: \$
send http://tech@10.0.2.2:$DAV/wiz/
expect password-prompt 10 Password for http://tech@10\.0\.2\.2:$DAV/wiz/ \(not shown as you type\): \$
send $PASSWORD
expect connection-test-ok 60 Connection test: OK
expect format-menu 10 3  KVM / OpenStack\s+qcow2
expect ask-format 10 Format \(a number or a name\) \[1\]: \$
send 3
expect ask-name 10 Machine name \[SRV-WIZ\]: \$
send
expect confirm-screen 10 vda\s+-> SRV-WIZ-vda\.qcow2
expect ask-start 10 Start \(y/n\) \[Y\]: \$
send
expect progress 120 \d+\.\d%\s+\S+ \S+ of \S+ \S+\s+\S+ MB/s\s+ETA
expect result-ok 120 RESULT: OK - every disk cloned \(exit 0\)
expect result-disk 10 vda\s+OK\s+http://tech@10\.0\.2\.2:$DAV/wiz/SRV-WIZ-vda\.qcow2
expect result-machine 10 machine\s+http://tech@10\.0\.2\.2:$DAV/wiz/SRV-WIZ\.machine\.json
expect result-log 10 log\s+/media/coldclone/reports/wizard-\S+\.txt
expect ask-save 10 Save these answers as /media/coldclone/coldclone\.conf for the next machine \(y/n\) \[Y\]: \$
send
expect saved 20 Saved and checked: /media/coldclone/coldclone\.conf
expect shell-after 20 the wizard ended \(exit 0\)
send coldclone wizard < /dev/null; echo "eof-rc=\$?"
expect eof-message 60 No more input \(end of file\): the wizard stops
expect eof-exit-2 20 eof-rc=2
send coldclone wizard; echo "int-rc=\$?"
expect saved-answers-suggested 60 Suggestions come from the job file /media/coldclone/coldclone\.conf
expect ask-disks-again 30 Which disks .*: \$
sendraw \x03
expect ctrl-c-message 20 Interrupted: the wizard stops; nothing was copied
expect ctrl-c-exit-130 20 int-rc=130
send sync; poweroff -f
EOF

# --- boot and drive it --------------------------------------------------------------------------
SOCK=$T_TMP/serial.sock
t0=$(date +%s)
timeout $((BOOT_TIMEOUT + 300)) qemu-system-x86_64 -accel tcg -m 512 -smp 1 -display none \
	-chardev "socket,id=s0,path=$SOCK,server=on,wait=on" -serial chardev:s0 \
	-monitor none -no-reboot -smbios type=1,serial=SRV-WIZ \
	-kernel "$IMG/pxe/vmlinuz" -initrd "$IMG/pxe/initrd.img" \
	-append "console=ttyS0,115200 coldclone.mode=interactive" \
	-drive "id=d0,if=none,format=raw,readonly=on,file=$T_TMP/disk.img" -device virtio-blk-pci,drive=d0,serial=WIZ-0 \
	-drive "id=d1,if=none,format=raw,file=$T_TMP/stick.img" -device virtio-blk-pci,drive=d1 \
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 > "$T_TMP/qemu.out" 2>&1 &
QEMU=$!
cleanup "kill $QEMU 2>/dev/null"
python3 "$ROOT/tests/tools/serial-expect.py" --socket "$SOCK" --log "$T_TMP/serial.log" "$T_TMP/answers" \
	> "$T_TMP/steps" 2>&1
for _ in $(seq 30); do kill -0 $QEMU 2>/dev/null || break; sleep 1; done
kill $QEMU 2>/dev/null && wait $QEMU 2>/dev/null
echo "  boot and wizard: $(($(date +%s) - t0)) s"
# KEEP_LOGS=DIR keeps the serial log and the host run's output for a look at the screens.
[ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$T_TMP"/serial.log "$T_TMP"/host.out "$T_TMP"/host.conf "$KEEP_LOGS"/ 2>/dev/null

while read -r status label rest; do
	case $status in
	ok) t_pass "screen: $label" ;;
	fail) t_fail "screen: ${label%:}" "$rest"; sed -n '/^    /p' "$T_TMP/steps" | tail -25 ;;
	*) t_fail "driver" "$status $label $rest" ;;
	esac
done < "$T_TMP/steps"
[ -s "$T_TMP/steps" ] || t_fail "driver" "no output; qemu: $(tail -3 "$T_TMP/qemu.out")"

grep -aq -- "$PASSWORD" "$T_TMP/serial.log" && t_fail "password" "it appears on the console" \
	|| t_pass "the password is not echoed or printed"

# --- what the host got ------------------------------------------------------------------------
dir=$T_TMP/www/wiz
img=$dir/SRV-WIZ-vda.qcow2
if [ -f "$img.manifest.json" ] && qemu-img compare -q -f raw -F qcow2 "$T_TMP/disk.img" "$img"; then
	t_pass "image equals the source disk (qemu-img compare)"
else
	t_fail "image" "$(ls -la "$dir" 2>&1 | tail -5)"
fi
[ -f "$dir/SRV-WIZ.machine.json" ] && [ "$(jq -r .machine "$dir/SRV-WIZ.machine.json")" = SRV-WIZ ] \
	&& t_pass "machine manifest stored" || t_fail "machine manifest" "$(ls "$dir" 2>&1)"
left=$(ls -A "$dir" | grep -i 'probe\|partial')
[ -z "$left" ] && t_pass "the connection test left nothing behind" || t_fail "connection test leftovers" "$left"

conf=$T_TMP/coldclone.conf
if mtype -i "$T_TMP/stick.img" ::coldclone.conf > "$conf" 2>/dev/null && [ -s "$conf" ]; then
	check "saved job file is valid" "$COLDCLONE" config check "$conf" --serial SRV-WIZ
	grep -q "^output = http://tech@10.0.2.2:$DAV/wiz/$" "$conf" && grep -q '^format = qcow2$' "$conf" \
		&& grep -q '^disks = all$' "$conf" && ! grep -q -- "$PASSWORD" "$conf" \
		&& t_pass "job file holds the answers, without the password" || t_fail "job file content" "$(cat "$conf")"
else
	t_fail "job file" "no coldclone.conf on the stick: $(mdir -i "$T_TMP/stick.img" :: 2>&1 | tail -5)"
fi
report=$(mdir -b -i "$T_TMP/stick.img" ::reports 2>/dev/null | grep wizard- | head -1)
if [ -n "$report" ] && mtype -i "$T_TMP/stick.img" "$report" > "$T_TMP/report.txt" 2>/dev/null \
	&& grep -q 'RESULT: OK' "$T_TMP/report.txt" && ! grep -q -- "$PASSWORD" "$T_TMP/report.txt"; then
	t_pass "wizard log saved on the stick with the result"
else
	t_fail "wizard log on the stick" "$(mdir -i "$T_TMP/stick.img" ::reports 2>&1 | tail -5)"
fi
