#!/usr/bin/env bash
# build-curl.sh OUTDIR - build a small static libcurl from Debian's own source package
# (with Debian's security patches) for the static cloner.
#
# Why not Debian's libcurl.a: it is built with every feature (LDAP, RTMP, GSSAPI via MIT
# Kerberos, IDN, PSL, brotli...), and MIT Kerberos, p11-kit and libsasl2's SQL plugins have
# no usable static archives, so a static link cannot be closed (../shared/FIELD-NOTES.md).
# Here libcurl is configured with only what the destinations use: HTTP(S) with HTTP/2,
# SFTP through libssh2, OpenSSL, zlib. Every dependency has a static archive in Debian.
# Needs deb-src in apt's sources (`make deps` adds it). About 40 s on 2 cores.
set -euo pipefail
out=$(realpath -m "$1")
mkdir -p "$(dirname "$out")"
# Several builds (BUILD=...) share one CURL_DIR: build it once, under a lock.
exec 9> "$out.lock"
flock 9
if [ -f "$out/lib/libcurl.a" ] && [ "$out/lib/libcurl.a" -nt "$0" ]; then
	exit 0
fi
rm -rf "$out"
work="$out.work"
rm -rf "$work" && mkdir -p "$work"
cd "$work"
apt-get source --download-only -qq curl >/dev/null 2>&1 || {
	echo "build-curl: 'apt-get source curl' failed: run 'make deps' (it enables Debian's deb-src archive)" >&2
	exit 1
}
# apt checked the files against the signed archive index; dpkg-source applies the patches.
dpkg-source -x curl_*.dsc src > dpkg-source.log 2>&1 || { cat dpkg-source.log >&2; exit 1; }
cd src
./configure --prefix="$out" --disable-shared --enable-static \
	--with-openssl --with-libssh2 --with-nghttp2 --with-zlib \
	--without-libpsl --without-libidn2 --without-brotli --without-zstd --without-librtmp \
	--without-gssapi --disable-ldap --disable-ldaps --disable-rtsp --disable-dict \
	--disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smtp \
	--disable-gopher --disable-mqtt --disable-smb --disable-manual --disable-docs \
	--without-ca-bundle --without-ca-path > ../configure.log 2>&1 || {
	tail -30 ../configure.log >&2; exit 1; }
make -C lib -j"$(nproc)" > ../make.log 2>&1 || { tail -30 ../make.log >&2; exit 1; }
mkdir -p "$out/lib" "$out/include/curl"
cp lib/.libs/libcurl.a "$out/lib/"
cp include/curl/*.h "$out/include/curl/"
cd / && rm -rf "$work"
echo "  CURL    $out/lib/libcurl.a ($(cd "$out" && ls include/curl | wc -l) headers)"
