"""A seccomp filter for sandboxes: system calls no Lambda function needs answer EPERM.

The namespaces and the unprivileged uid already make most of these fail; the filter removes the
kernel code behind them from a function's reach altogether (keyrings, eBPF, perf events,
io_uring, userfaultfd, module loading, kexec, ...), as container runtimes' default profiles do.
The program is classic BPF, written here directly (no libseccomp): check the architecture, refuse
the x32 ABI, refuse the listed calls, allow the rest. Only x86_64 has a table; elsewhere no filter
is applied and the server says so.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_NR_OFFSET, _ARCH_OFFSET = 0, 4
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

#: x86_64 numbers of the calls refused, with why nobody's function needs them.
DENIED_X86_64 = {
    "syslog": 103,  # the host kernel's log
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,  # kernel keyrings are shared across namespaces
    "request_key": 249,
    "keyctl": 250,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,  # opens files by handle, past mount boundaries
    "clock_adjtime": 305,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,  # a large, often-patched surface; runtimes do not need it
    "io_uring_enter": 426,
    "io_uring_register": 427,
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program() -> bytes | None:
    """The compiled filter (struct sock_filter[]), or None where no table exists for this machine."""
    if platform.machine() != "x86_64":
        return None
    denied = sorted(DENIED_X86_64.values())
    deny = _RET_ERRNO | errno.EPERM
    body = [
        _insn(_LD_W_ABS, 0, 0, _ARCH_OFFSET),
        _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),  # another ABI (i386 via int 0x80): refuse all
        _insn(_RET_K, 0, 0, deny),
        _insn(_LD_W_ABS, 0, 0, _NR_OFFSET),
        _insn(_JGE_K, len(denied) + 1, 0, X32_SYSCALL_BIT),  # the x32 ABI: refuse all
    ]
    for position, number in enumerate(denied):
        # on a match, jump over the remaining comparisons and the allow to the deny
        body.append(_insn(_JEQ_K, len(denied) - position, 0, number))
    body.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    body.append(_insn(_RET_K, 0, 0, deny))
    return b"".join(body)


def program_fd() -> int | None:
    """A memfd holding the filter, positioned at its start, for ``bwrap --seccomp FD``."""
    code = program()
    if code is None:
        return None
    fd = os.memfd_create("lambdad-seccomp", 0)
    os.write(fd, code)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
