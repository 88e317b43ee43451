// SPDX-License-Identifier: GPL-2.0
/*
 * kabiprov: exports two symbols for kabiuser, one GPL-only and one in the KABIGUARD_TEST
 * namespace, so the pair exercises dependency groups, GPL and namespace checks the way
 * DRBD's or ZFS's module sets do.
 */
#include <linux/module.h>

int kabiprov_value(void)
{
	return 42;
}
EXPORT_SYMBOL_GPL(kabiprov_value);

int kabiprov_ns_value(void)
{
	return 7;
}
EXPORT_SYMBOL_NS_GPL(kabiprov_ns_value, KABIGUARD_TEST);

static int __init kabiprov_init(void)
{
	pr_info("kabiprov: loaded\n");
	return 0;
}

static void __exit kabiprov_exit(void)
{
}

module_init(kabiprov_init);
module_exit(kabiprov_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kabiguard test provider");
