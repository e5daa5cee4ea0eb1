"""The `cimflow compile` and `cimflow inspect` subcommands.

Registered by :mod:`cimflow.cli` with one call, so the compiler's options live next to
the compiler. Errors are :class:`CompileError` / :class:`ImageError` (``ValueError``s),
which the main program prints as one ``cimflow: error: ...`` line with exit status 2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["register"]


def register(sub) -> None:
    c = sub.add_parser("compile", help="compile a PyTorch model into a core programming image")
    c.add_argument("model", help="TorchScript (torch.jit.save) or ExportedProgram "
                   "(torch.export.save, .pt2) file")
    c.add_argument("--out", required=True, help="image folder to write")
    c.add_argument("--cores", type=int, default=48, help="cores on the chip (default 48)")
    src = c.add_mutually_exclusive_group()
    src.add_argument("--preset", help="named core configuration (default: full)")
    src.add_argument("--config", help="CoreConfig JSON file")
    c.add_argument("--defects", help="per-die defect map (JSON, see docs/image_format.md)")
    c.add_argument("--in-bits", type=int, default=4, help="MVM input bits (default 4)")
    c.add_argument("--out-bits", type=int, default=8, help="neuron output bits (default 8)")
    c.add_argument("--w-percentile", type=float, default=100.0, metavar="P",
                   help="map the P-th percentile of |W| to g_max (default 100: max|W|)")
    c.add_argument("--calibrate", metavar="X.npy", help="a batch of model inputs: per-layer "
                   "input scales and ADC ranges from the float model's activations on it")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.set_defaults(func=cmd_compile)

    r = sub.add_parser("run", help="run a compiled image on a batch of inputs")
    r.add_argument("image", help="image folder")
    r.add_argument("--input", required=True, metavar="X.npy",
                   help="batch of inputs in the model's input shape (N, ...)")
    r.add_argument("--out", required=True, metavar="Y.npy", help="batch of outputs to write")
    r.add_argument("--backend", choices=("golden", "rtl"), default="golden",
                   help="golden chip model (default) or the generated RTL in Verilator")
    r.add_argument("--ideal", action="store_true",
                   help="no non-idealities: only the quantisation of inputs, weights, outputs")
    r.add_argument("--seed", type=int, default=0, help="seed of programming and read noise")
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("inspect", help="validate an image and summarise it")
    i.add_argument("image", help="image folder")
    i.set_defaults(func=cmd_inspect)


def _config(args):
    from cimflow.config import CoreConfig, preset

    return CoreConfig.load(args.config) if args.config else preset(args.preset or "full")


def cmd_compile(args) -> int:
    from .compiler import compile_model
    from .defects import load_defects
    from .image import write_image
    from .matrices import MatrixOptions
    from .report import core_table, layer_table, summary

    cfg = _config(args)
    t0 = time.perf_counter()
    say = (lambda _: None) if args.quiet else (lambda s: print(f"  {s}", flush=True))
    defects = load_defects(args.defects, cfg, args.cores) if args.defects else None
    opts = MatrixOptions(in_bits=args.in_bits, out_bits=args.out_bits,
                         w_percentile=args.w_percentile)
    cal = _load_batch(args.calibrate, "calibration inputs") if args.calibrate else None
    cm = compile_model(args.model, cfg, args.cores, defects, opts, say, cal)
    t1 = time.perf_counter()
    path = write_image(cm, args.out)
    t2 = time.perf_counter()
    say(f"image written ({t2 - t1:.2f} s)")
    print(layer_table(cm))
    print(core_table(cm))
    print(summary(cm))
    print(f"wrote {path} (compile {t1 - t0:.2f} s, write {t2 - t1:.2f} s)")
    return 0


def _load_batch(path: str, what: str):
    import numpy as np

    from cimflow.cli import UsageError

    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{what}: {path} does not exist") from None
    except (ValueError, OSError, EOFError) as e:
        text = str(e).strip().splitlines()
        raise UsageError(f"{what}: {path} is not a .npy array ({text[0] if text else e})"
                         ) from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise UsageError(f"{what}: {path} holds {getattr(x, 'dtype', type(x))}, not numbers")
    return x


def cmd_run(args) -> int:
    import io

    import numpy as np

    from cimflow.atomic import write_atomic
    from cimflow.cli import UsageError, check_seed

    from .image_read import read_image
    from .runtime import GoldenChip, RunError, check_batch, run_model

    say = (lambda _: None) if args.quiet else (lambda s: print(f"  {s}", file=sys.stderr,
                                                               flush=True))
    check_seed(args.seed)
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name a .npy file")
    cm = read_image(args.image)
    x = _load_batch(args.input, "input")
    t0 = time.perf_counter()
    try:
        x = check_batch(cm, x)
        if args.backend == "rtl":
            from cimflow.verif.tb_compiled import run_rtl

            if not args.ideal:
                say("the RTL core is ideal (its macro has no non-idealities): --ideal implied")
            y, fig = run_rtl(args.image, x, progress=say)
            say(f"RTL: {fig.get('mvms', 0)} MVMs, {fig.get('cells_loaded', 0):,} cells loaded "
                f"through the programming interface, {fig.get('cycles', 0):,} clocks; codes "
                f"equal the golden chip's")
        else:
            chip = GoldenChip(cm, args.ideal, args.seed, progress=say)
            say(f"programmed {len(cm.targets)} cores "
                f"({'ideal' if args.ideal else 'non-ideal'}, {time.perf_counter() - t0:.1f} s)")
            chunk = 256
            parts = []
            for i in range(0, max(len(x), 1), chunk):
                parts.append(run_model(cm, x[i:i + chunk], chip=chip))
                if len(x) > chunk:
                    say(f"run: {min(i + chunk, len(x))}/{len(x)} inputs")
            y = np.concatenate(parts)
    except RunError as e:
        raise UsageError(str(e)) from None
    buf = io.BytesIO()
    np.save(buf, y, allow_pickle=False)
    write_atomic(out, buf.getvalue())
    dt = time.perf_counter() - t0
    print(f"wrote {out}: {y.shape[0]} outputs of shape {tuple(y.shape[1:])} on the "
          f"{args.backend} backend{' (ideal)' if args.ideal or args.backend == 'rtl' else ''} in "
          f"{dt:.2f} s "
          f"({y.shape[0] / dt:.1f} inferences/s)")
    return 0


def cmd_inspect(args) -> int:
    from .image_read import read_image
    from .report import core_table, latency_table, layer_table, summary

    cm = read_image(args.image)
    src = cm.source
    print(f"image {args.image}: from {src.get('file', '?')} ({src.get('format', '?')}), "
          f"core {cm.config.rows} x {cm.config.cols}, {cm.placement.n_cores} cores")
    print(layer_table(cm))
    print(core_table(cm))
    print(summary(cm))
    print(latency_table(cm))
    sys.stdout.flush()
    return 0
