// SPDX-License-Identifier: GPL-2.0
/*
 * Basic-block coverage for the host.  The harness compiles the files under
 * test with -fsanitize-coverage=trace-pc; every block they run calls the
 * function below, which hands the block to the host.  This file itself
 * is never instrumented (the whole directory is not).
 */
#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <asm/host.h>
#include <asm/sections.h>

void __sanitizer_cov_trace_pc(void);

/**
 * __sanitizer_cov_trace_pc() - record that the calling block ran
 *
 * The block is named by its return address as an offset from _stext, so
 * that every instance of the library (each loaded at its own address, or
 * linked into the executable) reports the same number for the same code.
 * Instrumented code may run before the kernel has its host services or
 * after it gave them back: then nothing is recorded.  As with KCOV, only
 * task context is recorded: an interrupt or a softirq that a host thread
 * runs for its CPU in the middle of a system call (the tick, say) is not
 * part of that call's trace, and neither is the idle task's work.
 */
void notrace __sanitizer_cov_trace_pc(void)
{
	const struct lkl_host_ops *ops = READ_ONCE(lkl_ops);

	if (!current_thread_info() || !in_task() || is_idle_task(current))
		return;
	if (ops && ops->coverage)
		ops->coverage(_RET_IP_ - (unsigned long)_stext);
}
