// SPDX-License-Identifier: GPL-2.0
/*
 * kabidemo: the project's own out-of-tree module, a stand-in for a vendor driver.
 * It uses a handful of exported symbols whose CRCs differ between Debian 6.1 ABIs
 * (misc_register/misc_deregister changed between 6.1.0-53 and 6.1.0-54, module_layout
 * between 6.1.0-54 and 6.1.0-55) and some that stayed the same across 6.1.0-47..56
 * (_printk, kstrdup, kfree, mutex_lock), so one build is compatible with some kernels and
 * not with others. (kmalloc() would pull in kmalloc_caches, which changes at almost every
 * ABI bump: a real driver's usual fate, but it would make this demo incompatible everywhere.)
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>

static DEFINE_MUTEX(kabidemo_lock);
static char *kabidemo_buf;

static const struct file_operations kabidemo_fops = { .owner = THIS_MODULE };
static struct miscdevice kabidemo_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "kabidemo",
	.fops = &kabidemo_fops,
};

static int __init kabidemo_init(void)
{
	mutex_lock(&kabidemo_lock);
	kabidemo_buf = kstrdup("kabidemo", GFP_KERNEL);
	mutex_unlock(&kabidemo_lock);
	if (!kabidemo_buf)
		return -ENOMEM;
	pr_info("kabidemo: loaded\n");
	return misc_register(&kabidemo_dev);
}

static void __exit kabidemo_exit(void)
{
	misc_deregister(&kabidemo_dev);
	kfree(kabidemo_buf);
}

module_init(kabidemo_init);
module_exit(kabidemo_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kabiguard demo module: a misc device");
