#!/usr/bin/env bash
# The collector (`coldclone collect`) and the reporter (report.c): two fake machines POST
# events with curl, a third reports through the real reporter and progress.c's sink
# (tests/unit/test-report.c as a driver); garbage, oversized, chunked and slow requests get
# 400/411/413/431/408 and the collector goes on; --once N exits after N results. Then a
# reporter that starts while its collector is down delivers once the collector is up.
source "$(dirname "$0")/../lib.sh"
requires curl python3
DRIVER=${DRIVER:-$BUILD/asan/tests/test-report}
[ -x "$DRIVER" ] || { t_skip "all" "no $DRIVER: run make asan"; exit 0; }

port=$(free_port)
url="http://127.0.0.1:$port/"
"$COLDCLONE" collect --listen "127.0.0.1:$port" --once 3 > "$T_TMP/col.out" 2> "$T_TMP/col.err" &
col=$!
cleanup "kill $col 2>/dev/null"
wait_for_line "$T_TMP/col.err" "collecting on 127.0.0.1:$port" 10 || { t_fail "collector starts" "$(cat "$T_TMP/col.err")"; exit 0; }
t_pass "collector starts"

# post JSON: print the HTTP status
post() { curl -s -o "$T_TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$1" "$url"; }
# raw PORT SECONDS: send stdin as-is on one connection, print the reply's status code
RAW_PY='
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
try:
    s.sendall(sys.stdin.buffer.read())
    print(s.recv(4096).split(b"\r\n")[0].split(b" ")[1].decode())
except Exception as e:
    print("no-reply:%s" % e)
'
raw() { python3 -c "$RAW_PY" "$1" "$2"; }
expect_status() { [ "$2" = "$3" ] && t_pass "$1 ($3)" || t_fail "$1" "status $2, want $3: $(cat "$T_TMP/body" 2>/dev/null)"; }

# A slow client holds a half request; everyone else must be served meanwhile.
printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"event":' | raw "$port" 20 > "$T_TMP/slow" &
slow=$!

expect_status "machine A stage" "$(post '{"event":"stage","machine":"srv-a","seq":1,"stage":"prepare","source":"/dev/sda","detail":"reading partition table"}')" 200
expect_status "machine A progress" "$(post '{"event":"progress","machine":"srv-a","seq":2,"stage":"copy","source":"/dev/sda","percent":42.5,"mb_per_s":101.5,"eta_seconds":75,"final":false}')" 200
expect_status "machine A resend" "$(post '{"event":"progress","machine":"srv-a","seq":2,"stage":"copy","source":"/dev/sda","percent":42.5,"mb_per_s":101.5,"eta_seconds":75,"final":false}')" 200
expect_status "machine B stage" "$(post '{"event":"stage","machine":"srv-b","seq":1,"stage":"copy","source":"/dev/nvme0n1","detail":"to https://x/"}')" 200
expect_status "garbage body" "$(post 'this is not json{')" 400
expect_status "JSON array body" "$(post '[1,2,3]')" 400
expect_status "no machine" "$(post '{"event":"stage"}')" 400
expect_status "trailing garbage" "$(post '{"event":"stage","machine":"x"} junk')" 400
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' 'a' > "$T_TMP/big"
expect_status "2 MiB body" "$(curl -s -o "$T_TMP/body" -w '%{http_code}' --data-binary @"$T_TMP/big" "$url")" 413
expect_status "chunked body" "$(curl -s -o "$T_TMP/body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary '{}' "$url")" 411
expect_status "PUT" "$(curl -s -o "$T_TMP/body" -w '%{http_code}' -X PUT --data-binary '{}' "$url")" 405
expect_status "garbage request line" "$(printf 'HELLO\r\n\r\n' | raw "$port" 5)" 400
expect_status "binary garbage" "$( { head -c 3000 /dev/urandom; printf '\r\n\r\n'; } | raw "$port" 5)" 400
expect_status "20 KiB header" "$( { printf 'POST / HTTP/1.1\r\nX-Big: '; head -c 20000 /dev/zero | tr '\0' a; printf '\r\n\r\n'; } | raw "$port" 5)" 431
expect_status "Content-Length lies high" "$(printf 'POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n' | raw "$port" 5)" 413
expect_status "GET shows the table" "$(curl -s -o "$T_TMP/body" -w '%{http_code}' "$url")" 200
grep -q '^srv-a  *copy  *42.5%  *101.5  *0:01:15  *-$' "$T_TMP/body" && t_pass "table over GET" || t_fail "table over GET" "$(cat "$T_TMP/body")"

# The real reporter, through progress.c's sink, thinned to one progress event per 5 s + final.
if "$DRIVER" "$url" srv-driver 20 ok > "$T_TMP/driver.out" 2>&1; then
	t_pass "reporter delivers everything (report_close 0)"
else
	t_fail "reporter delivers everything" "exit $?: $(cat "$T_TMP/driver.out")"
fi

wait $slow
expect_status "slow client times out" "$(cat "$T_TMP/slow")" 408
kill -0 $col 2>/dev/null && t_pass "collector alive after bad clients" || t_fail "collector alive after bad clients" "$(tail "$T_TMP/col.err")"

expect_status "machine A result" "$(post '{"event":"result","machine":"srv-a","seq":3,"ok":true,"rc":0}')" 200
expect_status "machine B result" "$(post '{"event":"result","machine":"srv-b","seq":2,"ok":false,"rc":4,"reason":"destination full"}')" 200
for i in $(seq 50); do kill -0 $col 2>/dev/null || break; sleep 0.1; done
wait $col
rc=$?
[ $rc -eq 0 ] && t_pass "--once 3 exits 0 after three results" || t_fail "--once 3" "exit $rc: $(tail -5 "$T_TMP/col.err")"

out="$T_TMP/col.out"
check_line() { grep -qE -- "$2" "$out" && t_pass "$1" || t_fail "$1" "no line matching '$2' in: $(cat "$out")"; }
check_line "event line: stage" '^[0-9:]{8} srv-a stage prepare: reading partition table$'
check_line "event line: progress" '^[0-9:]{8} srv-a progress /dev/sda 42.5% 101.5 MB/s ETA 0:01:15$'
check_line "event line: failure" '^[0-9:]{8} srv-b result FAIL rc=4: destination full$'
check_line "reporter: stage via sink" '^[0-9:]{8} srv-driver stage prepare: reading partition table$'
check_line "reporter: progress via sink" '^[0-9:]{8} srv-driver progress /dev/fake 100.0% '
check_line "reporter: result" '^[0-9:]{8} srv-driver result ok$'
check_line "final table: header" '^coldclone collect on 127.0.0.1:[0-9]+ .* 3 machines, 3 finished \(2 ok, 1 failed\)$'
check_line "final table: srv-a" '^srv-a +done +42.5% +101.5 +- +ok$'
check_line "final table: srv-b" '^srv-b +done +- +- +- +FAIL rc=4: destination full$'
check_line "final table: driver" '^srv-driver +done +100.0% '
n=$(grep -c ' srv-a progress ' "$out")
[ "$n" -eq 1 ] && t_pass "resent event (same seq) shown once" || t_fail "resent event shown once" "$n progress lines"
n=$(grep -c ' srv-driver progress ' "$out")
[ "$n" -eq 2 ] && t_pass "progress thinned: first and final" || t_fail "progress thinned" "$n lines: $(grep srv-driver "$out")"
grep -q "413 Content Too Large" "$T_TMP/col.err" && grep -q "408 Request Timeout" "$T_TMP/col.err" \
	&& t_pass "rejections logged on stderr" || t_fail "rejections logged" "$(cat "$T_TMP/col.err")"

# Collector down when the machine starts: the reporter queues (dropping old progress, never
# the start or the result), retries, and delivers when the collector comes up.
port2=$(free_port)
start=$(date +%s)
"$DRIVER" "http://127.0.0.1:$port2/" srv-late 40 ok burst 2000 > "$T_TMP/late.out" 2>&1 &
drv=$!
cleanup "kill $drv 2>/dev/null"
sleep 2
"$COLDCLONE" collect --listen "127.0.0.1:$port2" --once 1 > "$T_TMP/col2.out" 2> "$T_TMP/col2.err" &
col2=$!
cleanup "kill $col2 2>/dev/null"
wait $drv
rc=$?
[ $rc -eq 0 ] && t_pass "late collector: reporter delivers (report_close 0)" || t_fail "late collector: reporter delivers" "exit $rc: $(cat "$T_TMP/late.out")"
grep -q "srv-late.*the clone goes on" "$T_TMP/late.out" || grep -q "the clone goes on" "$T_TMP/late.out" \
	&& t_pass "late collector: one warning while away" || t_fail "late collector: warning" "$(cat "$T_TMP/late.out")"
for i in $(seq 100); do kill -0 $col2 2>/dev/null || break; sleep 0.1; done
wait $col2
rc=$?
[ $rc -eq 0 ] && t_pass "late collector: --once 1 exits 0" || t_fail "late collector: --once 1" "exit $rc"
grep -qE '^[0-9:]{8} srv-late start$' "$T_TMP/col2.out" && grep -qE '^[0-9:]{8} srv-late result ok$' "$T_TMP/col2.out" \
	&& t_pass "late collector: start and result kept" || t_fail "late collector: start and result kept" "$(grep -v progress "$T_TMP/col2.out")"
n=$(grep -c ' srv-late progress ' "$T_TMP/col2.out")
[ "$n" -le 260 ] && t_pass "late collector: queue bounded ($n progress events of 2000+)" || t_fail "late collector: queue bounded" "$n progress events"
[ $(( $(date +%s) - start )) -le 20 ] && t_pass "late collector: done within 20 s" || t_fail "late collector: time" "$(( $(date +%s) - start )) s"
