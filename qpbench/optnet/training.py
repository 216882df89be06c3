"""One training loop for every OptNet experiment, recording a learning curve."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

Evaluate = Callable[[Tensor, Tensor, Tensor], dict[str, float]]  # (prediction, x, y) -> metrics


@dataclass
class Curve:
    """Per-epoch record; entry 0 is the untrained model (train_loss NaN there)."""

    name: str
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_metrics: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # cumulative training time

    def final(self) -> dict[str, float]:
        return {"test_loss": self.test_loss[-1], **self.test_metrics[-1]}

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def predict(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def train(
    name: str,
    model: nn.Module,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    evaluate: Evaluate | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Curve:
    """Adam on the mean squared error; evaluates on the test set before training and after
    each epoch. ``data`` is (train_x, train_y, test_x, test_y)."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    train_x, train_y, test_x, test_y = data
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    order = torch.Generator().manual_seed(seed)
    curve = Curve(name)
    elapsed = 0.0

    def record(epoch: int, train_loss: float) -> None:
        prediction = predict(model, test_x, batch_size)
        test_loss = float(loss_fn(prediction, test_y))
        metrics = evaluate(prediction, test_x, test_y) if evaluate else {}
        curve.epochs.append(epoch)
        curve.train_loss.append(train_loss)
        curve.test_loss.append(test_loss)
        curve.test_metrics.append(metrics)
        curve.seconds.append(elapsed)
        shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        log(f"[{name}] epoch {epoch:3d}  train loss {train_loss:.4g}  test loss {test_loss:.4g}  {shown}"
            f"  ({elapsed:.0f} s)")

    record(0, math.nan)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(train_x), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name}: loss became {float(loss)} in epoch {epoch}")
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        model.eval()
        elapsed += time.perf_counter() - start
        record(epoch, total / count)
    return curve


def batch_losses(
    model: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float, batch_size: int
) -> list[float]:
    """Loss of ``steps`` consecutive Adam steps on one fixed batch (used by the tests)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x[:batch_size]), y[:batch_size])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
