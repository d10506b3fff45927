#!/usr/bin/env bash
# A clone stopped midway (Ctrl-C, SIGTERM, SIGKILL) leaves no manifest and nothing
# under the final name; Ctrl-C and SIGTERM also remove the partial file and exit 130.
source "$(dirname "$0")/../lib.sh"
requires openssl
disk="$T_TMP/big.img"
# 1 GiB of text-like data (base64 of random bytes), no partition table: read whole, and
# compressible, so deflate at the slowest level works on every grain (incompressible
# grains would be stored, fast).
openssl enc -aes-128-ctr -pass pass:interrupt -nosalt -pbkdf2 < /dev/zero 2>/dev/null | base64 -w 0 |
	head -c 1G > "$disk"

for sig in INT TERM KILL; do
	out="$T_TMP/out-$sig.vmdk"
	"$COLDCLONE" clone --source "$disk" --output "$out" --workers 1 --compress-level 12 --progress none -q \
		2> "$T_TMP/log" &
	pid=$!
	sleep 2
	if ! kill -0 $pid 2>/dev/null; then t_fail "$sig" "clone finished before the signal; test disk too small"; continue; fi
	kill -$sig $pid
	wait $pid; rc=$?
	[ ! -e "$out" ] && [ ! -e "$out.manifest.json" ] && t_pass "SIG$sig: nothing under the final name, no manifest" \
		|| t_fail "SIG$sig: nothing under the final name, no manifest" "$(ls "$T_TMP")"
	case $sig in
	KILL) [ $rc -eq 137 ] && t_pass "SIGKILL: killed" || t_fail "SIGKILL: killed" "rc $rc" ;;
	*) [ $rc -eq 130 ] && t_pass "SIG$sig: exit 130" || t_fail "SIG$sig: exit 130" "rc $rc: $(cat "$T_TMP/log")"
	   [ ! -e "$out.partial" ] && t_pass "SIG$sig: partial file removed" || t_fail "SIG$sig: partial file removed" "left $out.partial" ;;
	esac
	rm -f "$out"*
done
