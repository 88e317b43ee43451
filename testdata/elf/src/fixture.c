/*
 * A synthetic kernel module: the sections and labels modpost and <linux/export-internal.h>
 * put into a .ko, built by a plain `gcc -c` for any target. Not loadable; parsed only.
 * scripts/make-elf-fixtures.sh compiles it per architecture with these switches:
 *   EXT_VERSIONS  add the extended modversions tables (Linux 6.11+)
 *   NO_VERSIONS   no __versions at all (a kernel built without CONFIG_MODVERSIONS)
 * Every value below is what fixtures_test.go expects; modprobe and modinfo are the oracle
 * for __versions and .modinfo.
 */

/* .modinfo: NUL-separated key=value strings, as modpost writes them. */
const char fixture_modinfo[] __attribute__((section(".modinfo"), used, aligned(1))) =
	"license=GPL\0"
	"description=kabiguard parser fixture\0"
	"import_ns=KABIGUARD_TEST\0"
	"depends=kabiprov,videodev\0"
	"srcversion=0123456789ABCDEF0123456\0"
	"name=fixture\0"
	"vermagic=6.1.0-54-amd64 SMP preempt mod_unload modversions \0";

#ifndef NO_VERSIONS
/* __versions: struct modversion_info { unsigned long crc; char name[64 - sizeof(long)]; } */
struct modversion_info {
	unsigned long crc;
	char name[64 - sizeof(unsigned long)];
};
const struct modversion_info fixture_versions[] __attribute__((section("__versions"), used, aligned(8))) = {
	{ 0xbce1a965, "module_layout" },
	{ 0x92997ed8, "_printk" },
	{ 0x1e1dfe5f, "misc_register" },
	{ 0x037a0cba, "kfree" },
};
#endif

#ifdef EXT_VERSIONS
/* Extended modversions: CRCs and, in the same order, NUL-terminated names. */
const unsigned int fixture_ext_crcs[] __attribute__((section("__version_ext_crcs"), used, aligned(4))) = {
	0xbce1a965, 0x92997ed8, 0xdeadbeef,
};
const char fixture_ext_names[] __attribute__((section("__version_ext_names"), used, aligned(1))) =
	"module_layout\0_printk\0a_rust_symbol_whose_name_is_much_longer_than_fifty_six_bytes_of_a_record\0";
#endif

/* Exports: a GPL-only one in a namespace and a plain one, each with its CRC label. */
const unsigned long __ksymtab_fixture_ns_export[3] __attribute__((section("__ksymtab_gpl"), used));
const unsigned int __crc_fixture_ns_export __attribute__((section("__kcrctab_gpl"), used)) = 0x13572468;
const char __kstrtabns_fixture_ns_export[] __attribute__((section("__ksymtab_strings"), used)) = "KABIGUARD_TEST";
const unsigned long __ksymtab_fixture_export[3] __attribute__((section("__ksymtab"), used));
const unsigned int __crc_fixture_export __attribute__((section("__kcrctab"), used)) = 0xcafef00d;

/* sizeof(struct module) as built: the section's size. */
char fixture_this_module[THIS_MODULE_SIZE] __attribute__((section(".gnu.linkonce.this_module"), used));

/* Undefined references: strong and weak. */
extern int _printk(const char *fmt, ...);
extern int misc_register(void *dev);
extern void kfree(const void *p);
extern void optional_hook(void) __attribute__((weak));

int fixture_export(void) { return _printk("fixture\n") + misc_register(0); }
int fixture_ns_export(void)
{
	kfree(0);
	if (optional_hook)
		optional_hook();
	return 0;
}
