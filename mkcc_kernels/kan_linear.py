"""``KANLinear``, a drop-in for efficient-kan's layer (same parameters, buffers and state dicts),
with per-feature knots, ``update_grid`` and ``regularization_loss``; the ``KAN`` stack; the
functional ``kan_linear``. The math is ``shared/KAN_LINEAR_SPEC.md``'s:

    y = silu(x) @ base_weight^T + sum_{i, j} scaled_spline_weight[o, i, j] * B_{i, j}(x_i)

with ``B_{i, j}`` the order-K B-splines on feature i's own knot vector ``grid[i]`` (uniform at
first, data-adaptive after ``update_grid``). Backends: ``cpu`` (the fused C++ kernels, float32
and float64), ``triton`` (the fused Triton kernels: CUDA tensors, float32/float16/bfloat16),
``reference`` (the expansion + one ``linear``, any device and floating dtype) and ``auto``
(``cpu`` or ``triton`` where they run, else ``reference``). The fused ops save only ``x``, the
weights and the grid for backward.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import backends
from .checks import (
    check_kan_linear_tensors,
    check_knots,
    grid_range_arg,
    int_arg,
    spline_order_arg,
)
from .reference import bspline_basis_on, kan_linear_reference, knots

LINEAR_BACKENDS = ("auto", "cpu", "triton", "reference")
_FUSED_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "triton": (torch.float32, torch.float16, torch.bfloat16),
}


def linear_backend_arg(backend: str) -> str:
    """``backend`` if it names a KANLinear backend."""
    if backend not in LINEAR_BACKENDS:
        raise ValueError(
            f"backend: KANLinear runs on {', '.join(map(repr, LINEAR_BACKENDS))}, got {backend!r}"
        )
    return backend


def resolve_linear_backend(backend: str, x: Tensor) -> str:
    """The concrete backend for ``x`` (device, dtype and build only: fixed at trace time)."""
    linear_backend_arg(backend)
    available = backends.available_backends(x.device, "linear")
    if backend == "auto":
        for fused in ("cpu", "triton"):
            if fused in available and x.dtype in _FUSED_DTYPES[fused]:
                return fused
        return "reference"
    if backend not in available:
        raise ValueError(
            f"backend: {backend!r} is not available for {x.device.type} tensors here; "
            f"available: {', '.join(map(repr, available))}"
        )
    if backend in _FUSED_DTYPES and x.dtype not in _FUSED_DTYPES[backend]:
        names = ", ".join(str(d).removeprefix("torch.") for d in _FUSED_DTYPES[backend])
        raise TypeError(
            f"x: backend {backend!r} supports {names}, got {x.dtype} (use backend='reference' "
            "for other dtypes)"
        )
    return backend


def uniform_grid(
    in_features: int,
    grid_size: int,
    spline_order: int,
    grid_range: tuple[float, float],
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """efficient-kan's initial grid: ``[in_features, G + 2K + 1]``, every row the uniform knots
    ``(m - K) * h + lo`` of ``reference.knots``."""
    dtype = dtype or torch.get_default_dtype()
    row = knots(grid_size, spline_order, grid_range, dtype, device)
    return row.expand(in_features, -1).contiguous()


def scaled_spline_weight(spline_weight: Tensor, spline_scaler: Tensor | None) -> Tensor:
    """``spline_weight * spline_scaler[..., None]`` (``spline_weight`` without a scaler)."""
    return spline_weight if spline_scaler is None else spline_weight * spline_scaler.unsqueeze(-1)


def kan_linear(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    grid: Tensor,
    spline_order: int = 3,
    spline_scaler: Tensor | None = None,
    backend: str = "auto",
) -> Tensor:
    """KANLinear as a function: ``x [..., in]`` -> ``[..., out]``.

    ``base_weight [out, in]``, ``spline_weight [out, in, G + K]``, ``grid [in, G + 2K + 1]``
    (non-decreasing finite knots per input feature), ``spline_scaler [out, in]`` or None (then
    ``spline_weight`` is used as it is). ``backend``: ``"auto"``, ``"cpu"``, ``"triton"`` or
    ``"reference"`` (``resolve_linear_backend``). The knots
    are checked in eager mode; under ``torch.compile`` (where that check would be a
    data-dependent branch) they are not, so set them through ``KANLinear``, which checks them
    whenever they change.
    """
    spline_order = spline_order_arg(spline_order)
    check_kan_linear_tensors(x, base_weight, spline_weight, grid, spline_order, spline_scaler)
    if not torch.compiler.is_compiling():
        check_knots(grid)
    backend = resolve_linear_backend(backend, x)
    flat = x.reshape(-1, x.shape[-1])
    if backend == "cpu":
        out = torch.ops.mkcc.kan_linear_fwd(
            flat, base_weight, spline_weight, spline_scaler, grid, spline_order
        )
    elif backend == "triton":
        out = torch.ops.mkcc.kan_linear_fwd_triton(
            flat, base_weight, spline_weight, spline_scaler, grid, spline_order
        )
    else:
        weight = scaled_spline_weight(spline_weight, spline_scaler)
        out = kan_linear_reference(flat, base_weight, weight, grid, spline_order)
    return out.view(*x.shape[:-1], base_weight.shape[0])


class KANLinear(nn.Module):
    """efficient-kan's ``KANLinear`` (same signature, parameter and buffer names and shapes, so
    its state dicts load) plus ``backend``, ``device`` and ``dtype``.

    Parameters ``base_weight [out, in]``, ``spline_weight [out, in, G + K]`` and, with
    ``enable_standalone_scale_spline``, ``spline_scaler [out, in]``; buffer ``grid
    [in, G + 2K + 1]``. Input ``[..., in]``, output ``[..., out]``.

    ``base_activation`` other than ``nn.SiLU`` runs the reference with that activation (the
    fused kernels compute silu only; asking for a fused backend with another activation is an
    error). One difference from efficient-kan, on
    purpose: ``update_grid`` keeps the layer's function when ``spline_scaler`` is not 1 (it
    stores the refitted coefficients divided by the scaler; efficient-kan stores them undivided,
    which scales its spline part by the scaler after every update).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        scale_noise: float = 0.1,
        scale_base: float = 1.0,
        scale_spline: float = 1.0,
        enable_standalone_scale_spline: bool = True,
        base_activation=nn.SiLU,
        grid_eps: float = 0.02,
        grid_range: Sequence[float] = (-1, 1),
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = int_arg("in_features", in_features, 1)
        self.out_features = int_arg("out_features", out_features, 1)
        self.grid_size = int_arg("grid_size", grid_size, 1)
        self.spline_order = spline_order_arg(spline_order)
        self.grid_range = grid_range_arg(grid_range)
        linear_backend_arg(backend)
        self.backend = backend
        self.scale_noise = scale_noise
        self.scale_base = scale_base
        self.scale_spline = scale_spline
        self.enable_standalone_scale_spline = enable_standalone_scale_spline
        self.base_activation = base_activation()
        if backend in _FUSED_DTYPES and not isinstance(self.base_activation, nn.SiLU):
            raise ValueError(
                f"backend: {backend!r} computes silu as the base activation; "
                f"{type(self.base_activation).__name__} runs on backend='reference' (or 'auto')"
            )
        self.grid_eps = grid_eps

        factory = {"device": device, "dtype": dtype}
        grid = uniform_grid(
            self.in_features, self.grid_size, self.spline_order, self.grid_range, dtype, device
        )
        self.register_buffer("grid", grid)
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.spline_weight = nn.Parameter(
            torch.empty(out_features, in_features, grid_size + spline_order, **factory)
        )
        if enable_standalone_scale_spline:
            self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.reset_parameters()

    @property
    def scaled_spline_weight(self) -> Tensor:
        return scaled_spline_weight(self.spline_weight, self._scaler())

    def _scaler(self) -> Tensor | None:
        return self.spline_scaler if self.enable_standalone_scale_spline else None

    def reset_parameters(self) -> None:
        """efficient-kan's initialization: Kaiming-uniform base weight (``a = sqrt(5) *
        scale_base``); spline coefficients fitted to noise ``(U[0, 1) - 1/2) * scale_noise / G``
        at the G + 1 interior knots (times ``scale_spline`` without a standalone scaler); the
        scaler Kaiming-uniform with ``a = sqrt(5) * scale_spline``."""
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * self.scale_base)
        with torch.no_grad():
            k = self.spline_order
            points = self.grid.T[k:-k]  # [G + 1, in]
            noise = (torch.rand(*points.shape, self.out_features, **self._factory()) - 0.5) * (
                self.scale_noise / self.grid_size
            )
            scale = 1.0 if self.enable_standalone_scale_spline else self.scale_spline
            self.spline_weight.copy_(scale * self.curve2coeff(points, noise))
            if self.enable_standalone_scale_spline:
                nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5) * self.scale_spline)

    def _factory(self) -> dict:
        return {"dtype": self.base_weight.dtype, "device": self.base_weight.device}

    def b_splines(self, x: Tensor) -> Tensor:
        """``B_{i, j}(x[:, i])`` on the layer's knots: ``x [N, in]`` -> ``[N, in, G + K]``."""
        self._check_input(x, 2)
        return bspline_basis_on(x, self.grid, self.spline_order)

    def curve2coeff(self, x: Tensor, y: Tensor) -> Tensor:
        """Spline coefficients ``[out, in, G + K]`` whose curves best fit ``y [N, in, out]`` at
        ``x [N, in]`` (least squares per input feature, ``torch.linalg.lstsq``)."""
        basis = self.b_splines(x).transpose(0, 1)  # [in, N, G + K]
        solution = torch.linalg.lstsq(basis, y.transpose(0, 1)).solution  # [in, G + K, out]
        return solution.permute(2, 0, 1).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if not isinstance(self.base_activation, nn.SiLU):
            flat = x.reshape(-1, self.in_features)
            out = kan_linear_reference(
                flat, self.base_weight, self.scaled_spline_weight, self.grid, self.spline_order,
                self.base_activation,
            )  # fmt: skip
            return out.view(*x.shape[:-1], self.out_features)
        return kan_linear(
            x, self.base_weight, self.spline_weight, self.grid, self.spline_order,
            self._scaler(), self.backend,
        )  # fmt: skip

    def _check_input(self, x: Tensor, dim: int | None = None) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if (dim is not None and x.dim() != dim) or x.dim() < 1 or x.shape[-1] != self.in_features:
            expected = "[N, in_features]" if dim == 2 else "[..., in_features]"
            raise ValueError(
                f"x: expected {expected} with in_features = {self.in_features}, got shape "
                f"{tuple(x.shape)}"
            )

    @torch.no_grad()
    def update_grid(self, x: Tensor, margin: float = 0.01) -> None:
        """efficient-kan's grid update on the samples ``x [..., in]``: per feature, knots mixed
        from the data's quantiles and a uniform grid over its range (``grid_eps``), extended by
        K knots each side, and the spline coefficients refitted by least squares so that the
        layer's function is kept."""
        self._check_input(x)
        x = x.reshape(-1, self.in_features).to(self.grid.dtype)
        batch = x.shape[0]
        if batch < 1:
            raise ValueError("x: update_grid needs at least one sample")
        # each feature's spline contributions before the update: [N, in, out]
        before = torch.einsum("nij,oij->nio", self.b_splines(x), self.scaled_spline_weight)
        x_sorted = torch.sort(x, dim=0).values
        index = torch.linspace(0, batch - 1, self.grid_size + 1, dtype=torch.float64)
        adaptive = x_sorted[index.to(torch.int64).to(x.device)]  # [G + 1, in]
        step = (x_sorted[-1] - x_sorted[0] + 2 * margin) / self.grid_size  # [in]
        steps = torch.arange(self.grid_size + 1, dtype=x.dtype, device=x.device).unsqueeze(1)
        uniform = steps * step + x_sorted[0] - margin
        grid = self.grid_eps * uniform + (1 - self.grid_eps) * adaptive
        k = self.spline_order
        below = torch.arange(k, 0, -1, dtype=x.dtype, device=x.device).unsqueeze(1)
        above = torch.arange(1, k + 1, dtype=x.dtype, device=x.device).unsqueeze(1)
        grid = torch.cat([grid[:1] - step * below, grid, grid[-1:] + step * above], dim=0)
        check_knots(grid.T, "x")
        self.grid.copy_(grid.T)
        fitted = self.curve2coeff(x, before)  # the scaled coefficients
        scaler = self._scaler()
        if scaler is not None:
            fitted = torch.where(scaler.unsqueeze(-1) == 0, 0.0, fitted / scaler.unsqueeze(-1))
        self.spline_weight.copy_(fitted)

    def regularization_loss(
        self, regularize_activation: float = 1.0, regularize_entropy: float = 1.0
    ) -> Tensor:
        """efficient-kan's stand-in for the KAN paper's L1 and entropy terms, on the mean
        absolute spline coefficient of each (output, input) pair (0 log 0 taken as 0)."""
        l1 = self.spline_weight.abs().mean(-1)
        activation = l1.sum()
        p = l1 / activation
        entropy = -torch.special.xlogy(p, p).sum()
        return regularize_activation * activation + regularize_entropy * entropy

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        grid = state_dict.get(prefix + "grid")
        if isinstance(grid, Tensor):
            expected = (self.in_features, self.grid_size + 2 * self.spline_order + 1)
            if tuple(grid.shape) != expected:
                raise ValueError(
                    f"grid: expected shape {list(expected)} ([in_features, grid_size + 2 * "
                    f"spline_order + 1]), got {tuple(grid.shape)} in the state dict"
                )
            check_knots(grid)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"grid_size={self.grid_size}, spline_order={self.spline_order}, "
            f"backend={self.backend!r}"
        )


class KAN(nn.Module):
    """efficient-kan's ``KAN``: ``KANLinear`` layers of widths ``layers_hidden`` (state dict keys
    ``layers.0.grid``, ...), every other keyword argument passed to each layer (``grid_size``,
    ``spline_order``, ``scale_noise``, ``scale_base``, ``scale_spline``, ``base_activation``,
    ``grid_eps``, ``grid_range``, and ``backend``, ``device``, ``dtype``).
    ``forward(x, update_grid=False)``: with ``update_grid`` each layer updates its grid on its
    own input first."""

    def __init__(self, layers_hidden: Sequence[int], **layer_options) -> None:
        super().__init__()
        widths = list(layers_hidden)
        if len(widths) < 2:
            raise ValueError(
                f"layers_hidden: expected at least two widths (inputs, outputs), got {widths}"
            )
        known = set(inspect.signature(KANLinear).parameters) - {"in_features", "out_features"}
        unknown = sorted(set(layer_options) - known)
        if unknown:
            raise TypeError(
                f"{unknown[0]}: not an argument of KANLinear (expected one of "
                f"{', '.join(sorted(known))})"
            )
        self.layers = nn.ModuleList(
            KANLinear(a, b, **layer_options) for a, b in zip(widths[:-1], widths[1:])
        )
        self.grid_size = self.layers[0].grid_size
        self.spline_order = self.layers[0].spline_order

    def forward(self, x: Tensor, update_grid: bool = False) -> Tensor:
        for layer in self.layers:
            if update_grid:
                layer.update_grid(x)
            x = layer(x)
        return x

    def regularization_loss(
        self, regularize_activation: float = 1.0, regularize_entropy: float = 1.0
    ) -> Tensor:
        return sum(
            layer.regularization_loss(regularize_activation, regularize_entropy)
            for layer in self.layers
        )
