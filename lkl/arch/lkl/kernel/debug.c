// SPDX-License-Identifier: GPL-2.0
/*
 * Failure injection for testing the harness itself: kernel command line
 * options that make the kernel WARN, panic (early or late), hang or leak
 * memory while booting, or panic when it is powered off (a system call, or
 * the halt), so the harness can show that it turns each into a failed test
 * with the log.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/bug.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/delay.h>
#include <linux/panic.h>
#include <linux/reboot.h>
#include <linux/slab.h>

static bool test_warn;
static bool test_panic;
static bool test_hang;
static bool test_leak;
static bool test_power_off_panic;
core_param(lkl_test_warn, test_warn, bool, 0444);
core_param(lkl_test_panic, test_panic, bool, 0444);
core_param(lkl_test_hang, test_hang, bool, 0444);
core_param(lkl_test_leak, test_leak, bool, 0444);
core_param(lkl_test_power_off_panic, test_power_off_panic, bool, 0444);

/* The size of the object lkl_test_leak leaks, to find it in the report. */
#define LKL_TEST_LEAK_SIZE	333

/*
 * Allocates an object and forgets it, for kmemleak to report: noinline,
 * so that the only pointer to it dies with this frame.
 */
static noinline void lkl_test_leak_object(void)
{
	char *lost = kmalloc(LKL_TEST_LEAK_SIZE, GFP_KERNEL);

	if (lost) {
		memset(lost, 0x5a, LKL_TEST_LEAK_SIZE);
		barrier_data(lost);
	}
}

static int lkl_power_off_panic(struct notifier_block *nb, unsigned long event,
			       void *unused)
{
	if (event == SYS_POWER_OFF)
		panic("lkl_test_power_off_panic was given on the command line");
	return NOTIFY_DONE;
}

static struct notifier_block lkl_power_off_panic_nb = {
	.notifier_call = lkl_power_off_panic,
};

static int __init lkl_failure_injection(void)
{
	WARN(test_warn, "lkl_test_warn was given on the command line\n");
	if (test_panic)
		panic("lkl_test_panic was given on the command line");
	while (test_hang)
		msleep(1000);
	if (test_leak)
		lkl_test_leak_object();
	if (test_power_off_panic)
		register_reboot_notifier(&lkl_power_off_panic_nb);
	return 0;
}
late_initcall_sync(lkl_failure_injection);

/**
 * lkl_early_panic_param() - panic while the command line is parsed
 * @arg: the option's value, unused
 *
 * An early parameter runs from setup_arch(), before memory management
 * exists and long before any initcall, so the harness can show that a
 * panic that early still reaches the boot error with its log.
 *
 * Return: never returns.
 */
static int __init lkl_early_panic_param(char *arg)
{
	panic("lkl_test_early_panic was given on the command line");
}
early_param("lkl_test_early_panic", lkl_early_panic_param);
