/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
#ifndef _UAPI_ASM_LKL_PTRACE_H
#define _UAPI_ASM_LKL_PTRACE_H

/* A library kernel has no user-mode register frame to describe. */
struct user_pt_regs {
	unsigned long unused;
};

#endif /* _UAPI_ASM_LKL_PTRACE_H */
