"""The whole flow on bundled defaults (README command (1), ``make demo``, after the core is
generated): compile the bundled digits MLP (:mod:`.digits`) for the full chip, evaluate it
in software, on the ideal golden chip and on the golden chip with non-idealities, run one
layer on the RTL core in a short Verilator co-simulation, and print a summary.

``python -m cimflow.mapping.demo --out build/demo [--core build/full] [--no-rtl]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _step(n: int, what: str, text: str) -> str:
    line = f"  {n} {what:12s} {text}"
    print(line, flush=True)
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/demo"))
    ap.add_argument("--core", type=Path, default=Path("build/full"),
                    help="folder of the generated core (reported if present)")
    ap.add_argument("--no-rtl", action="store_true", help="skip the RTL co-simulation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from cimflow.config import preset

    from .compiler import compile_graph, compile_model
    from .digits import bundle_paths
    from .graph import Graph
    from .image import write_image
    from .report import latency, totals
    from .runtime import GoldenChip, run_model

    p = bundle_paths()
    x, y = np.load(p["x"]), np.load(p["y"])
    cal = np.load(p["calibration"])
    summary = []
    print("cimflow demo: the bundled digits MLP (synthetic 8 x 8 digits, 64 -> 32 -> 10)")
    if (args.core / "config.json").exists():
        # config.json shows that `cimflow generate` ran, not whether it linted (--no-lint)
        summary.append(_step(1, "core", f"{args.core}: generated (cimflow generate)"))
    else:
        summary.append(_step(1, "core", f"{args.core} not found (run `make demo`)"))

    t0 = time.perf_counter()
    cm = compile_model(p["model"], preset("full"), calibration=cal)
    img = write_image(cm, args.out / "digits.img")
    t = totals(cm)
    cycles = sum(r["cycles"] for r in latency(cm))
    summary.append(_step(2, "compile", f"{img}: {t['matrices']} matrices on {t['cores_used']} "
                         f"of {t['cores']} cores, {t['cells']:,} cells, "
                         f"{time.perf_counter() - t0:.1f} s; {cycles} cycles = "
                         f"{cycles / 100:.2f} us per inference at 100 MHz"))

    model = torch.export.load(p["model"]).module()
    with torch.no_grad():
        sw = model(torch.from_numpy(x)).numpy()
    acc = {"software": float((sw.argmax(1) == y).mean())}
    summary.append(_step(3, "software", f"accuracy {100 * acc['software']:.1f} % on "
                                        f"{len(y)} bundled inputs (float torch model)"))
    t0 = time.perf_counter()
    yi = run_model(cm, x, ideal=True)
    acc["ideal"] = float((yi.argmax(1) == y).mean())
    summary.append(_step(4, "ideal chip", f"accuracy {100 * acc['ideal']:.1f} % (golden chip, "
                                          f"quantisation only: 4-bit inputs, 8-bit outputs; "
                                          f"{time.perf_counter() - t0:.1f} s)"))
    t0 = time.perf_counter()
    chip = GoldenChip(cm, ideal=False, seed=args.seed)
    yn = run_model(cm, x, chip=chip)
    acc["chip"] = float((yn.argmax(1) == y).mean())
    pr = chip.programming
    summary.append(_step(5, "real chip", f"accuracy {100 * acc['chip']:.1f} % (write-verify "
                         f"{pr['mean_pulses']:.1f} pulses/cell in 3 rounds, rms error after "
                         f"relaxation {pr['rms_error_us']:.2f} uS, read noise, IR drop, ADC "
                         f"offsets; {time.perf_counter() - t0:.1f} s)"))

    if args.no_rtl:
        summary.append(_step(6, "RTL", "skipped (--no-rtl)"))
    else:
        from .runtime import FloatBackend

        t0 = time.perf_counter()
        # one layer: the output layer, its inputs the float model's hidden activations
        rec: dict[str, list] = {}
        fb = FloatBackend(cm.graph, rec)
        with torch.no_grad():
            from .runtime import Interpreter

            Interpreter(cm.graph, fb).run(torch.from_numpy(np.concatenate([cal, x[:2]])))
        name = cm.layers[-1].name
        acts = np.concatenate(rec[name])
        node = next(n for n in cm.graph.nodes if n.name == cm.layers[-1].node)
        sub = Graph(["h"], ["o"], [type(node)(node.name, node.op, "analog", ["h"], ["o"],
                                               {"module": "Linear"}, node.params)])
        small = compile_graph(sub, preset("small"), n_cores=8, calibration=acts[:len(cal)])
        simg = write_image(small, args.out / "layer_small.img")
        from cimflow.verif.tb_compiled import run_rtl

        h = acts[len(cal):]
        out, fig = run_rtl(simg, h)
        same = np.array_equal(out, run_model(small, h, ideal=True))
        summary.append(_step(6, "RTL", f"layer {name!r} ({small.layers[0].n_in} -> "
                             f"{small.layers[0].n_out}) on {len(small.targets)} small 16 x 16 "
                             f"core_fpga cores in Verilator: {fig.get('mvms', 0)} MVMs on "
                             f"{len(h)} inputs, {fig.get('cells_loaded', 0)} cells loaded "
                             f"through the programming interface; outputs "
                             f"{'equal' if same else 'DIFFER FROM'} the golden chip's "
                             f"bit for bit ({time.perf_counter() - t0:.1f} s)"))
        if not same:
            return 1
    print("\nsummary")
    print("\n".join(summary))
    print(f"accuracy on the bundled inputs: software {100 * acc['software']:.1f} %, ideal chip "
          f"{100 * acc['ideal']:.1f} %, chip with non-idealities {100 * acc['chip']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
