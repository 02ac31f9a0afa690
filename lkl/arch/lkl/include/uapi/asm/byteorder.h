/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
#ifndef _UAPI_ASM_LKL_BYTEORDER_H
#define _UAPI_ASM_LKL_BYTEORDER_H

/* The library runs on a little-endian x86_64 host. */
#include <linux/byteorder/little_endian.h>

#endif /* _UAPI_ASM_LKL_BYTEORDER_H */
