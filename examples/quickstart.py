"""A first look at jitorch: tensors, autograd, and a model fitted by gradient descent.

Run: python examples/quickstart.py
"""
import time

import jitorch as torch

torch.manual_seed(0)

# Tensors behave like torch's: broadcasting, views, dtypes, reductions.
x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
print("x =", x)
print("x.T @ x =", x.T @ x)
print("softmax over rows:", x.softmax(dim=1))

# Autograd records every op and differentiates through it.
w = torch.randn(4, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
true_w = torch.tensor([[2.0], [-1.0], [0.5], [3.0]])
data = torch.randn(256, 4)
target = data @ true_w + 0.7

t0 = time.perf_counter()
for step in range(200):
    pred = data @ w + b
    loss = ((pred - target) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
        b -= 0.1 * b.grad
    w.grad = None
    b.grad = None
    if step % 50 == 0:
        print(f"step {step:3d}  loss {loss.item():.6f}")
print(f"fitted w = {w.detach().reshape(-1).tolist()}, b = {b.item():.4f}  "
      f"({time.perf_counter() - t0:.2f} s for 200 steps)")
