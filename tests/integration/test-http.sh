#!/usr/bin/env bash
# HTTP(S)/WebDAV destination against a real nginx on 127.0.0.1: TLS with a CA made here,
# basic auth, WebDAV (MKCOL, upload under .partial, MOVE) and plain PUT; every image is
# checked with sha256sum and qemu-img against the manifest. Faults: untrusted certificate,
# wrong password, existing image, a connection cut early (restarted transparently) and late
# (clear failure, nothing left), and the password kept out of output, manifest and `ps`.
source "$(dirname "$0")/../lib.sh"
requires nginx openssl python3 qemu-img jq sha256sum xmllint
need_fixtures || { t_fail fixtures "could not build the fixture disks"; exit 0; }

DAV_EXT=$(ls /usr/lib/nginx/modules/ngx_http_dav_ext_module.so 2>/dev/null || true)
[ -n "$DAV_EXT" ] || { t_skip webdav "nginx's dav-ext module (libnginx-mod-http-dav-ext) is not installed"; exit 0; }

W=$T_TMP/www
mkdir -p "$W/dav" "$W/plain" "$T_TMP/body"
PASSWORD='s3cret-Pa55:word'
PORT_TLS=$(free_port)
PORT_HTTP=$(free_port)
PORT_CUT=$(free_port)

# A private CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=coldclone test CA" \
	-keyout "$T_TMP/ca.key" -out "$T_TMP/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$T_TMP/srv.key" -out "$T_TMP/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$T_TMP/san.ext"
openssl x509 -req -in "$T_TMP/srv.csr" -CA "$T_TMP/ca.pem" -CAkey "$T_TMP/ca.key" -CAcreateserial \
	-days 2 -extfile "$T_TMP/san.ext" -out "$T_TMP/srv.pem" 2>/dev/null
printf 'tester:%s\n' "$(openssl passwd -apr1 "$PASSWORD")" > "$T_TMP/htpasswd"

cat > "$T_TMP/nginx.conf" <<EOF
load_module $DAV_EXT;
user root;
worker_processes 1;
error_log $T_TMP/error.log info;
pid $T_TMP/nginx.pid;
events { worker_connections 64; }
http {
	access_log $T_TMP/access.log;
	client_body_temp_path $T_TMP/body;
	proxy_temp_path $T_TMP/body;
	fastcgi_temp_path $T_TMP/body;
	uwsgi_temp_path $T_TMP/body;
	scgi_temp_path $T_TMP/body;
	client_max_body_size 0;
	root $W;
	auth_basic "coldclone test";
	auth_basic_user_file $T_TMP/htpasswd;
	server {
		listen 127.0.0.1:$PORT_TLS ssl;
		ssl_certificate $T_TMP/srv.pem;
		ssl_certificate_key $T_TMP/srv.key;
		include $T_TMP/locations.conf;
	}
	server { listen 127.0.0.1:$PORT_HTTP; include $T_TMP/locations.conf; }
}
EOF
cat > "$T_TMP/locations.conf" <<EOF
location /dav/ {
	dav_methods PUT DELETE MKCOL COPY MOVE;
	dav_ext_methods PROPFIND OPTIONS;
}
location /plain/ { dav_methods PUT DELETE; }
location /forbidden/ { deny all; }
location /full/ { dav_methods PUT DELETE MKCOL MOVE; dav_ext_methods PROPFIND OPTIONS; client_body_temp_path $W/full/.tmp; }
EOF
# /full/ sits on an 8 MiB tmpfs (the upload's temporary file too): a destination that fills up.
mkdir -p "$W/full"
FULL=no
if mount -t tmpfs -o size=8m coldclone-full "$W/full" 2>/dev/null; then
	FULL=yes
	mkdir -p "$W/full/.tmp"
	cleanup "umount '$W/full'"
fi
nginx -c "$T_TMP/nginx.conf" -p "$T_TMP" 2> "$T_TMP/nginx.start" || {
	t_fail nginx "nginx did not start: $(cat "$T_TMP/nginx.start")"; exit 0; }
cleanup 'kill $(cat "$T_TMP/nginx.pid") 2>/dev/null'

SRC=$FIXTURES/gpt-mixed.img
URL_TLS=https://tester@127.0.0.1:$PORT_TLS
export COLDCLONE_PASSWORD=$PASSWORD

clone() {  # clone OUTPUT [options...]: runs the cloner, output in $T_TMP/out, rc in $rc
	local out=$1; shift
	"$COLDCLONE" clone --source "$SRC" --output "$out" --progress none --retries 2 --timeout 10 "$@" \
		> "$T_TMP/out" 2>&1
	rc=$?
}

check_uploaded() {  # check_uploaded NAME FILE FORMAT: image and manifest as stored by nginx
	local name=$1 img=$2 fmt=$3 m="$2.manifest.json"
	[ -f "$img" ] && [ -f "$m" ] || { t_fail "$name: stored" "no image or no manifest at $img"; return; }
	[ "$(sha256sum "$img" | cut -d' ' -f1)" = "$(jq -r .image.sha256 "$m")" ] \
		&& t_pass "$name: sha256sum of the stored image matches the manifest" \
		|| t_fail "$name: sha256" "stored image differs from manifest"
	[ "$(qemu_digest "$(qemu_fmt "$fmt")" "$img")" = "$(jq -r .content.digest "$m")" ] \
		&& t_pass "$name: qemu-img reads the source's content" \
		|| t_fail "$name: content" "qemu-img + digest differs from the manifest"
	! ls "$(dirname "$img")" | grep -q partial && t_pass "$name: no .partial left" \
		|| t_fail "$name: leftovers" "$(ls "$(dirname "$img")")"
}

# 1. WebDAV over TLS with folders to create, --verify.
clone "$URL_TLS/dav/site-a/rack%201/disk.qcow2" --ca-file "$T_TMP/ca.pem" --verify
[ $rc -eq 0 ] && t_pass "webdav tls: clone exit 0" || t_fail "webdav tls: clone" "exit $rc: $(tail -5 "$T_TMP/out")"
check_uploaded "webdav tls" "$W/dav/site-a/rack 1/disk.qcow2" qcow2
grep -q 'verified:' "$T_TMP/out" && t_pass "webdav tls: --verify read the image back" \
	|| t_fail "webdav tls: verify" "$(tail -3 "$T_TMP/out")"
M="$W/dav/site-a/rack 1/disk.qcow2.manifest.json"
[ "$(jq -r .transfer.destination "$M")" = http ] && [ "$(jq -r .transfer.tls_insecure "$M")" = false ] \
	&& t_pass "webdav tls: manifest records the transfer" || t_fail "webdav tls: manifest" "$(jq -c .transfer "$M")"
! grep -rq "$PASSWORD" "$T_TMP/out" "$M" && t_pass "webdav tls: password in neither output nor manifest" \
	|| t_fail "webdav tls: password leak" "password found in output or manifest"

# 2. The same destination again: refused without --force, replaced with it.
clone "$URL_TLS/dav/site-a/rack%201/disk.qcow2" --ca-file "$T_TMP/ca.pem"
[ $rc -eq 4 ] && grep -q 'already exists' "$T_TMP/out" && t_pass "existing image refused (exit 4)" \
	|| t_fail "existing image" "exit $rc: $(tail -3 "$T_TMP/out")"
clone "$URL_TLS/dav/site-a/rack%201/disk.qcow2" --ca-file "$T_TMP/ca.pem" --force --format qcow2
[ $rc -eq 0 ] && t_pass "--force replaces the image" || t_fail "--force" "exit $rc: $(tail -3 "$T_TMP/out")"

# 3. Untrusted certificate, wrong password: exit 4 in prepare, nothing stored.
clone "$URL_TLS/dav/untrusted.vhdx"
[ $rc -eq 4 ] && grep -q 'not trusted' "$T_TMP/out" && [ ! -e "$W/dav/untrusted.vhdx.partial" ] \
	&& t_pass "untrusted certificate: exit 4, says --ca-file" || t_fail "untrusted certificate" "exit $rc: $(tail -3 "$T_TMP/out")"
COLDCLONE_PASSWORD=wrong clone "$URL_TLS/dav/wrongpw.vhdx" --ca-file "$T_TMP/ca.pem"
[ $rc -eq 4 ] && grep -q 'credentials' "$T_TMP/out" && ! ls "$W/dav" | grep -q wrongpw \
	&& t_pass "wrong password: exit 4, says credentials" || t_fail "wrong password" "exit $rc: $(tail -3 "$T_TMP/out")"
clone "$URL_TLS/dav/insecure.vhdx" --insecure
[ $rc -eq 0 ] && grep -q 'NOT checked' "$T_TMP/out" && [ "$(jq -r .transfer.tls_insecure "$W/dav/insecure.vhdx.manifest.json")" = true ] \
	&& t_pass "--insecure works, is loud and recorded" || t_fail "--insecure" "exit $rc: $(tail -3 "$T_TMP/out")"

# 4. A server without WebDAV: plain PUT under the final name.
clone "http://tester@127.0.0.1:$PORT_HTTP/plain/disk.vmdk"
[ $rc -eq 0 ] && grep -q 'no WebDAV' "$T_TMP/out" && t_pass "plain PUT: clone exit 0" \
	|| t_fail "plain PUT" "exit $rc: $(tail -5 "$T_TMP/out")"
check_uploaded "plain PUT vmdk-stream" "$W/plain/disk.vmdk" vmdk

# 4b. A vSphere datastore URL (the datastore file API: PUT under the final name, basic auth):
#     the streamOptimized VMDK, its manifest, and an OVF to deploy it.
mkdir -p "$W/plain/vs"
clone "http://tester@127.0.0.1:$PORT_HTTP/plain/vs/srv01.vmdk?dcPath=ha-datacenter&dsName=datastore1"
[ $rc -eq 0 ] && grep -q 'vSphere datastore' "$T_TMP/out" && t_pass "vSphere URL: clone exit 0" \
	|| t_fail "vSphere URL" "exit $rc: $(tail -5 "$T_TMP/out")"
check_uploaded "vSphere vmdk-stream" "$W/plain/vs/srv01.vmdk" vmdk
OVF=$W/plain/vs/srv01.ovf
if [ -f "$OVF" ] && xmllint --noout "$OVF" 2>/dev/null && grep -q 'ovf:href="srv01.vmdk"' "$OVF" \
	&& grep -q "ovf:size=\"$(stat -c %s "$W/plain/vs/srv01.vmdk")\"" "$OVF" \
	&& grep -q "ovf:capacity=\"$(stat -c %s "$SRC")\"" "$OVF"; then
	t_pass "vSphere URL: OVF beside the disk, well-formed, with its size and capacity"
else
	t_fail "vSphere OVF" "$(ls "$W/plain/vs"; head -c 600 "$OVF" 2>&1)"
fi

# 5. A connection cut after 3 MiB: the upload restarts from its start, which is still buffered.
start_faultproxy "$PORT_CUT" "$PORT_HTTP" $((3 << 20)) 1
clone "http://tester@127.0.0.1:$PORT_CUT/dav/cut-early/disk.raw"
[ $rc -eq 0 ] && [ -s "$T_TMP/cuts" ] && [ "$(jq .transfer.resumes "$W/dav/cut-early/disk.raw.manifest.json")" = 1 ] \
	&& t_pass "connection cut at 3 MiB: upload restarted and completed" \
	|| t_fail "early cut" "exit $rc, cuts: $(cat "$T_TMP/cuts" 2>/dev/null): $(tail -5 "$T_TMP/out")"
[ -f "$W/dav/cut-early/disk.raw" ] && check_uploaded "early cut" "$W/dav/cut-early/disk.raw" raw
stop_faultproxy

# 6. Cut after 64 MiB, every time: HTTP PUT cannot resume that far; a clear failure, nothing left,
#    and meanwhile `ps` does not show the password given in the URL.
start_faultproxy "$PORT_CUT" "$PORT_HTTP" $((64 << 20)) 10
COLDCLONE_PASSWORD= "$COLDCLONE" clone --source "$SRC" --output "http://tester:$PASSWORD@127.0.0.1:$PORT_CUT/dav/cut-late/disk.raw" \
	--progress none --retries 2 --timeout 10 > "$T_TMP/out" 2>&1 &
CL=$!
for _ in $(seq 100); do [ -s "$T_TMP/cuts" ] && break; sleep 0.2; done
tr '\0' ' ' < /proc/$CL/cmdline > "$T_TMP/cmdline" 2>/dev/null
wait $CL; rc=$?
! grep -q "$PASSWORD" "$T_TMP/cmdline" && grep -q 'tester:\*' "$T_TMP/cmdline" \
	&& t_pass "password in the URL is blanked in /proc/PID/cmdline" || t_fail "ps leak" "$(cat "$T_TMP/cmdline")"
[ $rc -eq 4 ] && grep -q 'cannot resume' "$T_TMP/out" && grep -q 'gave up after 2 whole retries' "$T_TMP/out" \
	&& t_pass "connection cut at 64 MiB every time: 2 whole retries, then exit 4" \
	|| t_fail "late cut" "exit $rc: $(tail -5 "$T_TMP/out")"
[ -z "$(ls -A "$W/dav/cut-late" 2>/dev/null)" ] && t_pass "late cut: nothing left on the server" \
	|| t_fail "late cut leftovers" "$(ls "$W/dav/cut-late")"
! grep -q "$PASSWORD" "$T_TMP/out" && t_pass "late cut: password not in the messages" || t_fail "late cut: leak" "password printed"
stop_faultproxy

# 6b. Cut once after 64 MiB: the copy starts again from the beginning and completes.
start_faultproxy "$PORT_CUT" "$PORT_HTTP" $((64 << 20)) 1
clone "http://tester@127.0.0.1:$PORT_CUT/dav/cut-once/disk.raw"
[ $rc -eq 0 ] && [ -s "$T_TMP/cuts" ] && grep -q 'whole retry 1 of 2' "$T_TMP/out" \
	&& t_pass "connection cut once at 64 MiB: whole retry, then complete" \
	|| t_fail "cut once late" "exit $rc: $(tail -5 "$T_TMP/out")"
[ -f "$W/dav/cut-once/disk.raw" ] && check_uploaded "whole retry" "$W/dav/cut-once/disk.raw" raw
stop_faultproxy

# 6c. Refusals that retrying cannot fix: each a clear line naming the URL, exit 4, quickly.
clone "http://tester@127.0.0.1:$PORT_HTTP/forbidden/disk.qcow2"
[ $rc -eq 4 ] && grep -q "HTTP 403.*denied" "$T_TMP/out" && grep -q "127.0.0.1:$PORT_HTTP/forbidden/disk.qcow2" "$T_TMP/out" \
	&& t_pass "403: exit 4, says access denied, names the URL" || t_fail "403" "exit $rc: $(tail -3 "$T_TMP/out")"
if [ $FULL = yes ]; then
	clone "http://tester@127.0.0.1:$PORT_HTTP/full/disk.raw"
	[ $rc -eq 4 ] && grep -q "127.0.0.1:$PORT_HTTP/full/disk.raw" "$T_TMP/out" \
		&& [ -z "$(ls "$W/full")" ] && ! grep -q '<html>' "$T_TMP/out" \
		&& t_pass "destination full: exit 4, names the URL, nothing left, no server page printed" \
		|| t_fail "full destination" "exit $rc: $(tail -3 "$T_TMP/out"); $(ls -a "$W/full")"
else
	t_skip "full destination" "cannot mount a small tmpfs here"
fi
# A server that answers garbage.
GARBAGE=$(free_port)
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.recv(65536); c.sendall(b"\x00\xffGARBAGE\r\n\r\nnot http at all\n" * 50)
    except OSError:
        pass
    c.close()
' "$GARBAGE" > "$T_TMP/garbage.out" 2>&1 &
cleanup "kill $! 2>/dev/null"
wait_for_line "$T_TMP/garbage.out" ready 10
clone "http://127.0.0.1:$GARBAGE/disk.qcow2" --retries 1
[ $rc -eq 4 ] && grep -q "127.0.0.1:$GARBAGE/disk.qcow2.*does not speak HTTP" "$T_TMP/out" && t_pass "server answering garbage: exit 4, names the URL" \
	|| t_fail "garbage server" "exit $rc: $(tail -3 "$T_TMP/out")"

# 7. Nothing listening: a clear error after the bounded retries, not a hang.
clone "http://127.0.0.1:$PORT_CUT/dav/nobody.raw" --retries 1
[ $rc -eq 4 ] && grep -q 'gave up after 1 reconnect' "$T_TMP/out" && t_pass "dead server: exit 4 after bounded retries" \
	|| t_fail "dead server" "exit $rc: $(tail -3 "$T_TMP/out")"
