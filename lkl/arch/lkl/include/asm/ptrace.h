/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_PTRACE_H
#define _ASM_LKL_PTRACE_H

#include <uapi/asm/ptrace.h>

/* Host code is never "user mode" the kernel could trace or interrupt. */
struct pt_regs {
	unsigned long unused;
};

#define user_mode(regs)			((void)(regs), 0)
#define instruction_pointer(regs)	((void)(regs), 0UL)
#define user_stack_pointer(regs)	((void)(regs), 0UL)
#define profile_pc(regs)		instruction_pointer(regs)
#define current_pt_regs()		task_pt_regs(current)

#endif /* _ASM_LKL_PTRACE_H */
