"""Static cost of the fused KANConv1d kernels at bench's GPU shapes, and the time floors they
imply on an H100 (or H200, A100) from the published peak rates, so that a measured time reads at
once as a fraction of its floor.

    python -m bench.gpu_costs              # the table for bench's GPU set, markdown

Per pass (forward, input gradient ``dx``, weight gradient ``dW``):
- useful multiply-adds: per (output, input channel, tap) the silu term and the K + 1 non-zero
  basis functions, ``K + 2`` (the same count for each pass);
- issued multiply-adds: what the Triton kernels' dots compute as launched (tiles padded to whole
  blocks, features padded to 16, every basis function including the zero ones), read from the
  op planners' own launch records;
- minimal HBM bytes: every tensor the pass must read or write, once;
- floors: the useful work at the dtype's peak (tensor cores for TF32/fp16/bf16, CUDA cores for
  IEEE fp32) or the bytes at the HBM bandwidth, whichever is longer ("floor"), and the same with
  the issued work ("kernel floor").

Peak rates, dense (no 2:4 sparsity), from NVIDIA's datasheets: H100 SXM5 bf16/fp16 tensor
989.4 TFLOP/s, TF32 tensor 494.7, fp32 CUDA-core 66.9, HBM3 3.35 TB/s; H200 SXM the same compute
with HBM3e 4.8 TB/s; A100 SXM 80 GB bf16/fp16 312, TF32 156, fp32 19.5, HBM2e 2.039 TB/s.
"""

from __future__ import annotations

import argparse
import inspect
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Peaks:
    """Dense peak rates: FLOP/s (2 per multiply-add) and bytes/s."""

    name: str
    tensor_16bit: float
    tensor_tf32: float
    fp32: float
    hbm: float

    def compute_rate(self, dtype: torch.dtype, tf32: bool) -> float:
        if dtype in (torch.float16, torch.bfloat16):
            return self.tensor_16bit
        return self.tensor_tf32 if tf32 else self.fp32


H100 = Peaks("H100 SXM", 989.4e12, 494.7e12, 66.9e12, 3.35e12)
H200 = Peaks("H200 SXM", 989.4e12, 494.7e12, 66.9e12, 4.8e12)
A100 = Peaks("A100 SXM", 312e12, 156e12, 19.5e12, 2.039e12)


def peaks_for(device_name: str) -> Peaks | None:
    """The peak table of a device by its name (``torch.cuda.get_device_name()``), or None."""
    for key, peaks in (("H200", H200), ("H100", H100), ("A100", A100)):
        if key in device_name:
            return peaks
    return None


@dataclass
class PassCost:
    shape: tuple[int, int, int, int, int]
    dtype: torch.dtype
    tf32: bool
    kernel: str
    useful_macs: float
    issued_macs: float
    min_bytes: float

    def floor_s(self, peaks: Peaks, issued: bool = False) -> float:
        macs = self.issued_macs if issued else self.useful_macs
        compute = 2 * macs / peaks.compute_rate(self.dtype, self.tf32)
        return max(compute, self.min_bytes / peaks.hbm)


def pass_costs(
    shape: tuple[int, int, int, int, int],
    dtype: torch.dtype,
    tf32: bool = True,
    grid_size: int = 5,
    spline_order: int = 3,
) -> list[PassCost]:
    """Forward, input gradient and weight gradient of a ``padding="same"`` layer
    ``(B, C_in, C_out, T, k)``, as the Triton planners launch them."""
    from mkcc_kernels.gpu_resources import Layer, _recorded_launches

    batch, c_in, c_out, length, k = shape
    size = torch.empty((), dtype=dtype).element_size()
    useful = batch * length * c_out * c_in * k * (spline_order + 2)
    x_bytes = batch * c_in * length * size
    y_bytes = batch * c_out * length * size
    w_bytes = c_out * c_in * k * (1 + grid_size + spline_order) * size
    minimal = {
        "fwd": x_bytes + w_bytes + y_bytes,
        "dx": y_bytes + x_bytes + w_bytes + x_bytes,
        "dw": x_bytes + y_bytes + w_bytes,
    }
    layer = Layer(batch, c_in, c_out, length, k, padding="same", grid_size=grid_size)
    costs = []
    for launch in _recorded_launches(layer, dtype, spline_order, ieee=not tf32):
        costs.append(
            PassCost(
                shape, dtype, tf32, launch.name, useful, _issued_macs(launch), minimal[launch.name]
            )
        )
    return costs


def _issued_macs(launch) -> float:
    """Multiply-adds of the launch's dots: programs x (tile area x depth x steps)."""
    c = launch.constants
    programs = launch.grid[0]
    names = list(inspect.signature(launch.kernel.fn).parameters)
    arg = dict(zip(names, launch.args))
    depth = c["BLOCK_C"] * c["FEATURES"]
    if launch.name == "fwd":
        steps = arg["kernel_size"] * math.ceil(arg["in_per_group"] / c["BLOCK_C"])
        steps *= arg["feature_blocks"]
        return programs * c["BLOCK_N"] * c["BLOCK_M"] * depth * steps
    if launch.name == "dx":
        steps = arg["kernel_size"] * math.ceil(arg["out_per_group"] / c["BLOCK_O"])
        return programs * depth * c["BLOCK_M"] * c["BLOCK_O"] * steps
    rows = arg["rows_per_split"]
    return programs * depth * c["BLOCK_N"] * rows


def table(shapes, dtypes, peaks: Peaks) -> str:
    lines = [
        f"| shape (B, C_in, C_out, T, k) | precision | pass | useful GMAC | issued GMAC | "
        f"min MB | floor us ({peaks.name}) | floor bound by | kernel floor us |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dtype, tf32 in dtypes:
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
            dtype, "tf32" if tf32 else "ieee fp32"
        )
        for shape in shapes:
            for cost in pass_costs(shape, dtype, tf32):
                compute = 2 * cost.useful_macs / peaks.compute_rate(dtype, tf32)
                bound = "compute" if compute >= cost.min_bytes / peaks.hbm else "memory"
                lines.append(
                    f"| {shape} | {precision} | {cost.kernel} | {cost.useful_macs / 1e9:.3f} "
                    f"| {cost.issued_macs / 1e9:.3f} | {cost.min_bytes / 2**20:.2f} "
                    f"| {cost.floor_s(peaks) * 1e6:.1f} | {bound} "
                    f"| {cost.floor_s(peaks, issued=True) * 1e6:.1f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from bench.kan_bench import SHAPE_SETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="H100", choices=["H100", "H200", "A100"])
    args = parser.parse_args(argv)
    peaks = {"H100": H100, "H200": H200, "A100": A100}[args.device]
    dtypes = [(torch.float32, True), (torch.float32, False), (torch.bfloat16, True)]
    print(table(SHAPE_SETS["gpu"], dtypes, peaks))


if __name__ == "__main__":
    main()
