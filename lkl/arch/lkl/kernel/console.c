// SPDX-License-Identifier: GPL-2.0
/*
 * The console: every printk record goes to the host in the extended
 * /dev/kmsg format (level, sequence, timestamp, caller, text), so the host
 * can keep each record as data rather than parse decorated text.
 */
#include <linux/console.h>
#include <linux/init.h>
#include <linux/kmsg_dump.h>
#include <linux/panic.h>
#include <linux/percpu.h>
#include <linux/printk.h>
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

/**
 * lkl_console_init() - register the console, first thing in setup_arch()
 *
 * Before any other boot step, so that a panic as early as that still
 * reaches the host with every record that led to it.
 */
void __init lkl_console_init(void)
{
	register_console(&lkl_console);
}

/*
 * How many records the console may be behind before a task leaving a
 * system call waits for it: a small share of the ring buffer's records.
 */
#define LKL_CONSOLE_SLACK	1024
/*
 * Looking costs about as much as a getpid(): each CPU looks once in this
 * many calls.  The ring buffer holds tens of thousands of records, far
 * more than the slack plus what the calls in between may log.
 */
#define LKL_CONSOLE_LOOK_EVERY	64

static DEFINE_PER_CPU(unsigned int, lkl_console_calls);

/**
 * lkl_console_keep_up() - let a task wait for a console that fell behind
 *
 * printk() prints from its caller only when the console is free, and
 * otherwise leaves the record to the task printing.  On one CPU the caller
 * nearly always is that task.  With several CPUs logging at once, the one
 * printing falls behind the others, and by a whole ring buffer it loses
 * records before the host has seen them.  So a task leaving a system call
 * looks (on each CPU, once in %LKL_CONSOLE_LOOK_EVERY calls) whether the
 * console is more than a few records behind, and then waits until it has
 * printed all there is: the host gets every record.
 */
void lkl_console_keep_up(void)
{
	struct kmsg_dump_iter iter;

	if (num_online_cpus() == 1)
		return;
	/*
	 * Not this_cpu_inc_return(), which disables interrupts around the
	 * increment at a cost of a sixth of a getpid(): no interrupt counts,
	 * and this arch never preempts a task in the kernel (ARCH_NO_PREEMPT),
	 * so nothing else touches this CPU's count meanwhile.
	 */
	if (raw_cpu_inc_return(lkl_console_calls) % LKL_CONSOLE_LOOK_EVERY)
		return;
	kmsg_dump_rewind(&iter);
	if (iter.next_seq - READ_ONCE(lkl_console.seq) <= LKL_CONSOLE_SLACK)
		return;
	/* After a panic the console belongs to the panicking CPU. */
	if (atomic_read(&panic_cpu) != PANIC_CPU_INVALID)
		return;
	console_lock();
	console_unlock();
}

/* A console that makes no progress for this long is given up on. */
#define LKL_FLUSH_TIMEOUT_MS	1000

static long lkl_flush_console_task(long unused_nr, long *unused_params,
				   void *unused_data)
{
	return pr_flush(LKL_FLUSH_TIMEOUT_MS, true) ? 0 : -ETIMEDOUT;
}

/**
 * lkl_flush_console() - wait until every record logged so far is printed
 *
 * Return: 0, -ETIMEDOUT if the console stalled, or -ESHUTDOWN.
 */
long lkl_flush_console(void)
{
	return lkl_host_call(lkl_flush_console_task, 0, NULL, NULL);
}
