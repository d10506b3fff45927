#!/usr/bin/env bash
# test-vmdesc.sh - the VM descriptors checked by tools we did not write: every XML is
# well-formed (xmllint), the libvirt domains pass libvirt's own schema (virt-xml-validate),
# and in each OVF every disk points at a File of References, every disk item at a Disk,
# every Parent at an Item, and capacities and sizes are whole numbers. The descriptors
# come from the unit test (tests/unit/test-vmdesc.c), which writes them when given a dir.
source "$(dirname "$0")/../lib.sh"
requires xmllint

PROG=$BUILD/asan/tests/test-vmdesc
[ -x "$PROG" ] || { t_skip all "no $PROG: run make asan"; exit 0; }
OUT=$T_TMP/out
mkdir -p "$OUT"
check render "$PROG" "$OUT"

# xp FILE XPATH: evaluate with namespaces ignored (local-name()), print the result.
xp() { xmllint --xpath "$2" "$1" 2> /dev/null; }
n() { printf "*[local-name()='%s']" "$1"; }
a() { printf "@*[local-name()='%s']" "$1"; }

# ovf_refs FILE: the reference checks; prints what is wrong, returns non-zero if anything.
ovf_refs() {
	local f=$1 bad=0 v
	v=$(xp "$f" "count(//$(n Disk))")
	[ "${v:-0}" -gt 0 ] || { echo "no Disk"; bad=1; }
	v=$(xp "$f" "count(//$(n Disk)[not($(a fileRef) = //$(n File)/$(a id))])")
	[ "$v" = 0 ] || { echo "$v Disk fileRef without a File"; bad=1; }
	v=$(xp "$f" "count(//$(n Disk)[not(string(number($(a capacity))) != 'NaN' and number($(a capacity)) = floor(number($(a capacity))) and number($(a capacity)) > 0)])")
	[ "$v" = 0 ] || { echo "$v Disk capacity not a positive whole number"; bad=1; }
	v=$(xp "$f" "count(//$(n File)[$(a size)][string(number($(a size))) = 'NaN' or contains($(a size), '.')])")
	[ "$v" = 0 ] || { echo "$v File size not a number"; bad=1; }
	v=$(xp "$f" "count(//$(n HostResource)[not(substring-after(., 'ovf:/disk/') = //$(n Disk)/$(a diskId))])")
	[ "$v" = 0 ] || { echo "$v HostResource without a Disk"; bad=1; }
	v=$(xp "$f" "count(//$(n Item)/$(n Parent)[not(. = //$(n Item)/$(n InstanceID))])")
	[ "$v" = 0 ] || { echo "$v Parent without an Item"; bad=1; }
	v=$(xp "$f" "count(//$(n Item)/$(n InstanceID)[. = preceding::$(n InstanceID)])")
	[ "$v" = 0 ] || { echo "$v duplicate InstanceID"; bad=1; }
	return $bad
}

shopt -s nullglob
files=("$OUT"/*.ovf "$OUT"/*.xml)
[ ${#files[@]} -ge 6 ] || t_fail rendered "expected at least 6 XML descriptors, got ${#files[@]}"
for f in "${files[@]}"; do
	check "well-formed $(basename "$f")" xmllint --noout "$f"
done
for f in "$OUT"/*.ovf; do
	check "references $(basename "$f")" ovf_refs "$f"
done
if command -v virt-xml-validate > /dev/null; then
	for f in "$OUT"/*.xml; do
		check "libvirt schema $(basename "$f")" virt-xml-validate "$f" domain
	done
else
	t_skip "libvirt schema" "needs virt-xml-validate (libvirt-clients)"
fi

# Broken on purpose: the checks must catch a dangling fileRef and a non-numeric capacity.
f=$(ls "$OUT"/*.ovf | head -1)
sed 's/ovf:fileRef="file1"/ovf:fileRef="file9"/; s/ovf:capacity="[0-9]*"/ovf:capacity="12GB"/' "$f" > "$T_TMP/broken.ovf"
if out=$(ovf_refs "$T_TMP/broken.ovf") || ! grep -q fileRef <<< "$out" || ! grep -q capacity <<< "$out"; then
	t_fail "checks catch a broken ovf" "got: $out"
else
	t_pass "checks catch a broken ovf"
fi
