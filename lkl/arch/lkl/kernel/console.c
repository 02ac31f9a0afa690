// SPDX-License-Identifier: GPL-2.0
/*
 * The console: every printk record goes to the host in the extended
 * /dev/kmsg format (level, sequence, timestamp, caller, text), so the host
 * can keep each record as data rather than parse decorated text.
 */
#include <linux/console.h>
#include <linux/init.h>
#include <asm/cpu.h>

static void lkl_console_write(struct console *con, const char *str,
			      unsigned int len)
{
	lkl_ops->console_write(lkl_ops->ctx, str, len);
}

static struct console lkl_console = {
	.name = "lkl",
	.write = lkl_console_write,
	.flags = CON_PRINTBUFFER | CON_EXTENDED | CON_ANYTIME,
	.index = -1,
};

static int __init lkl_console_init(void)
{
	register_console(&lkl_console);
	return 0;
}
console_initcall(lkl_console_init);
