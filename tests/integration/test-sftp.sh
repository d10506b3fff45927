#!/usr/bin/env bash
# SFTP destination against a real OpenSSH sshd on 127.0.0.1 (own config, host key and
# authorized key, high port): host key checked against known_hosts or a pinned
# fingerprint, an unknown key refused with its fingerprint shown, key login, a connection
# cut mid-upload resumed from the size the server holds, and the image checked with
# sha256sum and qemu-img against the manifest.
source "$(dirname "$0")/../lib.sh"
requires ssh-keygen ssh-keyscan python3 qemu-img jq sha256sum
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || { t_skip all "needs OpenSSH's sshd (openssh-server)"; exit 0; }
need_fixtures || { t_fail fixtures "could not build the fixture disks"; exit 0; }

PORT=$(free_port)
PORT_CUT=$(free_port)
D=$T_TMP/upload
mkdir -p "$D"
chmod 755 "$T_TMP"
ssh-keygen -q -t ed25519 -N '' -f "$T_TMP/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$T_TMP/client_key"
cp "$T_TMP/client_key.pub" "$T_TMP/authorized_keys"
mkdir -p /run/sshd  # sshd's privilege-separation directory
cat > "$T_TMP/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $T_TMP/host_key
PidFile $T_TMP/sshd.pid
AuthorizedKeysFile $T_TMP/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
EOF
"$SSHD" -f "$T_TMP/sshd_config" -E "$T_TMP/sshd.log" || { t_fail sshd "sshd did not start: $(tail -3 "$T_TMP/sshd.log")"; exit 0; }
cleanup 'kill $(cat "$T_TMP/sshd.pid") 2>/dev/null'
for _ in $(seq 50); do ssh-keyscan -p "$PORT" 127.0.0.1 > "$T_TMP/known_hosts" 2>/dev/null && [ -s "$T_TMP/known_hosts" ] && break; sleep 0.1; done
FP=$(ssh-keygen -lf "$T_TMP/host_key.pub" | awk '{print $2}')
USER_NAME=$(id -un)
SRC=$FIXTURES/gpt-mixed.img

clone() {  # clone URL [options...] -> $rc, output in $T_TMP/out
	local url=$1; shift
	"$COLDCLONE" clone --source "$SRC" --output "$url" --progress none --retries 3 --timeout 10 \
		--ssh-key "$T_TMP/client_key" "$@" > "$T_TMP/out" 2>&1
	rc=$?
}

check_uploaded() {  # NAME FILE FORMAT
	local name=$1 img=$2 fmt=$3 m="$2.manifest.json"
	[ -f "$img" ] && [ -f "$m" ] || { t_fail "$name: stored" "no image or no manifest at $img"; return; }
	[ "$(sha256sum "$img" | cut -d' ' -f1)" = "$(jq -r .image.sha256 "$m")" ] \
		&& t_pass "$name: sha256sum of the stored image matches the manifest" || t_fail "$name: sha256" "differs"
	[ "$(qemu_digest "$(qemu_fmt "$fmt")" "$img")" = "$(jq -r .content.digest "$m")" ] \
		&& t_pass "$name: qemu-img reads the source's content" || t_fail "$name: content" "digest differs"
	! ls "$(dirname "$img")" | grep -q partial && t_pass "$name: no .partial left" \
		|| t_fail "$name: leftovers" "$(ls "$(dirname "$img")")"
}

# 1. known_hosts, key login, folders created, --verify.
clone "sftp://$USER_NAME@127.0.0.1:$PORT$D/site/disk.vhdx" --known-hosts "$T_TMP/known_hosts" --verify
[ $rc -eq 0 ] && grep -q verified: "$T_TMP/out" && t_pass "known_hosts + key: clone and --verify" \
	|| t_fail "known_hosts + key" "exit $rc: $(tail -5 "$T_TMP/out")"
check_uploaded "sftp vhdx" "$D/site/disk.vhdx" vhdx

# 2. Unknown host key: refused before any data, its fingerprint shown; then pinned, it works.
: > "$T_TMP/empty_known_hosts"
clone "sftp://$USER_NAME@127.0.0.1:$PORT$D/unknown.qcow2" --known-hosts "$T_TMP/empty_known_hosts"
[ $rc -eq 4 ] && grep -qF -- "--ssh-fingerprint $FP" "$T_TMP/out" && [ ! -e "$D/unknown.qcow2.partial" ] \
	&& t_pass "unknown host key refused, fingerprint printed" || t_fail "unknown host key" "exit $rc: $(tail -3 "$T_TMP/out")"
clone "sftp://$USER_NAME@127.0.0.1:$PORT$D/pinned.qcow2" --ssh-fingerprint "$FP"
[ $rc -eq 0 ] && t_pass "--ssh-fingerprint pins the key" || t_fail "pinned" "exit $rc: $(tail -3 "$T_TMP/out")"
clone "sftp://$USER_NAME@127.0.0.1:$PORT$D/wrongfp.qcow2" --ssh-fingerprint "SHA256:$(printf '%043d' 0)"
[ $rc -eq 4 ] && grep -q 'does not match' "$T_TMP/out" && t_pass "wrong fingerprint refused (exit 4)" \
	|| t_fail "wrong fingerprint" "exit $rc: $(tail -3 "$T_TMP/out")"

# 3. A key the server does not accept: exit 4, says so.
ssh-keygen -q -t ed25519 -N '' -f "$T_TMP/other_key"
clone "sftp://$USER_NAME@127.0.0.1:$PORT$D/badkey.qcow2" --ssh-fingerprint "$FP" --ssh-key "$T_TMP/other_key"
[ $rc -eq 4 ] && grep -qi 'login\|auth\|denied' "$T_TMP/out" && t_pass "rejected key: exit 4" \
	|| t_fail "rejected key" "exit $rc: $(tail -3 "$T_TMP/out")"

# 4. The connection cut after 40 MiB: the upload resumes where the server's file ends.
start_faultproxy "$PORT_CUT" "$PORT" $((40 << 20)) 1
clone "sftp://$USER_NAME@127.0.0.1:$PORT_CUT$D/cut/disk.raw" --ssh-fingerprint "$FP" --format raw
[ $rc -eq 0 ] && [ -s "$T_TMP/cuts" ] && grep -q 'resumes at' "$T_TMP/out" \
	&& [ "$(jq .transfer.resumes "$D/cut/disk.raw.manifest.json")" -ge 1 ] \
	&& t_pass "connection cut at 40 MiB: upload resumed, not restarted" \
	|| t_fail "cut" "exit $rc, cuts: $(cat "$T_TMP/cuts" 2>/dev/null): $(tail -5 "$T_TMP/out")"
[ -f "$D/cut/disk.raw" ] && check_uploaded "resumed upload" "$D/cut/disk.raw" raw

# 5. Password login (no key): a second sshd that accepts passwords only, and a throwaway
# local account whose password sshd checks in /etc/shadow. Removed again on exit.
PW_USER=ccsftp$$
PW_PORT=$(free_port)
PW='S3cret pass:word@1'
if command -v useradd > /dev/null && useradd -M -d "$T_TMP" -s /bin/sh "$PW_USER" 2> /dev/null; then
	cleanup "userdel $PW_USER 2>/dev/null"
	printf '%s:%s\n' "$PW_USER" "$PW" | chpasswd
	PD=$T_TMP/pwup && mkdir -p "$PD" && chmod 777 "$PD"
	sed -e "s/^Port .*/Port $PW_PORT/" -e "s|^PidFile .*|PidFile $T_TMP/sshd-pw.pid|" \
		-e 's/^PasswordAuthentication no/PasswordAuthentication yes/' \
		-e "s|^AuthorizedKeysFile .*|AuthorizedKeysFile none|" "$T_TMP/sshd_config" > "$T_TMP/sshd_pw_config"
	"$SSHD" -f "$T_TMP/sshd_pw_config" -E "$T_TMP/sshd-pw.log" &&
		cleanup 'kill $(cat "$T_TMP/sshd-pw.pid") 2>/dev/null'
	for _ in $(seq 50); do ssh-keyscan -p "$PW_PORT" 127.0.0.1 > /dev/null 2>&1 && break; sleep 0.1; done
	pwclone() {  # URL [options]: like clone, without the key
		local url=$1; shift
		"$COLDCLONE" clone --source "$SRC" --output "$url" --progress none --retries 1 --timeout 10 \
			--ssh-fingerprint "$FP" "$@" > "$T_TMP/out" 2>&1
		rc=$?
	}
	printf '%s\n' "$PW" > "$T_TMP/pwfile"
	pwclone "sftp://$PW_USER@127.0.0.1:$PW_PORT$PD/pw.qcow2" --password-file "$T_TMP/pwfile"
	[ $rc -eq 0 ] && t_pass "password login (--password-file)" || t_fail "password login" "exit $rc: $(tail -3 "$T_TMP/out")"
	check_uploaded "password upload" "$PD/pw.qcow2" qcow2
	COLDCLONE_PASSWORD=$PW pwclone "sftp://$PW_USER@127.0.0.1:$PW_PORT$PD/env.vhdx"
	[ $rc -eq 0 ] && [ -f "$PD/env.vhdx" ] && t_pass "password from COLDCLONE_PASSWORD" \
		|| t_fail "password from the environment" "exit $rc: $(tail -3 "$T_TMP/out")"
	enc=$(/usr/bin/python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$PW")
	pwclone "sftp://$PW_USER:$enc@127.0.0.1:$PW_PORT$PD/url.raw"
	[ $rc -eq 0 ] && [ -f "$PD/url.raw" ] && ! grep -qF -e "$enc" -e "S3cret" "$T_TMP/out" "$PD/url.raw.manifest.json" \
		&& t_pass "password in the URL (percent-encoded) works and is never printed or recorded" \
		|| t_fail "password in the URL" "exit $rc: $(tail -3 "$T_TMP/out")"
	printf 'wrong\n' > "$T_TMP/badpw"
	pwclone "sftp://$PW_USER@127.0.0.1:$PW_PORT$PD/bad.qcow2" --password-file "$T_TMP/badpw"
	[ $rc -eq 4 ] && grep -qi 'login\|auth\|denied\|password' "$T_TMP/out" && [ ! -e "$PD/bad.qcow2" ] \
		&& ! ls "$PD" | grep -q '^bad' \
		&& t_pass "wrong password: exit 4, says so, nothing stored" \
		|| t_fail "wrong password" "exit $rc: $(tail -3 "$T_TMP/out"); $(ls "$PD")"
else
	t_skip "password login" "cannot create a local account (useradd)"
fi
