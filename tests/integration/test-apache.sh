#!/usr/bin/env bash
# A second WebDAV server with the other login scheme: Apache httpd's mod_dav_fs behind
# Digest authentication (nginx has no Digest). The clone lands under .partial, is MOVEd,
# read back with --verify, and checked with sha256sum and qemu-img; a wrong password is
# refused in prepare with exit 4 and never printed.
source "$(dirname "$0")/../lib.sh"
requires qemu-img jq sha256sum md5sum
APACHE=/usr/sbin/apache2
MODS=/usr/lib/apache2/modules
[ -x "$APACHE" ] && [ -f "$MODS/mod_dav_fs.so" ] && [ -f "$MODS/mod_auth_digest.so" ] ||
	{ t_skip all "needs Apache httpd with mod_dav_fs and mod_auth_digest (apache2)"; exit 0; }
need_fixtures || { t_fail fixtures "could not build the fixture disks"; exit 0; }

PORT=$(free_port)
PASSWORD='Dig3st-Pa55'
chmod 755 "$T_TMP"
mkdir -p "$T_TMP/www/dav" "$T_TMP/lock" "$T_TMP/run"
printf 'tech:coldclone:%s\n' "$(printf 'tech:coldclone:%s' "$PASSWORD" | md5sum | cut -d' ' -f1)" > "$T_TMP/digest.pw"
chown -R www-data "$T_TMP/www" "$T_TMP/lock"
cat > "$T_TMP/httpd.conf" <<EOC
ServerRoot $T_TMP
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
PidFile $T_TMP/httpd.pid
DefaultRuntimeDir $T_TMP/run
ErrorLog $T_TMP/error.log
LoadModule mpm_event_module $MODS/mod_mpm_event.so
LoadModule authn_core_module $MODS/mod_authn_core.so
LoadModule authn_file_module $MODS/mod_authn_file.so
LoadModule authz_core_module $MODS/mod_authz_core.so
LoadModule authz_user_module $MODS/mod_authz_user.so
LoadModule auth_digest_module $MODS/mod_auth_digest.so
LoadModule dav_module $MODS/mod_dav.so
LoadModule dav_fs_module $MODS/mod_dav_fs.so
User www-data
Group www-data
DocumentRoot $T_TMP/www
DAVLockDB $T_TMP/lock/davlock
<Directory $T_TMP/www/dav>
	Dav On
	AuthType Digest
	AuthName coldclone
	AuthUserFile $T_TMP/digest.pw
	Require valid-user
</Directory>
EOC
"$APACHE" -f "$T_TMP/httpd.conf" -k start 2> "$T_TMP/start.err" || { t_fail apache "did not start: $(cat "$T_TMP/start.err")"; exit 0; }
cleanup "'$APACHE' -f '$T_TMP/httpd.conf' -k stop > /dev/null 2>&1; sleep 0.5"
for _ in $(seq 50); do [ -s "$T_TMP/httpd.pid" ] && break; sleep 0.1; done

SRC=$FIXTURES/mbr-legacy.img
IMG=$T_TMP/www/dav/srv/legacy.vhdx
COLDCLONE_PASSWORD=$PASSWORD "$COLDCLONE" clone --source "$SRC" --output "http://tech@127.0.0.1:$PORT/dav/srv/legacy.vhdx" \
	--progress none --verify --retries 2 > "$T_TMP/out" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q 'verified:' "$T_TMP/out" && grep -q 'WebDAV server' "$T_TMP/out" \
	&& t_pass "Digest login, WebDAV upload and --verify (exit 0)" || t_fail "digest clone" "exit $rc: $(tail -4 "$T_TMP/out")"
if [ -f "$IMG" ] && [ -f "$IMG.manifest.json" ]; then
	[ "$(sha256sum < "$IMG" | cut -d' ' -f1)" = "$(jq -r .image.sha256 "$IMG.manifest.json")" ] \
		&& t_pass "sha256sum of the stored image matches the manifest" || t_fail "sha256" "differs"
	[ "$(qemu_digest vhdx "$IMG")" = "$(jq -r .content.digest "$IMG.manifest.json")" ] \
		&& t_pass "qemu-img reads the source's content" || t_fail "content" "digest differs"
	! ls "$T_TMP/www/dav/srv" | grep -q partial && t_pass "no .partial left" || t_fail "leftovers" "$(ls "$T_TMP/www/dav/srv")"
else
	t_fail "stored" "no image or manifest: $(ls -R "$T_TMP/www/dav" 2>&1 | head)"
fi

COLDCLONE_PASSWORD=wrong-one "$COLDCLONE" clone --source "$SRC" --output "http://tech@127.0.0.1:$PORT/dav/bad/legacy.vhdx" \
	--progress none --retries 1 > "$T_TMP/out" 2>&1; rc=$?
[ $rc -eq 4 ] && grep -q 'credentials' "$T_TMP/out" && [ ! -e "$T_TMP/www/dav/bad" ] \
	&& t_pass "wrong Digest password: exit 4 in prepare, nothing created" || t_fail "wrong password" "exit $rc: $(tail -3 "$T_TMP/out")"
! grep -q "$PASSWORD\|wrong-one" "$T_TMP/out" && t_pass "passwords never printed" || t_fail "password leak" "found in output"
