#!/usr/bin/env bash
# Clone to an S3-compatible server on 127.0.0.1 that checks SigV4 signatures (@20minutes/s3rver
# from npm, run by tests/tools/s3-server.js), and check the result with tools we did not write:
# curl's own SigV4 client downloads, qemu-img check/compare, sha256sum. Also: wrong key and
# missing bucket fail in prepare with nothing uploaded; dropped connections are survived by
# sending the part again (tests/tools/faultproxy.py); a fatal failure leaves no upload behind.
source "$(dirname "$0")/../lib.sh"
if ! command -v node > /dev/null 2>&1 || ! command -v npm > /dev/null 2>&1; then
	t_skip all "needs node and npm (Debian packages nodejs and npm, see tests/net-packages.txt)"
	exit 0
fi
requires qemu-img jq sha256sum curl python3
need_fixtures || { t_fail fixtures "could not build the fixture disks"; exit 0; }

S3RVER_VERSION=4.0.4   # checks SigV4 signatures; s3rver 3.x (the unscoped package) does not
NPM_DIR=$BUILD/npm-s3rver
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
export AWS_ACCESS_KEY_ID=coldclone-test AWS_SECRET_ACCESS_KEY='test/Secret+Key=1'
unset AWS_SESSION_TOKEN
SRC=$FIXTURES/gpt-mixed.img
DATA=$T_TMP/s3data
PORT=
SERVER_PID=

if [ ! -f "$NPM_DIR/node_modules/@20minutes/s3rver/package.json" ]; then
	mkdir -p "$NPM_DIR"
	if ! npm install --prefix "$NPM_DIR" --no-audit --no-fund --no-save "@20minutes/s3rver@$S3RVER_VERSION" \
		> "$T_TMP/npm.log" 2>&1; then
		t_fail "install the S3 server" "npm install @20minutes/s3rver@$S3RVER_VERSION failed: $(tail -3 "$T_TMP/npm.log")"
		exit 0
	fi
fi

start_server() {   # [port]
	: > "$T_TMP/server.log"
	node "$ROOT/tests/tools/s3-server.js" "$NPM_DIR" "$DATA" "${1:-0}" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
		> "$T_TMP/server.log" 2>&1 &
	SERVER_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		PORT=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$T_TMP/server.log")
		[ -n "$PORT" ] && return 0
		kill -0 "$SERVER_PID" 2> /dev/null || break
		sleep 0.2
	done
	echo "S3 server did not start:"; cat "$T_TMP/server.log"
	return 1
}
stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2> /dev/null && wait "$SERVER_PID" 2> /dev/null; SERVER_PID=; }
cleanup stop_server

# s3curl [curl args] URL_PATH: a request signed by curl's SigV4 code, not ours.
s3curl() {
	local path=${*: -1}
	curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: $EMPTY_SHA" "${@:1:$#-1}" "http://127.0.0.1:$PORT$path"
}
# Number of unfinished multipart uploads in bkt ("error" when the listing fails).
uploads_left() {
	local out
	out=$(s3curl '/bkt?uploads=')
	[[ "$out" == *'<ListMultipartUploadsResult'* ]] || { echo error; return; }
	grep -o '<Upload>' <<< "$out" | wc -l
}
object_code() { s3curl -o /dev/null -w '%{http_code}' -I "/bkt/$1"; }

clone() {   # key endpoint [options...]: clone $SRC as qcow2 to s3://bkt/key; log in $T_TMP/log
	local key=$1 ep=$2
	shift 2
	"$COLDCLONE" clone --source "$SRC" --output "s3://bkt/$key" --format qcow2 --s3-endpoint "$ep" \
		--progress none "$@" > "$T_TMP/log" 2>&1
}

# Download KEY and check it against the manifest beside it and the local reference clone.
check_object() {   # name key
	local name=$1 key=$2 got want
	rm -f "$T_TMP/dl.qcow2" "$T_TMP/dl.json"
	if ! s3curl -f -o "$T_TMP/dl.qcow2" "/bkt/$key" || ! s3curl -f -o "$T_TMP/dl.json" "/bkt/$key.manifest.json"; then
		t_fail "$name: download image and manifest" "curl could not get them"
		return
	fi
	t_pass "$name: image and manifest are there"
	check "$name: qemu-img check" qemu-img check -f qcow2 "$T_TMP/dl.qcow2"
	check "$name: qemu-img compare with a local clone" qemu-img compare -f qcow2 -F qcow2 "$T_TMP/dl.qcow2" "$T_TMP/ref.qcow2"
	got=$(sha256sum < "$T_TMP/dl.qcow2" | cut -d' ' -f1)
	want=$(jq -r .image.sha256 "$T_TMP/dl.json")
	[ "$got" = "$want" ] && t_pass "$name: manifest image.sha256 = sha256sum of the object" \
		|| t_fail "$name: manifest image.sha256 = sha256sum of the object" "sha256sum $got, manifest $want"
	got=$(qemu_digest qcow2 "$T_TMP/dl.qcow2")
	want=$(jq -r .content.digest "$T_TMP/dl.json")
	[ "$got" = "$want" ] && t_pass "$name: content digest via qemu-img" \
		|| t_fail "$name: content digest via qemu-img" "qemu-img+digest $got, manifest $want"
}

start_server || { t_fail "start the S3 server" "see above"; exit 0; }
t_pass "start the S3 server"

# The server must refuse a wrong signature, or none of the credential checks below mean anything.
out=$(curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:wrong" -H "x-amz-content-sha256: $EMPTY_SHA" \
	-X PUT "http://127.0.0.1:$PORT/other")
[[ "$out" == *SignatureDoesNotMatch* ]] && t_pass "server rejects a bad signature" \
	|| t_fail "server rejects a bad signature" "got: $out"
out=$(s3curl -X PUT -w '%{http_code}' /bkt)
[[ "$out" == *200 ]] && t_pass "create bucket" || t_fail "create bucket" "got: $out"

"$COLDCLONE" clone --source "$SRC" --output "$T_TMP/ref.qcow2" --format qcow2 --progress none -q > "$T_TMP/log" 2>&1 \
	|| { t_fail "local reference clone" "$(tail -3 "$T_TMP/log")"; exit 0; }

EP=http://127.0.0.1:$PORT
if clone dir/disk.qcow2 "$EP"; then
	t_pass "clone to s3://bkt/dir/disk.qcow2"
	grep -q 'parts\? of' "$T_TMP/log" && grep 'parts\? of' "$T_TMP/log" | sed 's/^/    /'
	check_object "clone" dir/disk.qcow2
else
	t_fail "clone to s3://bkt/dir/disk.qcow2" "exit $?: $(tail -3 "$T_TMP/log")"
fi
[ "$(uploads_left)" = 0 ] && t_pass "no multipart upload left after success" \
	|| t_fail "no multipart upload left after success" "$(s3curl '/bkt?uploads=')"
grep -q -- "$AWS_SECRET_ACCESS_KEY" "$T_TMP/log" && t_fail "secret never printed" "found in the output" \
	|| t_pass "secret never printed"

clone dir/disk.qcow2 "$EP"; rc=$?
[ $rc = 4 ] && grep -q 'already exists' "$T_TMP/log" && t_pass "existing key refused (exit 4)" \
	|| t_fail "existing key refused (exit 4)" "exit $rc: $(tail -2 "$T_TMP/log")"
if clone dir/disk.qcow2 "$EP" --force; then
	t_pass "--force replaces the image"
	check_object "--force" dir/disk.qcow2
else
	t_fail "--force replaces the image" "exit $?: $(tail -3 "$T_TMP/log")"
fi

AWS_SECRET_ACCESS_KEY=not-the-secret clone wrongkey.qcow2 "$EP"; rc=$?
if [ $rc = 4 ] && grep -q 'SignatureDoesNotMatch.*AWS_SECRET_ACCESS_KEY' "$T_TMP/log"; then
	t_pass "wrong secret key fails in prepare (exit 4)"
else
	t_fail "wrong secret key fails in prepare (exit 4)" "exit $rc: $(tail -2 "$T_TMP/log")"
fi
[ "$(object_code wrongkey.qcow2)" = 404 ] && [ "$(uploads_left)" = 0 ] && t_pass "wrong secret key: nothing uploaded" \
	|| t_fail "wrong secret key: nothing uploaded" "object or upload found"

"$COLDCLONE" clone --source "$SRC" --output s3://nosuchbucket/disk.qcow2 --format qcow2 --s3-endpoint "$EP" \
	--progress none > "$T_TMP/log" 2>&1; rc=$?
[ $rc = 4 ] && grep -q "bucket does not exist" "$T_TMP/log" && t_pass "missing bucket fails clearly (exit 4)" \
	|| t_fail "missing bucket fails clearly (exit 4)" "exit $rc: $(tail -2 "$T_TMP/log")"

env -u AWS_ACCESS_KEY_ID "$COLDCLONE" clone --source "$SRC" --output s3://bkt/nocreds.qcow2 --format qcow2 \
	--s3-endpoint "$EP" --progress none > "$T_TMP/log" 2>&1; rc=$?
[ $rc = 4 ] && grep -q "AWS_ACCESS_KEY_ID" "$T_TMP/log" && t_pass "missing credentials fail clearly (exit 4)" \
	|| t_fail "missing credentials fail clearly (exit 4)" "exit $rc: $(tail -2 "$T_TMP/log")"

# proxy COUNT BYTES: a faultproxy to the server; sets PROXY_PORT and PROXY_PID.
proxy() {
	rm -f "$T_TMP/proxy.port"
	python3 "$ROOT/tests/tools/faultproxy.py" --target "$PORT" --port-file "$T_TMP/proxy.port" \
		--cuts "$1" --cut-after "$2" --lifetime 300 --log "$T_TMP/proxy.log" > /dev/null 2>&1 &
	PROXY_PID=$!
	cleanup "kill $PROXY_PID 2> /dev/null"
	local i
	for ((i = 0; i < 50; i++)); do
		[ -s "$T_TMP/proxy.port" ] && { PROXY_PORT=$(cat "$T_TMP/proxy.port"); return 0; }
		sleep 0.1
	done
	return 1
}

# The first two connections drop 5 MiB into the upload (inside part 1): both are resumed.
if proxy 2 $((5 << 20)); then
	if clone dropped.qcow2 "http://127.0.0.1:$PROXY_PORT" --retries 3; then
		n=$(grep -c 'reconnecting' "$T_TMP/log")
		[ "$n" -ge 2 ] && t_pass "dropped connections survived by part retry ($n retries)" \
			|| t_fail "dropped connections survived by part retry" "expected 2 retries, log: $(cat "$T_TMP/log")"
		check_object "after drops" dropped.qcow2
	else
		t_fail "dropped connections survived by part retry" "exit $?: $(tail -4 "$T_TMP/log")"
	fi
	kill "$PROXY_PID" 2> /dev/null
else
	t_fail "start the cut proxy" "$(cat "$T_TMP/proxy.log")"
fi

# Every connection drops 2 MiB in, and one retry is allowed: the clone fails for good, and
# cleans up (the small abort request gets through).
if proxy -1 $((2 << 20)); then
	clone fatal.qcow2 "http://127.0.0.1:$PROXY_PORT" --retries 1; rc=$?
	[ $rc = 4 ] && grep -q 'gave up' "$T_TMP/log" && t_pass "fatal network failure: exit 4" \
		|| t_fail "fatal network failure: exit 4" "exit $rc: $(tail -3 "$T_TMP/log")"
	[ "$(uploads_left)" = 0 ] && t_pass "fatal network failure: multipart upload aborted" \
		|| t_fail "fatal network failure: multipart upload aborted" "$(s3curl '/bkt?uploads=')"
	[ "$(object_code fatal.qcow2)" = 404 ] && [ "$(object_code fatal.qcow2.manifest.json)" = 404 ] \
		&& t_pass "fatal network failure: no object, no manifest" \
		|| t_fail "fatal network failure: no object, no manifest" "something was left under fatal.qcow2"
	kill "$PROXY_PID" 2> /dev/null
else
	t_fail "start the cut proxy" "$(cat "$T_TMP/proxy.log")"
fi
