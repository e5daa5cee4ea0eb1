"""The verification side's command encoding agrees with docs/command_set.md."""

import re
from pathlib import Path

from cimflow.verif.commands import Op, ProgOp

DOC = (Path(__file__).resolve().parents[1] / "docs" / "command_set.md").read_text()


def test_program_operations_match_the_document():
    row = next(line for line in DOC.splitlines() if line.startswith("| `prog_op` |"))
    listed = dict((name.upper(), int(code))
                  for code, name in re.findall(r"(\d) (none|SET|RESET|READ)", row))
    assert listed == {p.name: p.value for p in ProgOp}
    program = next(line for line in DOC.splitlines() if f"| {Op.PROGRAM.value:#X}".replace(
        "0X", "0x") in line and "PROGRAM" in line)
    assert "(1 SET, 2 RESET, 3 READ)" in program and "op = 0" in program  # NONE is refused
