"""The `cimflow compile` and `cimflow inspect` subcommands.

Registered by :mod:`cimflow.cli` with one call, so the compiler's options live next to
the compiler. Errors are :class:`CompileError` / :class:`ImageError` (``ValueError``s),
which the main program prints as one ``cimflow: error: ...`` line with exit status 2.
"""

from __future__ import annotations

import sys
import time

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
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.set_defaults(func=cmd_compile)

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
    cm = compile_model(args.model, cfg, args.cores, defects, opts, say)
    t1 = time.perf_counter()
    path = write_image(cm, args.out)
    t2 = time.perf_counter()
    say(f"image written ({t2 - t1:.2f} s)")
    print(layer_table(cm))
    print(core_table(cm))
    print(summary(cm))
    print(f"wrote {path} (compile {t1 - t0:.2f} s, write {t2 - t1:.2f} s)")
    return 0


def cmd_inspect(args) -> int:
    from .image_read import read_image
    from .report import core_table, layer_table, summary

    cm = read_image(args.image)
    src = cm.source
    print(f"image {args.image}: from {src.get('file', '?')} ({src.get('format', '?')}), "
          f"core {cm.config.rows} x {cm.config.cols}, {cm.placement.n_cores} cores")
    print(layer_table(cm))
    print(core_table(cm))
    print(summary(cm))
    sys.stdout.flush()
    return 0
