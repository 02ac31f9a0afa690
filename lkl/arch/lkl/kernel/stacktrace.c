// SPDX-License-Identifier: GPL-2.0
/*
 * Stack traces.  Kernel code runs on host thread stacks, which the host
 * unwinds with their unwind tables: a trace holds the real return
 * addresses of the calling thread, kernel and host frames alike, for
 * lockdep, KCSAN and every other user of stack_trace_save().
 */
#include <linux/sched.h>
#include <linux/stacktrace.h>
#include <asm/cpu.h>

/* Frames kept; traces are cut there, as stack depots cut theirs. */
#define LKL_STACK_DEPTH	64

/**
 * arch_stack_walk() - report the frames of a stack
 * @consume_entry: called for each return address
 * @cookie: passed to @consume_entry
 * @task: the task whose stack to walk: NULL or current, since only a
 *	thread can walk its own stack
 * @regs: unused: there are no register frames
 */
void arch_stack_walk(stack_trace_consume_fn consume_entry, void *cookie,
		     struct task_struct *task, struct pt_regs *regs)
{
	unsigned long pcs[LKL_STACK_DEPTH];
	unsigned long i, n;

	if (task && task != current)
		return;
	n = lkl_ops->stack_walk(pcs, ARRAY_SIZE(pcs));
	/* pcs[0] is this function's own frame; start with its caller. */
	for (i = 1; i < n; i++) {
		if (!consume_entry(cookie, pcs[i]))
			break;
	}
}
