"""Reading CPU, memory and UDP counters from /proc (Linux only), and describing the machine."""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """user+sys CPU seconds of a process (all its threads, dead ones included), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # after the command: state(0) ppid(1) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / HZ


def own_cpu_seconds() -> float:
    """user+sys CPU seconds of this process (getrusage): the clock of in-process microbenchmarks."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_seconds_precise(pid: int) -> float | None:
    """Nanosecond-precise on-CPU time of a process's live threads (/proc/<pid>/task/*/schedstat).

    Threads that exited are not included, so this is for short idle measurements where the clock
    tick resolution of /proc/<pid>/stat (10 ms) is too coarse.
    """
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            pass
    return total / 1e9


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (one /proc scan)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = _ppid(int(name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo and len(out) < 10_000:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def rss_bytes(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes; PSS splits shared pages between the processes that map them."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                pss = rss
        except (FileNotFoundError, ProcessLookupError):
            pass
    return rss, pss


def machine_cpu() -> dict[str, float]:
    """Seconds since boot summed over all CPUs: busy (everything but idle/iowait) and softirq."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    v = [int(x) for x in parts[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return {"busy": (total - idle) / HZ, "softirq": v[6] / HZ, "steal": v[7] / HZ}


def udp_errors() -> dict[str, int]:
    """System-wide UDP counters (InErrors, RcvbufErrors, SndbufErrors) from /proc/net/snmp."""
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    if len(lines) < 2:
        return {}
    names, values = lines[0][1:], lines[1][1:]
    return {n: int(v) for n, v in zip(names, values) if n in ("InErrors", "RcvbufErrors", "SndbufErrors")}


def udp_socket_drops(ports: set[int]) -> int:
    """Sum of the kernel's per-socket drop counters (/proc/net/udp) of local UDP ports on 127.0.0.1."""
    total = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                cols = line.split()
                port = int(cols[1].split(":")[1], 16)
                if port in ports:
                    total += int(cols[-1])
    except (FileNotFoundError, StopIteration):
        pass
    return total


@dataclass
class Sample:
    """One reading of CPU seconds for a set of processes plus the machine."""

    t: float
    cpu: dict[int, float]
    machine: dict[str, float]
    udp: dict[str, int]

    @classmethod
    def take(cls, pids: list[int], precise: bool = False) -> "Sample":
        t = time.time()
        read = cpu_seconds_precise if precise else cpu_seconds
        cpu = {}
        for pid in pids:
            value = read(pid)
            if value is not None:
                cpu[pid] = value
        return cls(t, cpu, machine_cpu(), udp_errors())


def cpu_delta(a: Sample, b: Sample, pids: list[int] | None = None) -> dict[int, float]:
    """CPU seconds per pid between two samples (a process born in between counts from zero)."""
    keys = pids if pids is not None else list(b.cpu)
    return {pid: b.cpu[pid] - a.cpu.get(pid, 0.0) for pid in keys if pid in b.cpu}


def cpu_mitigations() -> str:
    """The CPU vulnerabilities the kernel reports ("Not affected" ones left out). Mitigations such as
    "Safe RET" and retpolines make kernel code dearer, and most of the relay's cost per datagram is
    the kernel's, so they belong with the machine when runs on different machines are compared."""
    base = "/sys/devices/system/cpu/vulnerabilities"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return "unknown"
    found = []
    for name in names:
        try:
            with open(os.path.join(base, name)) as f:
                state = f.read().strip()
        except OSError:
            continue
        if state != "Not affected":
            found.append(f"{name}: {state}")
    return "; ".join(found) or "none"


def machine_info() -> dict[str, str | int]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except FileNotFoundError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) // 1024
    except FileNotFoundError:
        pass
    return {
        "mitigations": cpu_mitigations(),
        "cores": os.cpu_count() or 0,
        "affinity": len(os.sched_getaffinity(0)),
        "cpu_model": model or platform.processor() or "unknown",
        "mem_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def socket_inodes(pids: list[int]) -> dict[int, int]:
    """inode -> pid for the sockets the processes hold open."""
    out = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except (FileNotFoundError, PermissionError):
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out[int(target[8:-1])] = pid
    return out


def udp_backlog(pids: list[int]) -> dict[str, int]:
    """The processes' UDP sockets: the largest receive queue waiting to be read (bytes), where it is
    (local port), and the sum of the kernel's drop counters (receive buffer overflows)."""
    inodes = socket_inodes(pids)
    worst = worst_port = drops = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[9]) not in inodes:
                    continue
                rx = int(cols[4].split(":")[1], 16)
                drops += int(cols[-1])
                if rx > worst:
                    worst, worst_port = rx, int(cols[1].split(":")[1], 16)
    except (FileNotFoundError, StopIteration):
        pass
    return {"max_rx_queue": worst, "max_rx_port": worst_port, "drops": drops}
