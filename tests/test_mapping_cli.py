"""`cimflow compile` and `cimflow inspect`: summaries, one-line errors, no partial image."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from cimflow.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn(self.conv(x))), 1))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("m") / "net.pt2"
    torch.export.save(torch.export.export(Net().eval(), (torch.zeros(1, 1, 6, 6),)), p)
    return p


def one_error_line(capsys, msg):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cimflow: error:") and msg in err[0], err
    return err[0]


def test_compile_then_inspect(model, tmp_path, capsys):
    out = tmp_path / "img"
    assert main(["compile", str(model), "--out", str(out), "--preset", "small",
                 "--cores", "12"]) == 0
    text = capsys.readouterr().out
    assert "front end: exported-program" in text and "placement:" in text
    assert "conv " in text and "2 analog layers -> 2 conductance matrices" in text
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "from net.pt2 (exported-program), core 16 x 16, 12 cores" in shown
    assert "util" in shown and "4/8" in shown
    # conv: 2 (9 + B) rows x 4 columns, 16 MVMs per inference (4 x 4 outputs)
    conv = next(line for line in shown.splitlines() if line.startswith("conv "))
    assert " x 4" in conv and " 16 " in conv


@pytest.mark.parametrize("argv,msg", [
    (["compile", "missing.pt2", "--out", "o"], "model file missing.pt2 does not exist"),
    (["compile", "MODEL", "--out", "o", "--preset", "nope"], "unknown preset 'nope'"),
    (["compile", "MODEL", "--out", "o", "--cores", "0"], "cores = 0 is out of range"),
    (["compile", "MODEL", "--out", "o", "--in-bits", "9"], "exceeds the core's"),
    (["compile", "MODEL", "--out", "o", "--defects", "nope.json"], "defect map nope.json"),
    (["compile", "MODEL", "--out", "o", "--preset", "tiny", "--cores", "1"], "does not fit"),
    (["inspect", "nowhere"], "nowhere is not an image folder"),
])
def test_errors_are_one_line(model, tmp_path, capsys, argv, msg):
    argv = [a.replace("MODEL", str(model)) for a in argv]
    argv = [str(tmp_path / a) if a == "o" else a for a in argv]
    assert main(argv) == 2
    one_error_line(capsys, msg)
    assert not (tmp_path / "o").exists()  # no partial image


def test_inspect_refuses_a_corrupted_image(model, tmp_path, capsys):
    out = tmp_path / "img"
    assert main(["compile", str(model), "--out", str(out), "--preset", "small",
                 "--quiet"]) == 0
    capsys.readouterr()
    hx = next((out / "cores").glob("*.hex"))
    hx.write_bytes(hx.read_bytes()[:-1])
    assert main(["inspect", str(out)]) == 2
    one_error_line(capsys, "truncated")


def test_a_killed_compile_leaves_no_image(model, tmp_path):
    """SIGKILL just before the rename: the target does not appear."""
    out = tmp_path / "img"
    code = (
        "import os, signal, sys\n"
        "import cimflow.mapping.image as im\n"
        "im._fsync_dir = lambda p: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from cimflow.cli import main\n"
        f"main(['compile', {str(model)!r}, '--out', {str(out)!r}, '--preset', 'small'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == -9
    assert not out.exists()


def test_inspect_estimates_cycles_and_latency_from_the_cycle_model(model, tmp_path, capsys):
    """One 4-bit-in / 8-bit-out MVM at NeuRRAM timing (1 / 1 / 24 clocks), by hand:
    precharge 1 + 3 WL pulses + 7 x (1 sample + 24 integrate) + sign 1 + 7 x 2 ADC steps
    + readout 1 = 195 clocks = 1.95 us at 100 MHz."""
    from cimflow.mapping.image_read import read_image
    from cimflow.mapping.report import latency

    out = tmp_path / "img"
    assert main(["compile", str(model), "--out", str(out), "--preset", "small", "--cores",
                 "12", "--quiet"]) == 0
    capsys.readouterr()
    rows = {r["matrix"]: r for r in latency(read_image(out))}
    assert rows["conv"]["cycles_per_mvm"] == 195 and rows["conv"]["mvms"] == 16  # 4 x 4 out
    for r in rows.values():
        assert r["cycles"] == 195 * r["serial"] * -(-r["mvms"] // r["copies"])
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    total = sum(r["cycles"] for r in rows.values())
    assert f"estimate per inference: {total:,} cycles, {total / 100:,.2f} us at 100 MHz" in text



class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_a_calibration_batch_of_the_wrong_shape_is_one_line(tmp_path, capsys, fmt):
    """The MLP takes (N, 8, 8): a (4, 7) batch is refused as `cimflow run` refuses it, also
    for TorchScript, whose graph records no input shape (the float run's matmul fails)."""
    import numpy as np

    torch.manual_seed(0)
    net = Mlp().eval()
    path = tmp_path / f"mlp.{fmt}"
    if fmt == "pt2":
        torch.export.save(torch.export.export(net, (torch.zeros(2, 8, 8),)), path)
    else:
        torch.jit.save(torch.jit.script(net), str(path))
    bad, good = tmp_path / "bad.npy", tmp_path / "good.npy"
    np.save(bad, np.zeros((4, 7), np.float32))
    np.save(good, np.ones((4, 8, 8), np.float32))
    out = tmp_path / "img"
    argv = ["compile", str(path), "--out", str(out), "--preset", "small", "--quiet"]
    assert main([*argv, "--calibrate", str(bad)]) == 2
    line = one_error_line(capsys, "calibration:")
    assert "(4, 7)" in line
    assert not out.exists()
    assert main([*argv, "--calibrate", str(good)]) == 0  # the right shape compiles
    assert (out / "manifest.json").is_file()
