"""Host-side driver of a core behind the UART bridge (docs/host_interface.md).

``Host`` speaks the bridge's byte protocol over a *transport*: any object with
``async send(data: bytes)`` and ``async recv(n: int) -> bytes``. ``SerialTransport`` is a
serial port (POSIX termios, no extra package); the cocotb testbench
``cimflow.verif.tb_uart_host`` has one that drives the UART pins of the simulated core.
The frame encoding here is written from the document (not imported from hdl/), and the
commands come from the testbenches' one command encoding, ``cimflow.verif.commands``.

Scripts are coroutines taking a ``Host``, so one script runs against the board
(``asyncio.run``) and inside a cocotb test (``await``): :func:`smoke` programs a crossbar,
runs an MVM, reads the outputs and the status, and compares them with the golden model::

    python -m cimflow.host --port /dev/ttyUSB0 --preset tiny
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import sys
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np

from cimflow.config import CoreConfig, preset
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.cycle import CycleCore
from cimflow.golden.mvm import MvmSettings
from cimflow.verif.commands import (
    Op,
    ProgOp,
    mode_commands,
    reset_pulse,
    selection_writes,
    set_pulses,
)
from cimflow.verif.mvm_scenario import mode_registers, write_inputs

__all__ = ["FRAME_BYTES", "DEFAULT_BAUD", "Reply", "CAUSES", "Response", "HostError",
           "Transport", "SerialTransport", "Host", "write_frame", "read_frame",
           "status_frame", "command_frame", "smoke", "BOARD_SETTINGS"]

FRAME_BYTES = 4
DEFAULT_BAUD = 1_000_000
"""The ULX3S board top's rate (100 MHz / 100)."""

CAUSES = ("none", "UNKNOWN_OPCODE", "BUSY", "BAD_ARG", "POWER_GATED", "SELECTION",
          "NOT_READY", "UNIT")
"""Status bits 5..3 (docs/command_set.md)."""

BOARD_SETTINGS = dict(v_read=0.5, v_decr=0.25)
"""The MVM operating point whose C_s V_decr is the board top's default ``d_units`` (2^23);
the board injects no noise and does not clip (``inject_units`` 0, ``clip_units`` max)."""


class Reply(IntEnum):
    """Response byte 0."""

    OK = 0
    FRAMING = 1
    SHORT = 2
    BAD = 3


class HostError(RuntimeError):
    """The board did not answer, answered a broken frame, or refused a command."""


def _u16(name: str, value: int) -> int:
    value = int(value)
    if not 0 <= value < 1 << 16:
        raise ValueError(f"{name} = {value} does not fit in 16 bits")
    return value


def _line(bank: int, line: int) -> tuple[int, int]:
    if bank not in (0, 1):
        raise ValueError(f"bank = {bank} must be 0 (BL) or 1 (SL)")
    if not 0 <= line < 256:
        raise ValueError(f"line = {line} does not fit in a byte")
    return bank, line


def write_frame(bank: int, line: int, value: int) -> bytes:
    """Register write: byte 0 = {rw 1, 0, 0000, st 0, bank}."""
    bank, line = _line(bank, line)
    v = _u16("value", value)
    return bytes([0x80 | bank, line, v >> 8, v & 0xFF])


def read_frame(bank: int, line: int) -> bytes:
    bank, line = _line(bank, line)
    return bytes([bank, line, 0, 0])


def status_frame() -> bytes:
    return bytes([0x02, 0, 0, 0])


def command_frame(op: Op | int, arg: int = 0) -> bytes:
    """Command: byte 0 = 0xC0 (rw 1, cmd 1), byte 1 = opcode, bytes 2-3 = argument."""
    op = int(op)
    if not 0 <= op < 32:
        raise ValueError(f"opcode {op} does not fit in 5 bits")
    a = _u16("argument", arg)
    return bytes([0xC0, op, a >> 8, a & 0xFF])


@dataclass(frozen=True)
class Response:
    reply: int
    status: int
    data: int

    @classmethod
    def parse(cls, raw: bytes) -> Response:
        if len(raw) != FRAME_BYTES:
            raise HostError(f"a response has {FRAME_BYTES} bytes, got {len(raw)}")
        return cls(raw[0], raw[1], raw[2] << 8 | raw[3])

    @property
    def busy(self) -> bool:
        return bool(self.status & 1)

    @property
    def done(self) -> bool:
        return bool(self.status & 2)

    @property
    def error(self) -> bool:
        return bool(self.status & 4)

    @property
    def cause(self) -> str:
        return CAUSES[(self.status >> 3) & 7]


class Transport(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def recv(self, n: int) -> bytes: ...


class SerialTransport:
    """A serial port in raw 8N1 mode through POSIX termios (Linux: any standard rate up to
    4 Mbaud, e.g. 1000000; the ULX3S's FT231X does up to 3 Mbaud)."""

    def __init__(self, port: str, baud: int = DEFAULT_BAUD, timeout_s: float = 2.0):
        try:
            import termios
        except ImportError:
            raise HostError("SerialTransport needs POSIX termios (Linux or macOS)") from None
        speed = getattr(termios, f"B{int(baud)}", None)
        if speed is None:
            raise HostError(f"baud {baud} is not a standard rate of this system's termios")
        try:
            fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise HostError(f"cannot open serial port {port}: {e.strerror}") from None
        try:
            iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
            cflag = termios.CS8 | termios.CREAD | termios.CLOCAL  # 8N1, no flow control
            cc[termios.VMIN], cc[termios.VTIME] = 0, 0
            termios.tcsetattr(fd, termios.TCSANOW, [0, 0, cflag, 0, speed, speed, cc])
            termios.tcflush(fd, termios.TCIOFLUSH)
        except termios.error as e:
            os.close(fd)
            raise HostError(f"{port} is not a serial port: {e.args[-1]}") from None
        self.port, self.fd, self.timeout_s = port, fd, timeout_s

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    async def send(self, data: bytes) -> None:
        view = memoryview(bytes(data))
        while view:
            select.select([], [self.fd], [], self.timeout_s)
            view = view[os.write(self.fd, view):]

    async def recv(self, n: int) -> bytes:
        got = b""
        end = time.monotonic() + self.timeout_s
        while len(got) < n:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise HostError(f"no answer from {self.port} within {self.timeout_s} s "
                                f"({len(got)} of {n} bytes)")
            got += os.read(self.fd, n - len(got))
        return got


class Host:
    """Requests to the core; every method is a coroutine (see the module docstring)."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self._selected: tuple[int, int] | None = None

    async def request(self, frame: bytes) -> Response:
        await self.transport.send(frame)
        r = Response.parse(await self.transport.recv(FRAME_BYTES))
        if r.reply != Reply.OK:
            name = Reply(r.reply).name if r.reply in tuple(Reply) else f"{r.reply:#04x}"
            raise HostError(f"the bridge answered {name} to request {frame.hex()}")
        return r

    async def write(self, bank: int, line: int, value: int) -> Response:
        return await self.request(write_frame(bank, line, value))

    async def read(self, bank: int, line: int) -> int:
        return (await self.request(read_frame(bank, line))).data

    async def status(self) -> int:
        return (await self.request(status_frame())).status

    async def command(self, op: Op | str, arg: int = 0) -> Response:
        """Issue one command; the response comes once ``busy`` is low again. A refusal
        (the error flag set: clear it first if an earlier error left it set) raises."""
        op = Op[op] if isinstance(op, str) else Op(op)
        r = await self.request(command_frame(op, arg))
        if r.error:
            raise HostError(f"{op.name}({arg:#x}) refused: cause {r.cause} "
                            f"(status {r.status:#04x})")
        return r

    async def clear_error(self) -> None:
        await self.command(Op.CLEAR_ERROR)

    async def write_bank(self, bank: int, values) -> None:
        for line, v in enumerate(values):
            await self.write(bank, line, int(v))
        self._selected = None

    async def read_bank(self, bank: int, n: int) -> np.ndarray:
        return np.array([await self.read(bank, k) for k in range(n)], dtype=np.int64)

    async def select_cell(self, r: int, c: int) -> None:
        """BL r and SL c registers 1, the previous selection's back to 0 (after
        ``write_bank`` of zeros on both banks)."""
        for bank, line, value in selection_writes(self._selected or (None, None), (r, c)):
            await self.write(bank, line, value)
        self._selected = (r, c)

    async def pulse(self, op: ProgOp, amp: int, width: int) -> Response:
        await self.command(Op.SET_PULSE, amp)
        await self.command(Op.SET_WIDTH, width)
        return await self.command(Op.PROGRAM, op)

    async def read_cell(self) -> int:
        """PROGRAM READ of the selected cell: its conductance code."""
        return (await self.command(Op.PROGRAM, ProgOp.READ)).data

    async def program_cell(self, code: int) -> int:
        """Bring the selected cell to ``code`` (behavioural macro: every clock of a SET
        pulse adds its amplitude, of a RESET subtracts it): READ; if different, RESET to 0
        and SET up. Returns the pulses used."""
        now = await self.read_cell()
        pulses = 0
        if now == code:
            return 0
        steps = [(ProgOp.RESET, reset_pulse(now))] if now else []
        steps += [(ProgOp.SET, p) for p in set_pulses(code)]
        for op, (amp, width) in steps:
            await self.pulse(op, amp, width)
            pulses += 1
        return pulses


async def smoke(host: Host, cfg: CoreConfig, seed: int = 1) -> dict:
    """Program a random differential weight block of at most 2 inputs x 4 outputs (its
    cells: at most 4 rows x 4 columns, each verified by READ), run one forward MVM at full
    precision, read its outputs and the status, and compare with the golden cycle model at
    the board's operating point (:data:`BOARD_SETTINGS`). Cells outside the block are not
    driven (rows) or not read (columns), so what earlier runs left there does not matter.

    Returns ``{"cells", "pulses", "x", "want", "got", "status", "match"}``.
    """
    rng = np.random.default_rng(seed)
    w = cfg.line_bits
    xb = Crossbar(cfg)
    n_in, n_out = max(min(cfg.rows // 2, 2), 1), min(cfg.cols, 4)
    xb.program(rng.standard_normal((n_in, n_out)))
    codes = xb.codes()
    if codes.max() >= 1 << 16:
        raise ValueError("a conductance code exceeds the macro's 16 bits")
    if int(await host.status()) & 4:
        await host.clear_error()
    await host.write_bank(0, [0] * cfg.rows)
    await host.write_bank(1, [0] * cfg.cols)
    pulses = 0
    rows = min(2 * n_in, cfg.rows)
    for r in range(rows):
        for c in range(n_out):
            await host.select_cell(r, c)
            pulses += await host.program_cell(int(codes[r, c]))
            got = await host.read_cell()
            if got != codes[r, c]:
                raise HostError(f"cell ({r}, {c}) reads {got} after programming {codes[r, c]}")

    st = MvmSettings.from_config(cfg, direction=Direction.FORWARD, **BOARD_SETTINGS)
    top = max((1 << (st.in_bits - 1)) - 1, 1)
    x = rng.integers(-top if st.in_bits > 1 else 0, top + 1, n_in)
    bl, sl = np.zeros(cfg.rows, np.int64), np.zeros(cfg.cols, np.int64)
    in_len = write_inputs(st.direction, x, w, rng, bl, sl)
    await host.write_bank(0, bl)
    await host.write_bank(1, sl)
    for op, arg in mode_commands(mode_registers({"st": st, "in_len": in_len})):
        await host.command(op, arg)
    await host.command(Op.MVM)
    got = await host.read_bank(1, n_out)
    want = CycleCore(xb).run(x[None], st)
    want_codes = ((want.sign[0].astype(np.int64) << (w - 1)) | want.mag[0])[:n_out]
    status = await host.status()
    return {"cells": rows * n_out, "pulses": pulses, "x": x.tolist(),
            "want": want_codes.tolist(), "got": got.tolist(), "status": status,
            "match": bool(np.array_equal(got, want_codes)) and (status & 7) == 2}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cimflow.host",
                                 description="run the smoke script on a board over UART")
    ap.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    ap.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="the preset the board's core was generated from")
    src.add_argument("--config", help="the CoreConfig JSON the core was generated from")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        cfg = preset(args.preset) if args.preset else CoreConfig.from_json(
            open(args.config).read())
        port = SerialTransport(args.port, args.baud)
    except (HostError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        res = asyncio.run(smoke(Host(port), cfg, args.seed))
    except HostError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        port.close()
    print(f"programmed {res['cells']} cells ({res['pulses']} pulses); x = {res['x']}")
    print(f"MVM outputs {res['got']}, golden {res['want']}; status {res['status']:#04x}")
    print("match" if res["match"] else "MISMATCH")
    return 0 if res["match"] else 1


if __name__ == "__main__":
    sys.exit(main())
