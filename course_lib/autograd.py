"""Reverse-mode automatic differentiation: a scalar engine and the tensor tools that check it.

`Value` is a scalar that records the operation that made it. `Value.backward` visits the recorded
graph in reverse topological order and applies the chain rule, each node adding its local
derivative times the gradient that reached it, so a node used twice accumulates both
contributions. `Value.backward_steps` does the same one node at a time, for drawing the graph
between steps with `course_lib.notebook.graphs.draw_graph`.

For tensor functions: `numerical_gradient` (central differences), `jacobian` and `vjp`. The
Jacobian is built the way reverse mode would have to build it, one vector-Jacobian product per
output element; backpropagation itself only ever needs the VJP. `embedding_grad` is the backward
pass of an embedding lookup written out by hand. (`course_lib.measure.count_flops` counts
the FLOPs of a forward or backward pass, to compare their costs.)

Left out: tensors in the engine (every `Value` is one Python float), higher-order derivatives,
forward mode, and functions beyond the few on `Value` (others, such as sigmoid, are compositions of
them). The derivative of ReLU at 0 is taken to be 0, as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from course_lib.validation import float_tensor, integer_tensor, positive_int, positive_number, tensor

__all__ = ["Value", "topological_order", "numerical_gradient", "vjp", "jacobian", "embedding_grad"]

Number = int | float


class Value:
    """A scalar in a computation graph: its value `data`, its gradient `grad`, how it was made."""

    def __init__(self, data: Number, label: str = "", _children: tuple[Value, ...] = (), _op: str = ""):
        if not isinstance(data, (int, float)):
            raise TypeError(f"data must be an int or float, got {type(data).__name__}")
        self.data = float(data)
        self.grad = 0.0
        self.label = label
        self._children = _children
        self._op = _op
        self._backward: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    @property
    def inputs(self) -> tuple[Value, ...]:
        """The nodes this one was computed from (empty for a leaf)."""
        return self._children

    @property
    def op(self) -> str:
        """The operation that made this node ("" for a leaf)."""
        return self._op

    # Binary operations: each builds the output node and the closure that sends its gradient back.

    def __add__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        out = Value(self.data + other.data, _children=(self, other), _op="+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        out = Value(self.data * other.data, _children=(self, other), _op="*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Value | Number) -> Value:
        """``self ** exponent``; a `Value` exponent needs a positive base (it goes through log)."""
        if isinstance(exponent, Value):
            return (exponent * self.log()).exp()
        if not isinstance(exponent, (int, float)):
            return NotImplemented
        if self.data < 0 and not float(exponent).is_integer():
            raise ValueError(f"a negative base ({self.data}) needs an integer exponent, got {exponent}")
        out = Value(self.data**exponent, _children=(self,), _op=f"**{exponent:g}")

        def _backward() -> None:
            self.grad += _pow_derivative(self.data, exponent) * out.grad

        out._backward = _backward
        return out

    # Unary functions.

    def exp(self) -> Value:
        out = Value(math.exp(self.data), _children=(self,), _op="exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log needs a positive argument, got {self.data}")
        out = Value(math.log(self.data), _children=(self,), _op="log")

        def _backward() -> None:
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), _children=(self,), _op="tanh")

        def _backward() -> None:
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """max(0, x); the derivative at exactly 0 is taken to be 0 (as in PyTorch)."""
        out = Value(max(0.0, self.data), _children=(self,), _op="relu")

        def _backward() -> None:
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    # Everything else is built from the operations above.

    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | Number) -> Value:
        return self * other**-1

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return -self + other

    def __rtruediv__(self, other: Number) -> Value:
        return self**-1 * other

    def __rpow__(self, base: Number) -> Value:
        """``base ** self`` for a positive Python number `base`."""
        if base <= 0:
            raise ValueError(f"base ** Value needs a positive base, got {base}")
        return (self * math.log(base)).exp()

    # Backpropagation.

    def backward(self) -> None:
        """Fill `.grad` of every node this one depends on with d(self)/d(node).

        Gradients add up on the leaves (nodes no operation made): calling `backward` twice on the
        same graph doubles their gradients, as in PyTorch. The other nodes' `.grad` is reset first,
        so it holds this pass's gradient only. Reset the leaves' `.grad` to start afresh.
        """
        for _ in self.backward_steps():
            pass

    def backward_steps(self) -> Iterator[Value]:
        """`backward` one node at a time: yields each node right after it sent its gradient back.

        Inner nodes start from 0; the root's gradient gets 1 added (d root/d root; a leaf root
        accumulates like any leaf). Nodes come in reverse topological order, so a node is visited
        only once every node that uses it has been.
        """
        order = topological_order(self)
        for node in order:
            if node._children:  # inner node: this pass's gradient only
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(order):
            node._backward()
            yield node


def _pow_derivative(base: float, exponent: Number) -> float:
    """d(base ** exponent)/d(base); at base 0 it is 0 for exponent 0 and +inf for 0 < exponent < 1."""
    if exponent == 0:
        return 0.0
    if base == 0 and exponent < 1:
        return math.inf
    return exponent * base ** (exponent - 1)


def _as_value(x: Value | Number) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, (int, float)):
        return Value(x)
    return NotImplemented


def topological_order(root: Value) -> list[Value]:
    """Every node `root` depends on, each after all of its inputs, ending with `root`."""
    order: list[Value] = []
    visited: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]  # iterative DFS: deep graphs need no recursion
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node._children))  # first input first
    return order


# Tensor functions.


def numerical_gradient(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central-difference gradient of a scalar function: ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps``.

    Costs two evaluations of `f` per element of `x` and has error O(eps^2) plus rounding error
    O(machine epsilon / eps): use float64 (eps around 1e-6) when comparing with autograd.
    """
    float_tensor(x, "x")
    eps = positive_number(eps, "eps")
    base = x.detach().clone(memory_format=torch.contiguous_format)
    grad = torch.empty_like(base)
    flat_x, flat_grad = base.view(-1), grad.view(-1)
    with torch.no_grad():
        for i in range(flat_x.numel()):
            original = flat_x[i].item()
            flat_x[i] = original + eps
            plus = _scalar_output(f(base))
            flat_x[i] = original - eps
            minus = _scalar_output(f(base))
            flat_x[i] = original
            flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def vjp(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The vector-Jacobian product ``v^T J`` of f at x, shape x.shape, from one backward pass.

    `v` has the shape of f(x). This is what backpropagation computes; J itself is never formed.
    """
    x, y = _forward(f, x)
    if tensor(v, "v").shape != y.shape:
        raise ValueError(f"v must be a tensor of the output's shape {tuple(y.shape)}, got {tuple(v.shape)}")
    return _vjp(y, x, v.to(y.dtype))


def jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The full Jacobian of f at x, shape f(x).shape + x.shape, as one VJP per output element.

    Row i is ``e_i^T J``: a full Jacobian costs as many backward passes as f has outputs, which is
    why reverse mode is used for scalar losses and never materialises J.
    """
    x, y = _forward(f, x)
    basis = torch.eye(y.numel(), dtype=y.dtype, device=y.device)  # (m, m)
    J = x.new_zeros(y.numel(), *x.shape)  # (m, *x.shape)
    for i, e in enumerate(basis):
        J[i] = _vjp(y, x, e.view(y.shape))  # row i: e_i^T J
    return J.view(*y.shape, *x.shape)  # f(x).shape + x.shape


def embedding_grad(ids: torch.Tensor, grad_output: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    """dL/dE for the lookup ``out = E[ids]`` given dL/dout: (num_embeddings, D).

    The lookup equals ``one_hot(ids) @ E``, so ``dL/dE = one_hot(ids)^T @ dL/dout``: row t is the
    sum of the output gradients at the positions holding token t, and exactly 0 for tokens that do
    not occur. Computed with a scatter-add rather than the one-hot product.
    """
    integer_tensor(ids, "ids")
    float_tensor(grad_output, "grad_output")
    num_embeddings = positive_int(num_embeddings, "num_embeddings")
    if grad_output.dim() == 0 or grad_output.shape[:-1] != ids.shape:
        raise ValueError(
            f"grad_output must have shape ids.shape + (D,) = {tuple(ids.shape)} + (D,), "
            f"got {tuple(grad_output.shape)}"
        )
    if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < num_embeddings):
        raise ValueError(f"ids must lie in [0, num_embeddings) = [0, {num_embeddings}), got values in "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    D = grad_output.shape[-1]
    grad = grad_output.new_zeros(num_embeddings, D)  # (V, D)
    return grad.index_add_(0, ids.reshape(-1), grad_output.reshape(-1, D))  # (V, D)


def _forward(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run f on a fresh leaf copy of x that requires grad; returns (leaf, output)."""
    float_tensor(x, "x")
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"f must return a torch.Tensor, got {type(y).__name__}")
    return x, y


def _vjp(y: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if not y.requires_grad:  # f ignores x: its Jacobian is zero
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(y, x, grad_outputs=v, retain_graph=True, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def _scalar_output(y: torch.Tensor) -> float:
    if not isinstance(y, torch.Tensor) or y.numel() != 1:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"f must return a tensor with one element, got {shape}")
    return y.item()
