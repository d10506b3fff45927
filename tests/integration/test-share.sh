#!/usr/bin/env bash
# SMB and NFS destinations, end to end: the live image (direct kernel boot, QEMU TCG, user
# networking) clones a small fixture disk to Samba's smbd and to NFS-Ganesha (NFSv4, VFS FSAL,
# no rpcbind, no host nfsd) run on 127.0.0.1 at high ports from private configs. One boot runs
# every guest case from a script: SMB with the password from COLDCLONE_PASSWORD on the kernel
# command line (a comma in it) and --verify, the same name again without --force, guest access,
# a wrong password in the URL, a share that is not there, a port nothing listens on; NFS with
# --verify and an export that is not there. The host checks the images with qemu-img and
# sha256sum, and that every share was unmounted. On the host, whose kernel has no cifs/nfs
# client, the same URLs must fail with exit 4 and the "no SMB client" line.
# Not covered: Kerberos, SMB signing/encryption policies, NFSv3, IPv6, host names (DNS).
source "$(dirname "$0")/../lib.sh"
requires qemu-system-x86_64 qemu-img smbd pdbedit ganesha.nfsd sfdisk mkfs.ext4 cpio jq sha256sum ss python3
[ "$(id -u)" = 0 ] || { t_skip all "needs root: smbd and ganesha.nfsd (VFS FSAL) run as root"; exit 0; }
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
TSTART=$(date +%s)
PASSWORD='Sh4re,pw9'      # a comma: the cifs option string must escape it
WRONG='wr0ngpw77'

IMG=$BUILD/image
msg=$(live_image_ensure); case $? in
0) ;; 2) t_skip all "$msg"; exit 0 ;; *) t_fail "image build" "$msg"; exit 0 ;;
esac

SMBPORT=$(free_port); NFSPORT=$(free_port); CLOSEDPORT=$(free_port)

# stop PID...: TERM, then wait until each is gone or a zombie (KILL after 5 s), so nothing
# still writes into $T_TMP when it is removed.
stop() {
	local p
	kill "$@" 2> /dev/null
	for p in "$@"; do
		for _ in $(seq 50); do ps -o stat= -p "$p" | grep -qv Z || continue 2; sleep 0.1; done
		kill -9 "$p" 2> /dev/null
	done
}

# --- the fixture: GPT, ext4 with files, a raw partition of random bytes -----------------------
SRC=$T_TMP/src.img
make_fixture() {
	local tree=$T_TMP/tree
	mkdir -p "$tree/data"
	head -c 3M /dev/urandom > "$tree/data/a.bin"
	head -c 1M /dev/urandom > "$tree/data/b.bin"
	echo "coldclone share test" > "$tree/data/readme.txt"
	truncate -s 48M "$SRC"
	printf 'label: gpt\nstart=2048, size=32M, type=linux\nsize=2M, type=linux\n' | sfdisk -q "$SRC" || return 1
	mkfs.ext4 -q -F -L SHARESRC -d "$tree" "$T_TMP/p1.img" 32M > /dev/null || return 1
	dd if="$T_TMP/p1.img" of="$SRC" bs=1M seek=1 conv=notrunc status=none
	head -c 2M /dev/urandom | dd of="$SRC" bs=1M seek=33 conv=notrunc status=none
	rm -rf "$tree" "$T_TMP/p1.img"
}
make_fixture || { t_fail "fixture" "could not build $SRC"; exit 0; }
# A second disk for the whole-machine case: MBR with an EFI system partition (FAT).
SRC2=$T_TMP/src2.img
truncate -s 16M "$SRC2"
printf 'label: dos\nstart=2048, size=12M, type=ef\n' | sfdisk -q "$SRC2"
mkfs.vfat -C "$T_TMP/esp.img" 12288 > /dev/null && echo efi > "$T_TMP/efi.txt" &&
	MTOOLS_SKIP_CHECK=1 mcopy -i "$T_TMP/esp.img" "$T_TMP/efi.txt" ::EFI.TXT &&
	dd if="$T_TMP/esp.img" of="$SRC2" bs=1M seek=1 conv=notrunc status=none ||
	{ t_fail "fixture" "could not build $SRC2"; exit 0; }

# --- Samba: private config, state and user (cctest, mapped to root) under $T_TMP --------------
# start_smbd DIR PORT [GLOBAL OPTION]: smbd on 127.0.0.1:PORT with shares "share" (cctest) and
# "public" (guest); SMBD_PID. smbd signals its whole process group when it stops, hence its own
# session (setsid, which keeps the PID here); its children (one per connection) are waited for.
start_smbd() {
	local d=$1
	mkdir -p "$d"/{share,public,private,lock,state,cache,pid,ncalrpc,log}
	cat > "$d/smb.conf" <<-EOF
	[global]
		server role = standalone server
		smb ports = $2
		interfaces = 127.0.0.1
		bind interfaces only = yes
		disable netbios = yes
		private dir = $d/private
		lock directory = $d/lock
		state directory = $d/state
		cache directory = $d/cache
		pid directory = $d/pid
		ncalrpc dir = $d/ncalrpc
		log file = $d/log/smbd.log
		passdb backend = tdbsam:$d/private/passdb.tdb
		username map = $d/users.map
		map to guest = bad user
		load printers = no
		printing = bsd
		printcap name = /dev/null
		disable spoolss = yes
		${3:-}
	[share]
		path = $d/share
		read only = no
		force user = root
	[public]
		path = $d/public
		read only = no
		guest ok = yes
		force user = root
	[archive]
		path = $d/archive
		read only = yes
		force user = root
	EOF
	mkdir -p "$d/archive/old"
	echo "root = cctest" > "$d/users.map"
	printf '%s\n%s\n' "$PASSWORD" "$PASSWORD" | pdbedit -s "$d/smb.conf" -a -t -u root > "$d/pdbedit.log" 2>&1 ||
		{ tail -3 "$d/pdbedit.log"; return 1; }
	setsid smbd -s "$d/smb.conf" --foreground --no-process-group --debug-stdout -d 1 > "$d/smbd.out" 2>&1 &
	SMBD_PID=$!
	cleanup 'stop '"$SMBD_PID"' $(ps -o pid= --ppid '"$SMBD_PID"'); wait '"$SMBD_PID"
}
SMBD=$T_TMP/smb
SMB21=$T_TMP/smb21                                  # an old server: SMB 2.1 at most
SMB21PORT=$(free_port)
# Not in $(...): SMBD_PID and the cleanup hook must reach this shell.
start_smbd "$SMBD" "$SMBPORT" > "$T_TMP/smbd.err" || { t_fail "samba user" "$(cat "$T_TMP/smbd.err")"; exit 0; }
start_smbd "$SMB21" "$SMB21PORT" "server max protocol = SMB2_10" > "$T_TMP/smbd.err" ||
	{ t_fail "samba user" "$(cat "$T_TMP/smbd.err")"; exit 0; }

# --- NFS-Ganesha: NFSv4 only (needs no rpcbind), VFS FSAL on a folder of $T_TMP --------------
NFSD=$T_TMP/nfs
mkdir -p "$NFSD"/{export,recovery}
cat > "$NFSD/ganesha.conf" <<EOF
NFS_CORE_PARAM {
	Bind_addr = 127.0.0.1;
	NFS_Port = $NFSPORT;
	Protocols = 4;
	Enable_UDP = false;
	Enable_NLM = false;
	Enable_RQUOTA = false;
}
NFSV4 {
	Graceless = true;
	RecoveryBackend = fs;
	RecoveryRoot = $NFSD/recovery;
}
EXPORT {
	Export_Id = 1;
	Path = $NFSD/export;
	Pseudo = /export;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	Transports = TCP;
	FSAL { Name = VFS; }
}
EOF
setsid ganesha.nfsd -F -f "$NFSD/ganesha.conf" -L "$NFSD/ganesha.log" -p "$NFSD/ganesha.pid" -N NIV_EVENT \
	> "$NFSD/ganesha.out" 2>&1 &
GANESHA_PID=$!
cleanup "stop $GANESHA_PID; wait $GANESHA_PID"

# Ready-wait for both listeners.
for _ in $(seq 30); do
	ss -Hltn "sport = :$SMBPORT" | grep -q . && ss -Hltn "sport = :$NFSPORT" | grep -q . &&
		ss -Hltn "sport = :$SMB21PORT" | grep -q . && break
	sleep 0.5
done
if ! ss -Hltn "sport = :$SMBPORT" | grep -q .; then
	t_fail "smbd listens on 127.0.0.1:$SMBPORT" "$(tail -5 "$SMBD/smbd.out")"; exit 0
fi
NFS_UP=yes
ss -Hltn "sport = :$NFSPORT" | grep -q . || { NFS_UP=no; t_fail "ganesha.nfsd listens on 127.0.0.1:$NFSPORT" \
	"$(grep -v DBUS "$NFSD/ganesha.log" | tail -5)"; }

# --- host: no cifs/nfs client in this kernel -> exit 4 and a clear line ------------------------
host_case() {   # NAME FSTYPE MODULE URL PATTERN
	local out rc
	if grep -qw "$2" /proc/filesystems || modprobe -n -q "$3" 2> /dev/null; then
		t_skip "host: $1" "this kernel has a $2 client"
		return
	fi
	out=$(COLDCLONE_PASSWORD=$PASSWORD "$COLDCLONE" clone --source "$SRC" --output "$4" --progress none 2>&1)
	rc=$?
	if [ $rc = 4 ] && grep -qF -- "$5" <<< "$out" && ! grep -qF -- "$PASSWORD" <<< "$out"; then
		t_pass "host: $1: exit 4, '$5'"
	else
		t_fail "host: $1" "exit $rc, want 4 and '$5'; output: $(tail -3 <<< "$out")"
	fi
}
host_case "smb:// without a kernel SMB client" cifs cifs \
	"smb://cctest@127.0.0.1:$SMBPORT/share/host/disk.qcow2" "this kernel has no SMB client (cifs module)"
host_case "nfs:// without a kernel NFS client" nfs4 nfsv4 \
	"nfs://127.0.0.1:$NFSPORT/export/host/disk.qcow2" "this kernel has no NFS client (nfs module)"
[ -e "$SMBD/share/host" ] && t_fail "host: nothing written to the share" "$SMBD/share/host exists"
ls /run/coldclone 2> /dev/null | grep -q . && t_fail "host: no mount point left" "$(ls /run/coldclone)"

# --- guest: one boot, every case from a script ---------------------------------------------------
# The rescue shell (coldclone.mode=shell) is a login shell: a small cpio appended to the initrd
# (the kernel unpacks concatenated archives) gives it an /etc/profile that runs the cases and
# powers off. COLDCLONE_PASSWORD=... on the kernel command line reaches init's environment (the
# kernel passes unknown NAME=VALUE arguments to init), and so every coldclone it starts.
OVL=$T_TMP/overlay
mkdir -p "$OVL/etc"
cat > "$OVL/etc/profile" <<EOF
case_run() {
	name=\$1; shift
	echo "SHARE-BEGIN \$name"
	coldclone clone --source /dev/vda --progress none "\$@" 2>&1
	echo "SHARE-END \$name rc=\$?"
}
case_run smb-ok --verify --output smb://cctest@10.0.2.2:$SMBPORT/share/dir/sub/disk.qcow2
case_run smb-exists --output smb://cctest@10.0.2.2:$SMBPORT/share/dir/sub/disk.qcow2
case_run smb-guest --output smb://10.0.2.2:$SMBPORT/public/guest.raw
case_run smb21 --output smb://cctest@10.0.2.2:$SMB21PORT/share/old.vhdx
case_run smb-badpw --output smb://cctest:$WRONG@10.0.2.2:$SMBPORT/share/bad/disk.qcow2
case_run smb-noshare --output smb://cctest@10.0.2.2:$SMBPORT/noshare/disk.qcow2
case_run smb-refused --output smb://cctest@10.0.2.2:$CLOSEDPORT/share/x/disk.qcow2
case_run smb-readonly --output smb://cctest@10.0.2.2:$SMBPORT/archive/old/disk.qcow2
case_run nfs-ok --verify --output nfs://10.0.2.2:$NFSPORT/export/dir/disk.qcow2
case_run nfs-noexport --output nfs://10.0.2.2:$NFSPORT/nosuch/disk.qcow2
echo "SHARE-BEGIN machine"
coldclone clone --all --name m1 --format qcow2 --progress none --vm-cpus 3 --vm-memory 3072 --output smb://cctest@10.0.2.2:$SMBPORT/share/machine/ 2>&1
echo "SHARE-END machine rc=\$?"
echo "SHARE-BEGIN machine-nodisk"
coldclone clone --all --disk vda --disk vdz --output smb://cctest@10.0.2.2:$SMBPORT/share/machine2/ 2>&1
echo "SHARE-END machine-nodisk rc=\$?"
echo "SHARE-MOUNTS-LEFT \$(grep -c ' /run/coldclone/' /proc/mounts) \$(ls /run/coldclone 2> /dev/null | wc -l)"
echo "COLDCLONE-RESULT: ok share cases done"
sync
poweroff -f
EOF
INITRD=$T_TMP/initrd.img
cp "$IMG/initrd.img" "$INITRD"
truncate -s $(( ($(stat -c %s "$INITRD") + 511) / 512 * 512 )) "$INITRD"   # cpio starts 4-aligned
( cd "$OVL" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet ) >> "$INITRD"

LOG=$T_TMP/guest.log
rm -f "$T_TMP/in"; mkfifo "$T_TMP/in"
t0=$(date +%s)
qemu-system-x86_64 -accel tcg -m 512 -smp 2 -nographic -serial mon:stdio -no-reboot \
	-kernel "$IMG/vmlinuz" -initrd "$INITRD" \
	-append "console=ttyS0,115200 coldclone.mode=shell COLDCLONE_PASSWORD=$PASSWORD" \
	-drive "id=src,if=none,format=raw,readonly=on,file=$SRC" -device virtio-blk-pci,drive=src,serial=SHARESRC \
	-drive "id=src2,if=none,format=raw,readonly=on,file=$SRC2" -device virtio-blk-pci,drive=src2,serial=SHARESRC2 \
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
	< "$T_TMP/in" > "$LOG" 2>&1 &
QPID=$!
exec 7> "$T_TMP/in"            # a live pipe on stdin: /dev/null makes QEMU flood ^@
while kill -0 $QPID 2> /dev/null && [ $(($(date +%s) - t0)) -lt "$BOOT_TIMEOUT" ]; do
	grep -aqF "COLDCLONE-RESULT" "$LOG" && break
	sleep 1
done
ELAPSED=$(($(date +%s) - t0))
for _ in $(seq 30); do kill -0 $QPID 2> /dev/null || break; sleep 1; done   # poweroff
kill $QPID 2> /dev/null
wait $QPID 2> /dev/null
exec 7>&-
echo "  guest: ${ELAPSED}s (boot and nine cases)"
tr -d '\r' < "$LOG" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' > "$LOG.txt"
KEEP=0

# section NAME: what coldclone printed in the guest for case NAME; RC: its exit code.
section() { sed -n "/^SHARE-BEGIN $1\$/,/^SHARE-END $1 /p" "$LOG.txt"; }
rc_of() { sed -n "s/^SHARE-END $1 rc=\([0-9]*\).*/\1/p" "$LOG.txt"; }
guest_case() {   # NAME CASE RC PATTERN
	local got
	got=$(rc_of "$1")
	if [ "$got" = "$3" ] && section "$1" | grep -qF -- "$4"; then
		t_pass "guest: $2 (exit $3)"
	else
		t_fail "guest: $2" "exit ${got:-none}, want $3 and '$4'; output:"
		section "$1" | tail -8 | sed 's/^/    /'
		KEEP=1
	fi
}
# check_image NAME DIR: DIR/disk.qcow2 with its manifest, no .partial, equal to the source.
check_image() {
	local name=$1 img=$2/disk.qcow2 man=$2/disk.qcow2.manifest.json want got
	if [ ! -f "$img" ] || [ ! -f "$man" ]; then
		t_fail "$name: image and manifest on the server" "$(ls -la "$2" 2>&1 | tail -5)"
		KEEP=1; return
	fi
	t_pass "$name: image and manifest on the server ($(du -h --apparent-size "$img" | cut -f1))"
	[ -e "$img.partial" ] && t_fail "$name: no .partial left" "$img.partial exists"
	check "$name: qemu-img check" qemu-img check -q -f qcow2 "$img"
	check "$name: qemu-img compare with the source" qemu-img compare -q -f raw -F qcow2 "$SRC" "$img"
	want=$(jq -r .image.sha256 "$man")
	got=$(sha256sum < "$img" | cut -d' ' -f1)
	[ "$want" = "$got" ] && t_pass "$name: sha256sum equals the manifest's image.sha256" ||
		t_fail "$name: sha256sum equals the manifest's image.sha256" "manifest $want, file $got"
	grep -qF -- "$PASSWORD" "$man" && t_fail "$name: no password in the manifest" "found in $man"
	echo "  $name: image.path $(jq -r .image.path "$man")"
}

if ! grep -qF "COLDCLONE-RESULT: ok share cases done" "$LOG.txt"; then
	t_fail "guest: boot and run the cases" "no result line after ${ELAPSED}s; serial log tail:"
	grep -av '^\s*$' "$LOG.txt" | tail -25 | sed 's/^/    /'
	KEEP=1
fi
guest_case smb-ok "smb:// with COLDCLONE_PASSWORD" 0 "done: 'smb://cctest@10.0.2.2:$SMBPORT/share/dir/sub/disk.qcow2'"
guest_case smb-ok "smb:// --verify reads the image back" 0 "verified: 'smb://cctest@10.0.2.2:$SMBPORT/share/dir/sub/disk.qcow2' read back"
check_image smb "$SMBD/share/dir/sub"
sum=$(sha256sum < "$SMBD/share/dir/sub/disk.qcow2")
guest_case smb-exists "existing image refused without --force" 4 "'smb://cctest@10.0.2.2:$SMBPORT/share/dir/sub/disk.qcow2' already exists"
[ "$(sha256sum < "$SMBD/share/dir/sub/disk.qcow2")" = "$sum" ] && t_pass "existing image left as it was" ||
	t_fail "existing image left as it was" "it changed"
guest_case smb-guest "smb:// without a user: guest access" 0 "done: 'smb://10.0.2.2:$SMBPORT/public/guest.raw'"
[ -f "$SMBD/public/guest.raw" ] && [ "$(jq -r .image.sha256 "$SMBD/public/guest.raw.manifest.json" 2> /dev/null)" = \
	"$(sha256sum < "$SMBD/public/guest.raw" | cut -d' ' -f1)" ] && t_pass "guest: raw image with its manifest, checksum matches" ||
	t_fail "guest: raw image with its manifest, checksum matches" "$(ls -la "$SMBD/public")"
[ "$(jq -r .image.path "$SMBD/share/dir/sub/disk.qcow2.manifest.json" 2> /dev/null)" = \
	"smb://cctest@10.0.2.2:$SMBPORT/share/dir/sub/disk.qcow2" ] && t_pass "smb: manifest names the image by its URL" ||
	t_fail "smb: manifest names the image by its URL" "image.path is not the URL"
guest_case smb21 "smb:// to a server that stops at SMB 2.1" 0 "(SMB 2.1)"
[ -f "$SMB21/share/old.vhdx" ] && [ "$(jq -r .image.sha256 "$SMB21/share/old.vhdx.manifest.json" 2> /dev/null)" = \
	"$(sha256sum < "$SMB21/share/old.vhdx" | cut -d' ' -f1)" ] && t_pass "SMB 2.1: vhdx image with its manifest, checksum matches" ||
	t_fail "SMB 2.1: vhdx image with its manifest, checksum matches" "$(ls -la "$SMB21/share")"
guest_case smb-badpw "wrong password: refused login named" 4 "'smb://cctest@10.0.2.2:$SMBPORT/share/bad/disk.qcow2': the server refused the login"
section smb-badpw | grep -qF -- "$WRONG" && t_fail "guest: wrong password never printed" "the password is in the output"
[ -e "$SMBD/share/bad" ] && t_fail "wrong password: nothing left on the share" "$SMBD/share/bad exists" ||
	t_pass "wrong password: nothing left on the share"
guest_case smb-readonly "read-only share: refused, URL named" 4 "'smb://cctest@10.0.2.2:$SMBPORT/archive/old/disk.qcow2' (mounted at"
[ -z "$(ls -A "$SMBD/archive/old")" ] && t_pass "read-only share: nothing written" || t_fail "read-only share: nothing written" "$(ls "$SMBD/archive/old")"
guest_case smb-noshare "missing share named" 4 "the server has no share named 'noshare'"
guest_case smb-refused "closed port: connection refused named" 4 "port $CLOSEDPORT of 10.0.2.2"
if [ $NFS_UP = yes ]; then
	guest_case nfs-ok "nfs:// (NFSv4, no rpcbind)" 0 "done: 'nfs://10.0.2.2:$NFSPORT/export/dir/disk.qcow2'"
	guest_case nfs-ok "nfs:// --verify reads the image back" 0 "verified: 'nfs://10.0.2.2:$NFSPORT/export/dir/disk.qcow2' read back"
	check_image nfs "$NFSD/export/dir"
	guest_case nfs-noexport "missing export named" 4 "the server exports no '/nosuch'"
fi
# Whole machine: both disks, one image each, named after the machine, then the machine manifest.
guest_case machine "clone --all: every disk, then the machine manifest" 0 "machine 'm1': 2 disks captured"
MD=$SMBD/share/machine
for d in vda:"$SRC" vdb:"$SRC2"; do
	dev=${d%%:*} disk=${d#*:}
	if [ -f "$MD/m1-$dev.qcow2.manifest.json" ] && qemu-img compare -q -f raw -F qcow2 "$disk" "$MD/m1-$dev.qcow2"; then
		t_pass "--all: m1-$dev.qcow2 equals its source disk"
	else
		t_fail "--all: m1-$dev.qcow2 equals its source disk" "$(ls "$MD" 2>&1)"
	fi
done
MJ=$MD/m1.machine.json
if [ -f "$MJ" ] && [ "$(jq '.disks | length' "$MJ")" = 2 ] && [ "$(jq -r .firmware "$MJ")" = uefi ] &&
	[ "$(jq -r '.disks[1].sha256' "$MJ")" = "$(sha256sum < "$MD/m1-vdb.qcow2" | cut -d' ' -f1)" ]; then
	t_pass "--all: machine manifest lists both disks with their checksums, firmware uefi"
else
	t_fail "--all: machine manifest" "$(cat "$MJ" 2>&1 | head -20)"
fi
if [ -f "$MD/m1.xml" ] && grep -q "m1-vdb.qcow2" "$MD/m1.xml" && [ "$(jq -r '.descriptors[0]' "$MJ")" = m1.xml ] &&
	[ "$(jq -r .inventory.cpu.logical "$MJ")" = 2 ]; then
	t_pass "--all: libvirt domain XML beside the qcow2 images, inventory in the manifest"
else
	t_fail "--all: libvirt descriptor" "$(ls "$MD" 2>&1); $(jq -c '{descriptors, inventory}' "$MJ" 2>&1 | head -c 400)"
fi
if command -v virt-xml-validate > /dev/null; then
	check "--all: libvirt XML passes virt-xml-validate" virt-xml-validate "$MD/m1.xml" domain
fi
grep -q "<vcpu placement='static'>3</vcpu>" "$MD/m1.xml" 2> /dev/null && grep -q "<memory unit='MiB'>3072</memory>" "$MD/m1.xml" &&
	t_pass "--all: --vm-cpus and --vm-memory override the source's" ||
	t_fail "--all: VM overrides" "$(grep -a 'vcpu\|memory' "$MD/m1.xml" 2>&1)"
grep -q "<os firmware='efi'>" "$MD/m1.xml" 2> /dev/null && t_pass "--all: UEFI source gives a UEFI VM" ||
	t_fail "--all: UEFI source gives a UEFI VM" "$(grep -a '<os' "$MD/m1.xml" 2>&1)"
guest_case machine-nodisk "--all --disk with an unknown disk: usage error" 2 "--disk vdz: no such source disk"
[ -e "$SMBD/share/machine2" ] && t_fail "--all refused: nothing written" "$SMBD/share/machine2 exists" ||
	t_pass "--all refused: nothing written"
grep -q '^SHARE-MOUNTS-LEFT 0 0' "$LOG.txt" && t_pass "guest: every share unmounted, mount points removed" ||
	t_fail "guest: every share unmounted, mount points removed" "$(grep -a '^SHARE-MOUNTS-LEFT' "$LOG.txt")"
echo "  total $(($(date +%s) - TSTART))s"

if [ $KEEP = 1 ] || [ -n "${KEEP_LOGS:-}" ]; then
	mkdir -p "$BUILD/test-share-logs"
	cp "$LOG.txt" "$BUILD/test-share-logs/guest.log"
	cp "$SMBD/log/smbd.log" "$BUILD/test-share-logs/" 2> /dev/null
	cp "$NFSD/ganesha.log" "$BUILD/test-share-logs/" 2> /dev/null
	echo "  logs kept in $BUILD/test-share-logs/"
fi
