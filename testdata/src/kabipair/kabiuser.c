// SPDX-License-Identifier: GPL-2.0
/* kabiuser: uses kabiprov's exports; loads only with kabiprov loaded. */
#include <linux/module.h>

int kabiprov_value(void);
int kabiprov_ns_value(void);

static int __init kabiuser_init(void)
{
	pr_info("kabiuser: loaded, %d %d\n", kabiprov_value(), kabiprov_ns_value());
	return 0;
}

static void __exit kabiuser_exit(void)
{
}

module_init(kabiuser_init);
module_exit(kabiuser_exit);
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(KABIGUARD_TEST);
MODULE_DESCRIPTION("kabiguard test user of kabiprov");
