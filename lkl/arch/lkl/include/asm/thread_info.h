/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_THREAD_INFO_H
#define _ASM_LKL_THREAD_INFO_H

#include <linux/bits.h>
#include <asm/page.h>

/*
 * Kernel code runs on host thread stacks, so the "kernel stack" of a task
 * only has to hold its thread_info: one page is plenty.
 */
#define THREAD_SIZE_ORDER	0
#define THREAD_SIZE		(PAGE_SIZE << THREAD_SIZE_ORDER)

#ifndef __ASSEMBLY__
#include <asm/processor.h>

/**
 * struct thread_info - low-level task state
 * @flags: TIF_* flags
 * @preempt_count: the generic preemption counter
 * @cpu: the CPU the task runs on, or last ran on
 * @task: the task
 */
struct thread_info {
	unsigned long flags;
	int preempt_count;
	unsigned int cpu;
	struct task_struct *task;
};

#define INIT_THREAD_INFO(tsk)			\
{						\
	.flags		= 0,			\
	.preempt_count	= INIT_PREEMPT_COUNT,	\
	.cpu		= 0,			\
	.task		= &(tsk),		\
}

/*
 * The task the calling host thread runs as: every task has a host thread
 * of its own, so "current" is a property of the thread, kept in its
 * thread-local storage.  A thread sets it when it starts to run kernel
 * code (a system call, an interrupt it runs for a free CPU, a switch to
 * its own task).
 */
extern __thread struct thread_info *lkl_current_ti;

static __always_inline struct thread_info *current_thread_info(void)
{
	return lkl_current_ti;
}
#endif /* __ASSEMBLY__ */

#define TIF_SYSCALL_TRACE	0
#define TIF_NOTIFY_RESUME	1
#define TIF_SIGPENDING		2
#define TIF_NEED_RESCHED	3
#define TIF_RESTORE_SIGMASK	4
#define TIF_MEMDIE		5
#define TIF_NOTIFY_SIGNAL	6
#define TIF_POLLING_NRFLAG	7
/* The task's host thread belongs to the host program (a syscall caller). */
#define TIF_HOST_THREAD		8

#define _TIF_SYSCALL_TRACE	BIT(TIF_SYSCALL_TRACE)
#define _TIF_NOTIFY_RESUME	BIT(TIF_NOTIFY_RESUME)
#define _TIF_SIGPENDING		BIT(TIF_SIGPENDING)
#define _TIF_NEED_RESCHED	BIT(TIF_NEED_RESCHED)
#define _TIF_MEMDIE		BIT(TIF_MEMDIE)
#define _TIF_NOTIFY_SIGNAL	BIT(TIF_NOTIFY_SIGNAL)
#define _TIF_POLLING_NRFLAG	BIT(TIF_POLLING_NRFLAG)
#define _TIF_HOST_THREAD	BIT(TIF_HOST_THREAD)

#endif /* _ASM_LKL_THREAD_INFO_H */
