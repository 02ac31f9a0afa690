// SPDX-License-Identifier: GPL-2.0
/* ARCH=lkl has no assembly, so it needs no generated offsets. */
