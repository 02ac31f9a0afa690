// SPDX-License-Identifier: GPL-2.0
/*
 * Stack traces.  Kernel code runs on host thread stacks that the kernel
 * cannot walk reliably, so a trace holds only its caller's address: enough
 * for lockdep and the stack-depot users to work, and honest about it.
 */
#include <linux/sched.h>
#include <linux/stacktrace.h>

/**
 * arch_stack_walk() - report the frames of a stack
 * @consume_entry: called for each return address
 * @cookie: passed to @consume_entry
 * @task: the task whose stack to walk (NULL or current: the caller's)
 * @regs: unused: there are no register frames
 */
void arch_stack_walk(stack_trace_consume_fn consume_entry, void *cookie,
		     struct task_struct *task, struct pt_regs *regs)
{
	if (task && task != current)
		return;
	consume_entry(cookie, (unsigned long)__builtin_return_address(0));
}
