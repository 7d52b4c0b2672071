"""Training-epoch time of one process against data-parallel processes (torchrun).

CPU (gloo): ``python benchmarks/ddp_epoch.py`` compares, alternating, ``--repeats`` times:
one process with all the machine's cores, one process with one core, and ``--nproc`` processes
with one core each. GPU (NCCL): ``python benchmarks/ddp_epoch.py --gpus=N`` compares one GPU
with N GPUs. Each run trains ``--epochs`` epochs without validation; the epoch time of a run is
the median of its epochs after the first (warm-up). Prints the CPU or GPU model and a Markdown
table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from recbole_ext.distributed import free_port  # noqa: E402  (the package's rendezvous port helper)

EPOCH = re.compile(r"epoch (\d+) training \[time: ([0-9.]+)s")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_once(args, nproc: int, threads: int, gpu: bool) -> float:
    """Median epoch seconds (epochs after the first) of one training run (in a temporary
    folder, removed after)."""
    with tempfile.TemporaryDirectory(prefix="ddp-bench-") as work:
        return _run_in(work, args, nproc, threads, gpu)


def _run_in(work: str, args, nproc: int, threads: int, gpu: bool) -> float:
    launcher = (
        []
        if nproc == 1
        else ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={free_port()}"]
    )
    cmd = [
        sys.executable,
        *launcher,
        os.path.join(ROOT, "run_recbole_ext.py"),
        f"--model={args.model}",
        f"--dataset={args.dataset}",
        f"--epochs={args.epochs}",
        f"--eval_step={args.epochs + 1}",
        f"--train_batch_size={args.batch}",
        "--show_progress=False",
        "--no-save",
        f"--gpu_id={','.join(str(i) for i in range(nproc)) if gpu else ''}",
        *args.extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=ROOT)
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(cmd)}):\n{out.stderr[-2000:]}")
    (log,) = glob.glob(os.path.join(work, "log", "*", "*.log"))
    times = [float(t) for e, t in EPOCH.findall(open(log).read()) if int(e) > 0]
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="SASRec")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=2048, help="global training batch (split across ranks)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--nproc", type=int, default=2, help="CPU: data-parallel processes")
    p.add_argument("--gpus", type=int, default=0, help="GPU: compare 1 GPU with this many")
    args, args.extra = p.parse_known_args()
    cores = os.cpu_count() or 1
    if args.gpus:
        import torch

        setups = [("1 GPU", 1, max(1, cores // 2), True), (f"{args.gpus} GPUs (NCCL)", args.gpus, 1, True)]
        hardware = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, CPU {cpu_model()}"
    else:
        setups = [
            (f"1 process, {cores} threads", 1, cores, False),
            ("1 process, 1 thread", 1, 1, False),
            (f"{args.nproc} processes (gloo), 1 thread each", args.nproc, 1, False),
        ]
        hardware = f"{cpu_model()}, {cores} cores"
    times = {name: [] for name, *_ in setups}
    for _ in range(args.repeats):  # alternating, so drift in machine load hits every setup alike
        for name, nproc, threads, gpu in setups:
            times[name].append(run_once(args, nproc, threads, gpu))
    base = statistics.median(times[setups[0][0]])
    print(
        f"{args.model} on {args.dataset}, global batch {args.batch}, {args.epochs} epochs per run "
        f"(median of epochs after the first), {args.repeats} alternating repeats; {hardware}\n"
    )
    print("| setup | epoch s (median) | all repeats | vs first row |\n|---|---:|---|---:|")
    for name, *_ in setups:
        med = statistics.median(times[name])
        print(f"| {name} | {med:.2f} | {', '.join(f'{t:.2f}' for t in times[name])} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
