// SPDX-License-Identifier: GPL-2.0
/*
 * Hooks the generic kernel expects from every architecture, for things a
 * library kernel does not have: registers, user stacks, tracing.
 */
#include <linux/kernel.h>
#include <linux/printk.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/sched/debug.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <asm/host.h>

void show_regs(struct pt_regs *regs)
{
	show_regs_print_info(KERN_DEFAULT);
}

/* One trace at a time: only the CPU's owner runs kernel code. */
static char lkl_trace_buf[8192];

void show_stack(struct task_struct *task, unsigned long *sp,
		const char *loglvl)
{
	char *line, *next;

	/* Kernel code runs on host stacks: the host walks its own. */
	if ((task && task != current) || !lkl_ops->backtrace ||
	    !lkl_ops->backtrace(lkl_ops->ctx, lkl_trace_buf,
				sizeof(lkl_trace_buf)))
		return;

	printk("%sCall Trace (host):\n", loglvl);
	for (line = lkl_trace_buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		printk("%s %s\n", loglvl, line);
	}
}

void flush_thread(void)
{
}

unsigned long __get_wchan(struct task_struct *p)
{
	return 0;
}

long arch_ptrace(struct task_struct *child, long request,
		 unsigned long addr, unsigned long data)
{
	return -EINVAL;
}

void ptrace_disable(struct task_struct *child)
{
}

static int show_cpuinfo(struct seq_file *m, void *v)
{
	seq_puts(m, "processor\t: 0\nvendor_id\t: lkl\n");
	return 0;
}

static void *c_start(struct seq_file *m, loff_t *pos)
{
	return *pos < 1 ? (void *)1 : NULL;
}

static void *c_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return NULL;
}

static void c_stop(struct seq_file *m, void *v)
{
}

const struct seq_operations cpuinfo_op = {
	.start	= c_start,
	.next	= c_next,
	.stop	= c_stop,
	.show	= show_cpuinfo,
};
