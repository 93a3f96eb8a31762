"""tools/profile_qemu.py: the per-instruction profile of one ts_invoke on the emulated M4
(QEMU -singlestep -d exec), on the committed fuzz export (a small real ds-cnn)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import profile_qemu  # noqa: E402

from tools_needed import need_tools  # noqa: E402

EXPORT = ROOT / "firmware" / "test" / "fuzz" / "export"


def test_trace_lines_are_counted_per_address():
    lines = [b"Trace 0: 0x7f00 [00800408/00005c84/00000110/ff020201] Reset_Handler\n",
             b"Trace 0: 0x7f20 [00800408/00005c86/00000110/ff020201] Reset_Handler\n",
             b"cpu_io_recompile: rewound execution of TB to 00005c86\n",
             b"Trace 0: 0x7f20 [00800408/00005c86/00000110/ff020201] Reset_Handler\n"]
    assert profile_qemu.count_pcs(lines) == {0x5C84: 1, 0x5C86: 2}


def test_a_folder_without_an_export_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as exc:
        profile_qemu.main(["--export", str(tmp_path)])
    assert "not an export folder (no ts_export.h)" in str(exc.value.code)


def test_profile_of_one_invoke(tmp_path):
    need_tools("qemu-system-arm", "arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-objdump")
    prof = profile_qemu.profile(EXPORT, tmp_path)
    model = re.search(r"invoke_instr=(\d+)", prof["serial"])
    invoke = int(model.group(1))
    funcs = prof["functions"]
    total = sum(prof["counts"].values())
    assert sum(funcs.values()) == total and total > invoke
    # the kernels ts_invoke reaches on this model: the 3x3 planes (stem and depthwise, the
    # pairs in assembly) and the pointwise channel pairs in assembly
    # (the compiler may suffix a local function's clone: conv3x3_planes.isra.0)
    kernels = ("conv3x3_planes", "pairs_row_s1", "conv_pairs_asm")
    spent = {k: sum(n for name, n in funcs.items() if name.split(".")[0] == k) for k in kernels}
    assert all(spent[k] > 0 for k in kernels), funcs.most_common(12)
    assert sum(spent.values()) < invoke
    # the annotated disassembly carries the same counts as the function's total
    lines = profile_qemu.annotate(prof["elf"], "conv_pairs_asm", prof["counts"])
    assert lines[0].endswith("<conv_pairs_asm>:")
    assert sum(int(line.split()[0]) for line in lines[1:]) == funcs["conv_pairs_asm"]
