/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_SMP_H
#define _ASM_LKL_SMP_H

#include <linux/thread_info.h>

struct cpumask;

/* The CPU whose token the calling host thread holds (see asm/cpu.h). */
#define raw_smp_processor_id()	(current_thread_info()->cpu)

void arch_send_call_function_single_ipi(int cpu);
void arch_send_call_function_ipi_mask(struct cpumask *mask);

#endif /* _ASM_LKL_SMP_H */
