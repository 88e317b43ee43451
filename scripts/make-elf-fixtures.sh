#!/bin/sh
# make-elf-fixtures.sh: regenerate testdata/elf from testdata/elf/src (developer-run; tests use
# the committed files). Needs Debian's cross compilers:
#   apt-get install gcc-12-aarch64-linux-gnu gcc-12-s390x-linux-gnu gcc-12-powerpc-linux-gnu \
#     gcc-12-i686-linux-gnu xz-utils zstd gzip openssl
# and the kernel's sign-file (scripts/fetch-kernel.sh 6.1.0-54 headers).
set -eu
cd "$(dirname "$0")/../testdata/elf"
src=src/fixture.c
build() { # build OUT CC THIS_MODULE_SIZE [CFLAGS...]
	out=$1 cc=$2 size=$3; shift 3
	"$cc" -c -O1 -fno-common -fno-asynchronous-unwind-tables -DTHIS_MODULE_SIZE="$size" "$@" -o "$out" "$src"
}
build x86_64.ko x86_64-linux-gnu-gcc-12 1344
build aarch64.ko aarch64-linux-gnu-gcc-12 1280
build i686.ko i686-linux-gnu-gcc-12 640
build s390x.ko s390x-linux-gnu-gcc-12 1216
build powerpc.ko powerpc-linux-gnu-gcc-12 704
build x86_64-ext.ko x86_64-linux-gnu-gcc-12 1344 -DEXT_VERSIONS
build s390x-ext.ko s390x-linux-gnu-gcc-12 1216 -DEXT_VERSIONS
build x86_64-noversions.ko x86_64-linux-gnu-gcc-12 1344 -DNO_VERSIONS

# Compressed as kmod and the kernel accept them (xz with CRC32).
gzip -9 -n -c x86_64.ko >x86_64.ko.gz
xz --check=crc32 -c x86_64.ko >x86_64.ko.xz
zstd -q -19 -c x86_64.ko >x86_64.ko.zst

# Signed with the kernel's own sign-file and a throwaway key.
cache=${KABIGUARD_TEST_CACHE:-/var/cache/kabiguard-test}
signfile=$(ls "$cache"/kernels/6.1.0-54/headers/usr/lib/linux-kbuild-6.1/scripts/sign-file)
key=$(mktemp -d)
openssl req -new -nodes -utf8 -sha256 -days 1 -batch -x509 -subj /CN=kabiguard-fixture \
	-outform PEM -out "$key/cert.pem" -keyout "$key/key.pem" 2>/dev/null
cp x86_64.ko x86_64-signed.ko
"$signfile" sha256 "$key/key.pem" "$key/cert.pem" x86_64-signed.ko
rm -rf "$key"

# Bad inputs.
: >bad-empty.ko
echo "this is not a kernel module" >bad-text.ko
head -c 64 x86_64.ko >bad-header-only.ko
size=$(stat -c %s x86_64.ko)
head -c $((size - 40)) x86_64.ko >bad-cut-section-table.ko
# e_shoff (offset 0x28, 8 bytes LE) pointed far past the end of the file.
cp x86_64.ko bad-shoff.ko
printf '\377\377\377\000\000\000\000\000' | dd of=bad-shoff.ko bs=1 seek=40 conv=notrunc 2>/dev/null
printf 'int main(void) { return 0; }\n' | x86_64-linux-gnu-gcc-12 -x c -o bad-executable.ko -
head -c 100 x86_64.ko.xz >bad-truncated.ko.xz
ls -l
