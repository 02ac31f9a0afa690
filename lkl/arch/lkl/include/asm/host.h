/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_HOST_H
#define _ASM_LKL_HOST_H

#include <uapi/asm/host_ops.h>

/* The host services table lkl_start_kernel() was given. */
extern const struct lkl_host_ops *lkl_ops;

#endif /* _ASM_LKL_HOST_H */
