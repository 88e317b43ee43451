/*
 * A synthetic kernel module: the sections and labels modpost and <linux/export-internal.h>
 * put into a .ko, built by a plain `gcc -c` for any target. Not loadable; parsed only.
 * scripts/make-elf-fixtures.sh compiles it per architecture with these switches:
 *   THIS_MODULE_SIZE  size of .gnu.linkonce.this_module (sizeof(struct module) as built)
 *   VERMAGIC          the vermagic string (defaults to an x86_64 6.1 one)
 *   EXT_VERSIONS      add the extended modversions tables (Linux 6.14+)
 *   NO_VERSIONS       a kernel without CONFIG_MODVERSIONS: no __versions, no __kcrctab
 *   ABS_CRCS          export CRCs as absolute __crc_<sym> symbols whose value is the CRC
 *                     (older kernels), instead of labels into __kcrctab (6.1 and later)
 * Every value below is what fixtures_test.go expects; modprobe and modinfo are the oracle
 * for __versions and .modinfo.
 */

#ifndef VERMAGIC
#ifdef NO_VERSIONS
#define VERMAGIC "6.1.0-54-amd64 SMP preempt mod_unload "
#else
#define VERMAGIC "6.1.0-54-amd64 SMP preempt mod_unload modversions "
#endif
#endif

/* .modinfo: NUL-separated key=value strings, as modpost writes them; keys may repeat. */
const char fixture_modinfo[] __attribute__((section(".modinfo"), used, aligned(1))) =
	"license=GPL\0"
	"description=kabiguard parser fixture\0"
	"alias=fixture-a\0"
	"alias=fixture-b\0"
	"import_ns=KABIGUARD_TEST\0"
	"import_ns=USB_STORAGE\0"
	"depends=kabiprov,videodev\0"
	"retpoline=Y\0"
	"intree=Y\0"
	"srcversion=0123456789ABCDEF0123456\0"
	"name=fixture\0"
	"vermagic=" VERMAGIC "\0";

#ifndef NO_VERSIONS
/* __versions: struct modversion_info { unsigned long crc; char name[64 - sizeof(long)]; } */
struct modversion_info {
	unsigned long crc;
	char name[64 - sizeof(unsigned long)];
};
const struct modversion_info fixture_versions[] __attribute__((section("__versions"), used, aligned(32))) = {
	{ 0x92997ed8, "_printk" },
	{ 0x1e1dfe5f, "misc_register" },
	{ 0x037a0cba, "kfree" },
	/* 55 characters: the longest name a 64-bit record holds, with no room to spare. */
	{ 0x00000001, "a_symbol_of_exactly_fifty_five_characters_in_its_name__" },
	{ 0xbce1a965, "module_layout" },
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

/*
 * Exports, laid out as in a linked 6.1 .ko: per section, one entry per export sorted by name,
 * each labelled by a local symbol; the name and namespace strings (empty when the export has
 * none) are labelled in __ksymtab_strings. Entries are three 32-bit words (the PREL32 form);
 * their relocations are left out, nothing here reads them. Two exports share each section so
 * the second one's labels sit at a non-zero offset.
 */
#define KSYMTAB(sym, sec, ns)							\
	asm("	.pushsection \"__ksymtab_strings\",\"aMS\",%progbits,1\n"	\
	    "__kstrtab_" #sym ":\n"						\
	    "	.asciz \"" #sym "\"\n"						\
	    "__kstrtabns_" #sym ":\n"						\
	    "	.asciz \"" ns "\"\n"						\
	    "	.popsection\n"							\
	    "	.pushsection \"__ksymtab" sec "\",\"a\"\n"			\
	    "	.balign 4\n"							\
	    "__ksymtab_" #sym ":\n"						\
	    "	.long 0, 0, 0\n"						\
	    "	.popsection\n")

#if defined(NO_VERSIONS)
#define KCRC(sym, sec, crc)
#elif defined(ABS_CRCS)
#define KCRC(sym, sec, crc)							\
	asm("	.globl __crc_" #sym "\n"					\
	    "	.set __crc_" #sym ", " #crc "\n"				\
	    "	.pushsection \"__kcrctab" sec "\",\"a\"\n"			\
	    "	.balign 4\n"							\
	    "	.long __crc_" #sym "\n"						\
	    "	.popsection\n")
#else
#define KCRC(sym, sec, crc)							\
	asm("	.pushsection \"__kcrctab" sec "\",\"a\"\n"			\
	    "	.balign 4\n"							\
	    "__crc_" #sym ":\n"							\
	    "	.long " #crc "\n"						\
	    "	.popsection\n")
#endif

#define EXPORT(sym, sec, ns, crc) KSYMTAB(sym, sec, ns); KCRC(sym, sec, crc);

EXPORT(fixture_export, "", "", 0xcafef00d)
EXPORT(fixture_other_export, "", "", 0x00c0ffee)
EXPORT(fixture_gpl_export, "_gpl", "", 0x8badf00d)
EXPORT(fixture_ns_export, "_gpl", "KABIGUARD_TEST", 0x13572468)

/* sizeof(struct module) as built: the section's size. */
char fixture_this_module[THIS_MODULE_SIZE] __attribute__((section(".gnu.linkonce.this_module"), used, aligned(32)));

/* Undefined references: strong and weak. */
extern int _printk(const char *fmt, ...);
extern int misc_register(void *dev);
extern void kfree(const void *p);
extern void optional_hook(void) __attribute__((weak));

int fixture_other_export;

int fixture_export(void) { return _printk("fixture\n") + misc_register(0); }
int fixture_gpl_export(void) { return fixture_other_export; }
int fixture_ns_export(void)
{
	kfree(0);
	if (optional_hook)
		optional_hook();
	return 0;
}
