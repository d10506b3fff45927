#!/usr/bin/env bash
# Unattended job files: every broken file in tests/fixtures/configs/bad-*.conf is rejected
# (exit 2) with exactly the errors its "# expect: LINE: text" lines list, all of them, each
# as FILE:LINE; the good files resolve to the right section for a given serial or MAC.
source "$(dirname "$0")/../lib.sh"
CFG="$ROOT/tests/fixtures/configs"
cc() { "$COLDCLONE" "$@"; }
cd "$CFG" || exit 1

for f in bad-*.conf; do
	cc config check "$f" > "$T_TMP/out" 2> "$T_TMP/err"
	rc=$?
	name="rejects $f"
	if [ $rc -ne 2 ]; then
		t_fail "$name" "exit $rc, want 2: $(head -3 "$T_TMP/err")"
		continue
	fi
	want=$(grep -c '^# expect: ' "$f")
	got=$(grep -c '^  [0-9]*\. ' "$T_TMP/err")
	missing=""
	while IFS= read -r exp; do
		line=${exp%%: *}
		text=${exp#*: }
		grep -qF -- "$f:$line: $text" "$T_TMP/err" || missing="$missing [$line: $text]"
	done < <(sed -n 's/^# expect: //p' "$f")
	if [ -n "$missing" ]; then
		t_fail "$name" "missing$missing; got: $(cat "$T_TMP/err")"
	elif [ "$got" -ne "$want" ]; then
		t_fail "$name" "$got errors, want $want: $(cat "$T_TMP/err")"
	elif [ -s "$T_TMP/out" ]; then
		t_fail "$name" "printed a job for an invalid file: $(head -3 "$T_TMP/out")"
	else
		t_pass "$name ($want error$([ "$want" = 1 ] || echo s))"
	fi
done

# resolve NAME FILE WANT_REGEX... -- ARGS: `config check FILE ARGS` exits 0 and prints each WANT line.
resolve() {
	local name=$1 file=$2 args=() wants=() w
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do wants+=("$1"); shift; done
	shift
	args=("$@")
	if ! cc config check "$file" "${args[@]}" > "$T_TMP/out" 2> "$T_TMP/err"; then
		t_fail "$name" "exit $?: $(cat "$T_TMP/err")"
		return
	fi
	for w in "${wants[@]}"; do
		grep -qE -- "$w" "$T_TMP/out" || { t_fail "$name" "no line matching '$w' in: $(cat "$T_TMP/out")"; return; }
	done
	t_pass "$name"
}

resolve "fleet: sections listed" good-fleet.conf '^good-fleet.conf: valid, 2 machine sections$' \
	'^\[machine SRV-DB-01\] +\(line 12, 3 keys\)$' '^\[mac 52:54:00:12:34:56\] +\(line 17, 3 keys\)$' --
resolve "fleet: serial picks [machine]" good-fleet.conf '^\[machine SRV-DB-01\]' \
	'^output += https://files.example/p2v/SRV-DB-01/ +\(line 3\)$' '^format += qcow2 +\(line 13\)$' \
	'^disks += sda serial:S3Z9NB0K' '^after += stay +\(line 15\)$' "^password-file += $CFG/p2v-password.txt" \
	-- --serial SRV-DB-01 --mac 52:54:00:12:34:56
resolve "fleet: serial match is case-insensitive" good-fleet.conf '^\[machine SRV-DB-01\]' '^name += srv-db-01' -- --serial srv-db-01
resolve "fleet: MAC picks [mac]" good-fleet.conf '^\[mac 52:54:00:12:34:56\]' '^name += web02 +\(line 18\)$' \
	'^output += /media/target/web02 #2 ' '^after += reboot' '^format += vmdk-stream +\(line 4\)$' \
	-- --serial OTHER --mac 00:11:22:33:44:55 --mac 52-54-00-12-34-56
resolve "fleet: unknown machine gets [defaults]" good-fleet.conf '^\[defaults\]' \
	'^output += https://files.example/p2v/X_Y_1/' '^name += X_Y_1 ' -- --serial 'X Y/1' --mac aa:bb:cc:dd:ee:ff
resolve "single: keys without a section" good-single.conf '^\[defaults\]$' '^output += /media/target/images +\(line 2\)$' \
	'^format += vhdx' '^verify += yes' -- --serial ANY

cc config check good-fleet.conf --mac aa:bb:cc:dd:ee:ff > "$T_TMP/out" 2> "$T_TMP/err"
rc=$?
[ $rc -eq 2 ] && grep -q "name uses {serial} but this machine has no DMI serial" "$T_TMP/err" \
	&& t_pass "no serial for {serial}: refused (exit 2)" || t_fail "no serial for {serial}" "exit $rc: $(cat "$T_TMP/err")"
cc config check good-fleet.conf --mac 52:54:00:12:34 > /dev/null 2> "$T_TMP/err"
[ $? -eq 2 ] && t_pass "bad --mac (exit 2)" || t_fail "bad --mac" "$(cat "$T_TMP/err")"
cc config check "$T_TMP/none.conf" > /dev/null 2> "$T_TMP/err"
[ $? -eq 2 ] && grep -qF "$T_TMP/none.conf: cannot open: No such file or directory" "$T_TMP/err" \
	&& t_pass "missing file (exit 2)" || t_fail "missing file" "$(cat "$T_TMP/err")"
cc help config | grep -q '\[machine SERIAL\]' && t_pass "help config shows the format" || t_fail "help config" "no format"
