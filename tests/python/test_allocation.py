"""Sizes whose memory cannot be had raise ``AllocationError`` naming the argument and the memory.

Each case runs in a child interpreter: an abort ("memory allocation of N bytes failed") or an
out-of-memory kill fails the test instead of ending pytest. Every size needs more than the 24 GiB
of the project's machines (or more than an address space), so it is refused before any memory is
touched.
"""

import subprocess
import sys
import textwrap

import pytest

import delgrad_rs
from delgrad_rs import AllocationError, DelgradError

#: The child's code prints ``type: message`` of the error the call raises (or ``no error``).
_CHILD = """
import numpy as np
import delgrad_rs
from delgrad_rs import _core
try:
{call}
except Exception as e:
    print(f"{{type(e).__name__}}: {{e}}")
else:
    print("no error")
"""

CASES = {
    "network": "delgrad_rs.Network.create([4, 10**9, 3], threads=1)",
    "network_2**63": "delgrad_rs.Network.create([4, 2**63 - 1, 3], threads=1)",
    "network_fan_in_2**63": "_core.init_network(2**63 - 1, [{'size': 2, 'weight_mean': 0.0, 'weight_std': 1.0}])",
    "config_hidden": (
        "delgrad_rs.fit({'network': {'hidden': [1000000000]}, 'training': {'epochs': 1, 'threads': 1}}, quiet=True)"
    ),
    "chip_pattern": "_core.chip_pattern(10**9, 10**9, seed=0)",
    "chip_pattern_2**63": "_core.chip_pattern(256, 2**63 - 1, seed=0)",
    "emulated_chip": textwrap.dedent(
        """\
        import dataclasses
        from delgrad_hw.bss2 import BSS2
        from delgrad_hw.emulator import EmulatedChip
        EmulatedChip(resources=dataclasses.replace(BSS2, neurons_per_hemisphere=10**9))"""
    ),
    "forward_batch": "delgrad_rs.Network.create([1, 40000], threads=1).core.forward(np.zeros((10**6, 1)))",
}

#: What each message must say: the argument and the memory (or that no address space holds it).
EXPECTED = {
    "network": ("layers", "GiB"),
    "network_2**63": ("layers[0].size", "address space"),
    "network_fan_in_2**63": ("layers[0].size", "address space"),
    "config_hidden": ("layers", "GiB"),
    "chip_pattern": ("circuits", "22.4 GiB"),
    "chip_pattern_2**63": ("rows", "address space"),
    "emulated_chip": ("resources.neurons_per_hemisphere", "22.4 GiB"),
    "forward_batch": ("input", "298.0 GiB"),
}


def _run(call: str) -> subprocess.CompletedProcess[str]:
    code = _CHILD.format(call=textwrap.indent(call, "    "))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unallocatable_sizes_raise_naming_the_argument_and_memory(case: str) -> None:
    r = _run(CASES[case])
    assert r.returncode == 0, f"the interpreter died ({r.returncode}): {r.stderr[-2000:]}"
    kind, _, message = r.stdout.strip().partition(": ")
    # the chip package reports its resources as a ValueError (its one error for a bad chip)
    assert kind == ("ValueError" if case == "emulated_chip" else "AllocationError"), r.stdout + r.stderr[-2000:]
    arg, memory = EXPECTED[case]
    assert message.startswith(arg) or f" {arg}" in message, message
    assert memory in message, message
    assert "capacity overflow" not in message and "(0 values)" not in message, message


def test_allocation_error_is_a_memory_error() -> None:
    assert issubclass(AllocationError, MemoryError) and issubclass(AllocationError, DelgradError)
    assert delgrad_rs.AllocationError is delgrad_rs._core.AllocationError
