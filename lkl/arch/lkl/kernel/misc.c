// SPDX-License-Identifier: GPL-2.0
/*
 * Hooks the generic kernel expects from every architecture, for things a
 * library kernel does not have: registers, user stacks, tracing.
 */
#include <linux/bug.h>
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

/* Frames shown; a deeper trace is cut there. */
#define LKL_SHOW_DEPTH	64

/*
 * The host walks the calling thread's stack (stack_walk), kernel and host
 * frames alike; kallsyms names the kernel's, and the harness the host's.
 * Not the host's own symbolizer: it may not know a kernel library that
 * was loaded after it first ran.
 */
void show_stack(struct task_struct *task, unsigned long *sp,
		const char *loglvl)
{
	unsigned long pcs[LKL_SHOW_DEPTH];
	unsigned long i, n;

	/* Kernel code runs on host stacks: a thread can only walk its own. */
	if ((task && task != current) || !lkl_ops->stack_walk)
		return;
	n = lkl_ops->stack_walk(pcs, ARRAY_SIZE(pcs));
	printk("%sCall Trace (host):\n", loglvl);
	/* pcs[0] is this function. */
	for (i = 1; i < n; i++)
		printk("%s %pS\n", loglvl, (void *)pcs[i]);
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

/**
 * is_valid_bugaddr() - whether a trapping address is a BUG() site
 * @addr: the address
 *
 * BUG() and WARN() here call into the kernel directly; no trap instruction
 * marks them, so report_bug() never gets a trap to decode.
 *
 * Return: 0, always.
 */
int is_valid_bugaddr(unsigned long addr)
{
	return 0;
}
