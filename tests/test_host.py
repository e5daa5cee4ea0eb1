"""The host driver (cimflow/host.py): its frames, its serial transport and its errors; and
the cocotb tests that run it against the simulated UART bridge (verif/tb_uart_host.py)."""

import asyncio
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from cimflow.host import (
    Host,
    HostError,
    SerialTransport,
    command_frame,
    main,
    read_frame,
    status_frame,
    write_frame,
)
from cimflow.verif.commands import Op
from cimflow.verif.regress import run_regression
from cimflow.verif.tb_spi_host import SpiMaster


def _bits(frame: bytes) -> list[int]:
    return [(b >> i) & 1 for b in frame for i in range(7, -1, -1)]


def test_register_frames_are_the_spi_frames():
    """A UART request is the SPI frame's 32 bits, MSB first (one encoding): compared with
    the independent SPI master model of the SPI test."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        bank, line, value = int(rng.integers(0, 2)), int(rng.integers(0, 256)), \
            int(rng.integers(0, 1 << 16))
        data = [(value >> i) & 1 for i in range(15, -1, -1)]
        assert _bits(write_frame(bank, line, value)) == SpiMaster._header(1, 0, bank, line) + data
        assert _bits(read_frame(bank, line)) == SpiMaster._header(0, 0, bank, line) + [0] * 16
    assert _bits(status_frame()) == SpiMaster._header(0, 1, 0, 0) + [0] * 16


def test_command_frame_layout():
    assert command_frame(Op.MVM) == bytes([0xC0, 0x05, 0, 0])
    assert command_frame(Op.SET_TIMING, 0x1834) == bytes([0xC0, 0x11, 0x18, 0x34])
    with pytest.raises(ValueError, match="argument = 65536 does not fit in 16 bits"):
        command_frame(Op.NOP, 1 << 16)
    with pytest.raises(ValueError, match="bank = 2"):
        read_frame(2, 0)


class _Device:
    """The far end of a pty: records one request and answers ``reply`` (or nothing)."""

    def __init__(self, reply: bytes | None):
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open: a pty whose slave side closes hangs up
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, args=(reply,), daemon=True)
        self._thread.start()

    def _serve(self, reply):
        req = b""
        while len(req) < 4:
            req += os.read(self.master, 4 - len(req))
        self.requests.append(req)
        if reply is not None:
            os.write(self.master, reply)

    def close(self):
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self._slave)


def _run(device: _Device, coro_of_host, timeout_s=1.0):
    port = SerialTransport(device.path, 115200, timeout_s=timeout_s)
    try:
        return asyncio.run(coro_of_host(Host(port)))
    finally:
        port.close()
        device.close()


def test_serial_transport_round_trip():
    dev = _Device(bytes([0, 0x0A, 0x00, 0x0A]))
    assert _run(dev, lambda h: h.status()) == 0x0A
    assert dev.requests == [status_frame()]


def test_serial_reports_a_broken_frame_and_a_refusal():
    dev = _Device(bytes([2, 0, 0, 0]))
    with pytest.raises(HostError, match="answered SHORT to request 81031234"):
        _run(dev, lambda h: h.write(1, 3, 0x1234))
    dev = _Device(bytes([0, 0x1E, 0, 0]))  # error, cause 3
    with pytest.raises(HostError, match=r"SET_IN_LEN\(0x0\) refused: cause BAD_ARG"):
        _run(dev, lambda h: h.command(Op.SET_IN_LEN, 0))


def test_serial_timeout_is_one_clear_error():
    dev = _Device(None)
    with pytest.raises(HostError, match=r"no answer from .* within 0.2 s \(0 of 4 bytes\)"):
        _run(dev, lambda h: h.status(), timeout_s=0.2)


def test_serial_refuses_what_is_not_a_serial_port(tmp_path):
    with pytest.raises(HostError, match="cannot open serial port .*nope"):
        SerialTransport(str(tmp_path / "nope"))
    with pytest.raises(HostError, match="/dev/null is not a serial port"):
        SerialTransport("/dev/null")
    with pytest.raises(HostError, match="baud 123 is not a standard rate"):
        SerialTransport("/dev/null", 123)


def test_driver_needs_neither_cocotb_nor_amaranth():
    """A host PC runs the driver without the simulator or the RTL generator."""
    code = ("import sys\n"
            "for name in ('cocotb', 'cocotb_tools', 'amaranth'): sys.modules[name] = None\n"
            "import cimflow.host\n"
            "print(sorted(m for m in sys.modules if m.startswith('cimflow.hdl')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cli_bad_port_is_one_line(tmp_path, capsys):
    assert main(["--port", str(tmp_path / "tty"), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open serial port" in err


@pytest.mark.cocotb
@pytest.mark.parametrize("test", ["host_script", "uart_errors"])
def test_uart_bridge_in_cocotb(test, tmp_path):
    """The driver's smoke script (bit-exact against the golden model, cross-read over SPI)
    and the error answers, on the tiny preset's core behind the UART bridge."""
    (r,) = run_regression(("tiny",), rf"^core_fpga_uart\.{test}\[", tmp_path,
                          progress=lambda *_: None)
    assert r.passed, r.log
    assert r.figures["coverage"]
    if test == "host_script":
        assert r.figures["cells"] == 16 and r.figures["pulses"] > 0
