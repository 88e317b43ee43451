#!/bin/sh
# make-elf-fixtures.sh: regenerate testdata/elf from testdata/elf/src (developer-run; tests use
# the committed files). Needs Debian's cross compilers and tools:
#   apt-get install gcc-12-aarch64-linux-gnu gcc-12-s390x-linux-gnu gcc-12-powerpc-linux-gnu \
#     gcc-12-i686-linux-gnu xz-utils zstd gzip openssl
# and the kernel's sign-file (sh scripts/fetch-kernel.sh 6.1.0-54 headers).
# Everything but the signature is reproducible: the same compilers give the same bytes.
set -eu
cd "$(dirname "$0")/../testdata/elf"
export LC_ALL=C
src=src/fixture.c

cache=${KABIGUARD_TEST_CACHE:-/var/cache/kabiguard-test}
signfile=$cache/kernels/6.1.0-54/headers/usr/lib/linux-kbuild-6.1/scripts/sign-file
for tool in x86_64-linux-gnu-gcc-12 aarch64-linux-gnu-gcc-12 i686-linux-gnu-gcc-12 \
	s390x-linux-gnu-gcc-12 powerpc-linux-gnu-gcc-12 gzip xz zstd openssl; do
	command -v "$tool" >/dev/null || { echo "make-elf-fixtures: $tool missing" >&2; exit 1; }
done
[ -x "$signfile" ] || { echo "make-elf-fixtures: $signfile missing: sh scripts/fetch-kernel.sh 6.1.0-54 headers" >&2; exit 1; }

# -fno-pic as Kbuild (-fno-PIE): Debian gcc would otherwise reference _GLOBAL_OFFSET_TABLE_.
build() { # build OUT CC THIS_MODULE_SIZE VERMAGIC [CFLAGS...]
	out=$1 cc=$2 size=$3 vermagic=$4; shift 4
	"$cc" -c -O1 -fno-common -fno-asynchronous-unwind-tables -fno-ident -fno-pic \
		-DTHIS_MODULE_SIZE="$size" -DVERMAGIC="\"$vermagic\"" "$@" -o "$out" "$src"
}
x86='6.1.0-54-amd64 SMP preempt mod_unload modversions '
build x86_64.ko x86_64-linux-gnu-gcc-12 1344 "$x86"
build aarch64.ko aarch64-linux-gnu-gcc-12 1280 '6.1.0-54-arm64 SMP mod_unload modversions aarch64'
build i686.ko i686-linux-gnu-gcc-12 640 '6.1.0-54-686-pae SMP preempt mod_unload modversions 686 '
build s390x.ko s390x-linux-gnu-gcc-12 1216 '6.1.0-54-s390x SMP mod_unload modversions '
build powerpc.ko powerpc-linux-gnu-gcc-12 704 '6.1.0-54-powerpc SMP mod_unload modversions '
build x86_64-ext.ko x86_64-linux-gnu-gcc-12 1344 "$x86" -DEXT_VERSIONS
build s390x-ext.ko s390x-linux-gnu-gcc-12 1216 '6.1.0-54-s390x SMP mod_unload modversions ' -DEXT_VERSIONS
build x86_64-noversions.ko x86_64-linux-gnu-gcc-12 1344 '6.1.0-54-amd64 SMP preempt mod_unload ' -DNO_VERSIONS
build x86_64-abscrc.ko x86_64-linux-gnu-gcc-12 1344 "$x86" -DABS_CRCS
build powerpc-abscrc.ko powerpc-linux-gnu-gcc-12 704 '6.1.0-54-powerpc SMP mod_unload modversions ' -DABS_CRCS

# Compressed as kmod and the kernel accept them (xz with CRC32, as Kbuild does).
gzip -9 -n -c x86_64.ko >x86_64.ko.gz
xz --check=crc32 --lzma2=dict=1MiB -c x86_64.ko >x86_64.ko.xz
zstd -q -19 -c x86_64.ko >x86_64.ko.zst

# Signed with the kernel's own sign-file and a throwaway key; modules_install signs before it
# compresses, so the compressed signed module carries the trailer inside the zstd payload.
key=$(mktemp -d)
trap 'rm -rf "$key"' EXIT
openssl req -new -nodes -utf8 -sha256 -days 1 -batch -x509 -subj /CN=kabiguard-fixture \
	-outform PEM -out "$key/cert.pem" -keyout "$key/key.pem" 2>/dev/null
cp x86_64.ko x86_64-signed.ko
"$signfile" sha256 "$key/key.pem" "$key/cert.pem" x86_64-signed.ko
zstd -q -19 -f -c x86_64-signed.ko >x86_64-signed.ko.zst

# Bad inputs.
: >bad-empty.ko
echo "this is not a kernel module" >bad-text.ko
head -c 64 x86_64.ko >bad-header-only.ko
# The section header table is the last thing gcc writes: cut it in the middle of an entry.
size=$(stat -c %s x86_64.ko)
head -c $((size - 40)) x86_64.ko >bad-cut-section-table.ko
# e_shoff (offset 0x28, 8 bytes LE) pointed far past the end of the file.
cp x86_64.ko bad-shoff.ko
printf '\377\377\377\000\000\000\000\000' | dd of=bad-shoff.ko bs=1 seek=40 conv=notrunc 2>/dev/null
printf 'int main(void) { return 0; }\n' | x86_64-linux-gnu-gcc-12 -x c -s -o bad-executable.ko -
head -c 100 x86_64.ko.xz >bad-truncated.ko.xz
ls -l
