"""Tests for course_lib.autograd: the scalar engine against torch, and the tensor tools."""

from __future__ import annotations

import math
import random

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from course_lib.autograd import (  # noqa: E402
    Value,
    embedding_grad,
    jacobian,
    numerical_gradient,
    topological_order,
    vjp,
)
from course_lib.measure import count_flops  # noqa: E402
from course_lib.notebook.graphs import draw_graph  # noqa: E402

N_LEAVES = 3


def random_tree(rng: random.Random, depth: int):
    """A random expression as nested tuples; leaves are variable indices or Python constants."""
    if depth == 0 or rng.random() < 0.2:
        return ("x", rng.randrange(N_LEAVES)) if rng.random() < 0.8 else ("c", rng.uniform(-2, 2))
    op = rng.choice(
        ["+", "-", "*", "/", "neg", "exp", "log", "tanh", "relu", "pow", "sqrt",
         "radd", "rsub", "rmul", "rdiv", "rpow", "vpow"]
    )
    if op in ("+", "-", "*", "/", "vpow"):
        return (op, random_tree(rng, depth - 1), random_tree(rng, depth - 1))
    return (op, random_tree(rng, depth - 1), rng.uniform(0.5, 2))


def evaluate(tree, leaves):
    """Evaluate a tree on Values or on 0-d tensors: both support the same operators and methods.

    Each operation is kept inside its domain (log of a*a + 1, division by b*b + 1, ...).
    """
    kind = tree[0]
    if kind == "x":
        return leaves[tree[1]]
    if kind == "c":
        return tree[1]
    a = as_node(evaluate(tree[1], leaves), leaves)
    if kind in ("+", "-", "*", "/", "vpow"):
        b = evaluate(tree[2], leaves)  # a Python number is fine on the right of these
        if kind == "+":
            return a + b
        if kind == "-":
            return a - b
        if kind == "*":
            return a * b
        if kind == "/":
            return a / (b * b + 1)
        return (a * a + 1) ** as_node(b, leaves).tanh()
    c = tree[2]
    return {
        "neg": lambda: -a,
        "exp": lambda: a.tanh().exp(),
        "log": lambda: (a * a + 1).log(),
        "tanh": lambda: a.tanh(),
        "relu": lambda: a.relu(),
        "pow": lambda: a ** round(c * 2),
        "sqrt": lambda: (a * a + c) ** 0.5,
        "radd": lambda: c + a,
        "rsub": lambda: c - a,
        "rmul": lambda: c * a,
        "rdiv": lambda: c / (a * a + 1),
        "rpow": lambda: c ** a.tanh(),
    }[kind]()


def as_node(x, leaves):
    """A constant becomes a graph node (constant + 0 * leaf), so that methods like .exp() apply."""
    return x + 0 * leaves[0] if isinstance(x, float) else x


def close(a: float, b: float) -> bool:
    """Relative error below 1e-6 (with a 1e-12 floor for values that cancel to ~0)."""
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) + 1e-12


def test_value_gradients_match_torch_on_random_expressions():
    rng = random.Random(0)
    for _ in range(300):
        tree = random_tree(rng, depth=4)
        data = [rng.uniform(-2, 2) for _ in range(N_LEAVES)]
        values = [Value(d) for d in data]
        tensors = [torch.tensor(d, dtype=torch.float64, requires_grad=True) for d in data]
        out_value, out_tensor = as_node(evaluate(tree, values), values), as_node(evaluate(tree, tensors), tensors)
        out_value.backward()
        out_tensor.backward()
        assert close(out_value.data, out_tensor.item()), tree
        for v, t in zip(values, tensors):
            expected = 0.0 if t.grad is None else t.grad.item()  # None: the leaf is not used
            assert close(v.grad, expected), (tree, v.grad, expected)


def test_value_gradients_match_finite_differences():
    rng = random.Random(1)
    for _ in range(30):
        tree = random_tree(rng, depth=3)
        x = torch.tensor([rng.uniform(-2, 2) for _ in range(N_LEAVES)], dtype=torch.float64)
        values = [Value(d) for d in x.tolist()]
        as_node(evaluate(tree, values), values).backward()
        numeric = numerical_gradient(lambda t, tree=tree: as_node(evaluate(tree, list(t)), list(t)), x)
        for v, g in zip(values, numeric.tolist()):
            assert abs(v.grad - g) <= 1e-6 * max(abs(g), 1.0), (tree, v.grad, g)


def test_worked_example_by_hand():
    # f = (a * b + c) ** 2 at a=2, b=-3, c=10: f = 16, df/da = 2*4*b, df/db = 2*4*a, df/dc = 2*4.
    a, b, c = Value(2.0), Value(-3.0), Value(10.0)
    f = (a * b + c) ** 2
    f.backward()
    assert f.data == 16.0
    assert (a.grad, b.grad, c.grad) == (-24.0, 16.0, 8.0)


def test_node_used_twice_accumulates():
    a = Value(3.0)
    (a + a).backward()
    assert a.grad == 2.0
    b = Value(3.0)
    (b * b).backward()
    assert b.grad == 6.0
    c = Value(0.5)
    d = c.tanh()
    (d * d + d).backward()  # d reaches the output along two paths
    assert close(c.grad, (2 * d.data + 1) * (1 - d.data**2))


def test_backward_twice_accumulates_like_torch():
    a = Value(2.0)
    f = a * a
    f.backward()
    f.backward()
    assert a.grad == 8.0


def test_backward_twice_accumulates_like_torch_through_inner_nodes():
    a, b = Value(2.0), Value(-1.5)
    f = ((a * 3) * b + a).tanh() * 4  # depth > 1: inner nodes must not send their old gradient again
    a_t, b_t = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (2.0, -1.5))
    f_t = ((a_t * 3) * b_t + a_t).tanh() * 4
    for _ in range(2):
        f.backward()
        f_t.backward(retain_graph=True)
    assert close(a.grad, a_t.grad.item()) and close(b.grad, b_t.grad.item())


def _graph_and_its_torch_twin():
    """f = tanh(a * b + a) * 3 as Values and as float64 tensors, with the inner node h = a * b + a."""
    a, b = Value(0.7), Value(-1.2)
    h = a * b + a
    f = h.tanh() * 3
    a_t, b_t = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.7, -1.2))
    f_t = (a_t * b_t + a_t).tanh() * 3
    return (a, b, h, f), (a_t, b_t, f_t)


@pytest.mark.parametrize("run", [Value.backward, lambda f: list(f.backward_steps())],
                         ids=["backward", "backward_steps"])
def test_two_passes_double_the_leaves_and_keep_inner_nodes_at_one_pass(run):
    (a, b, h, f), (a_t, b_t, f_t) = _graph_and_its_torch_twin()
    run(f)
    once = (a.grad, b.grad, h.grad)
    run(f)  # backward_steps consumed twice must behave like backward called twice
    for _ in range(2):
        f_t.backward(retain_graph=True)
    assert close(a.grad, a_t.grad.item()) and close(b.grad, b_t.grad.item())  # torch accumulates: 2x
    assert close(a.grad, 2 * once[0]) and close(b.grad, 2 * once[1])
    assert h.grad == once[2] and f.grad == 1.0  # inner nodes and the root: this pass's gradient only
    assert close(h.grad, 3 * (1 - math.tanh(h.data) ** 2))


def test_a_leaf_used_as_the_root_accumulates_like_torch():
    x, x_t = Value(3.0), torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    for _ in range(2):
        x.backward()
        x_t.backward()
    assert x.grad == x_t.grad.item() == 2.0
    y = Value(3.0)
    list(y.backward_steps())
    assert [node for node in y.backward_steps()] == [y] and y.grad == 2.0


def test_pow_derivative_at_a_zero_base_matches_torch():
    for exponent in (0, 0.5, 1, 2, 3.5):
        x = Value(0.0)
        (x**exponent).backward()
        x_t = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
        (x_t**exponent).backward()
        assert x.grad == x_t.grad.item(), exponent


def test_numbers_and_reflected_operators():
    x = Value(2.0)
    cases = [
        (x + 1, 3.0, 1.0), (1 + x, 3.0, 1.0), (x - 1, 1.0, 1.0), (5 - x, 3.0, -1.0),
        (3 * x, 6.0, 3.0), (x * 3, 6.0, 3.0), (x / 4, 0.5, 0.25), (4 / x, 2.0, -1.0),
        (x**3, 8.0, 12.0), (2**x, 4.0, 4.0 * math.log(2)), (-x, -2.0, -1.0),
        (x ** Value(2.0), 4.0, 4.0),
    ]
    for out, data, grad in cases:
        x.grad = 0.0
        out.backward()
        assert close(out.data, data) and close(x.grad, grad), (out, data, grad)


def test_relu_derivative_at_zero_is_zero_like_torch():
    v = Value(0.0)
    v.relu().backward()
    t = torch.tensor(0.0, requires_grad=True)
    t.relu().backward()
    assert v.grad == t.grad.item() == 0.0


def test_backward_steps_order_and_result():
    a, b = Value(1.5, label="a"), Value(-0.5, label="b")
    f = (a * b).tanh() + a
    steps = list(f.backward_steps())
    assert steps[0] is f
    assert set(steps) == set(topological_order(f))
    position = {id(node): i for i, node in enumerate(steps)}
    for node in steps:
        for child in node._children:
            assert position[id(child)] > position[id(node)]  # consumers are visited first
    grads = (a.grad, b.grad)
    a2, b2 = Value(1.5), Value(-0.5)
    ((a2 * b2).tanh() + a2).backward()
    assert grads == (a2.grad, b2.grad)


def test_topological_order_inputs_first_and_deep_graph():
    x = Value(0.0)
    node = x
    for _ in range(5000):  # deeper than Python's recursion limit
        node = node + 1
    order = topological_order(node)
    assert order[0] is x and order[-1] is node and len(order) == 10001  # 5000 constants too
    node.backward()
    assert x.grad == 1.0


def test_draw_graph_one_box_per_node():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    f = a * b + a
    f.backward()
    ax = draw_graph(f, highlight=a)
    texts = [t.get_text() for t in ax.texts if t.get_text()]  # arrows are empty annotations
    assert len(texts) == len(topological_order(f)) == 4  # a, b, a * b, a * b + a
    assert any(t.startswith("a\ndata 2\ngrad -2") for t in texts)
    assert any(t.startswith("+\ndata -4\ngrad 1") for t in texts)
    plt.close("all")
    with pytest.raises(TypeError, match="root must be a Value, got float"):
        draw_graph(1.0)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Value("1"), TypeError, "data must be an int or float, got str"),
        (lambda: Value(-1.0).log(), ValueError, r"log needs a positive argument, got -1.0"),
        (lambda: Value(-2.0) ** 0.5, ValueError, "negative base"),
        (lambda: (-2) ** Value(1.0), ValueError, "positive base, got -2"),
        (lambda: Value(-2.0) ** Value(2.0), ValueError, "log needs a positive argument"),
        (lambda: Value(1.0) + "a", TypeError, "unsupported operand"),
        (lambda: 1 / Value(0.0), ZeroDivisionError, None),
    ],
)
def test_value_bad_input(build, error, message):
    with pytest.raises(error, match=message):
        build()


def tensor_function(x: torch.Tensor) -> torch.Tensor:
    return (x.sin() * x.roll(1, dims=-1)).sum() + (x**2).logsumexp(dim=-1).sum()


def test_numerical_gradient_matches_autograd():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    numeric = numerical_gradient(tensor_function, x)
    x_leaf = x.clone().requires_grad_(True)
    tensor_function(x_leaf).backward()
    torch.testing.assert_close(numeric, x_leaf.grad, rtol=1e-6, atol=1e-8)
    assert not x.requires_grad  # the input is left alone
    transposed = numerical_gradient(tensor_function, x.T.contiguous().T)  # non-contiguous input
    torch.testing.assert_close(transposed, numeric)


def test_numerical_gradient_bad_input():
    x = torch.randn(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="eps must be positive, got 0.0"):
        numerical_gradient(tensor_function, x, eps=0)
    with pytest.raises(TypeError, match="eps must be a real number, got str '1e-6'"):
        numerical_gradient(tensor_function, x, eps="1e-6")
    with pytest.raises(ValueError, match=r"f must return a tensor with one element, got \(3,\)"):
        numerical_gradient(lambda t: t * 2, x)
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got dtype torch.int64"):
        numerical_gradient(tensor_function, torch.arange(3))


FUNCTIONS = {
    "elementwise": lambda x: torch.tanh(x) * x,
    "matmul": lambda x: x @ torch.arange(12.0, dtype=x.dtype).view(4, 3),
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "layer_norm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "scalar": lambda x: (x**3).sum(),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jacobian_matches_torch(name):
    f = FUNCTIONS[name]
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    J = jacobian(f, x)
    assert J.shape == f(x).shape + x.shape
    torch.testing.assert_close(J, torch.autograd.functional.jacobian(f, x))


def test_softmax_jacobian_is_diag_minus_outer():
    z = torch.randn(5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = torch.softmax(z, dim=0)
    J = jacobian(lambda t: torch.softmax(t, dim=0), z)
    torch.testing.assert_close(J, torch.diag(s) - torch.outer(s, s))
    torch.testing.assert_close(J.sum(dim=1), torch.zeros(5, dtype=torch.float64))


def test_layer_norm_jacobian_maps_ones_to_zero():
    x = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    J = jacobian(lambda t: F.layer_norm(t, (6,)), x)  # (6, 6)
    torch.testing.assert_close(J @ torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vjp_matches_torch_and_v_transpose_j(name):
    f = FUNCTIONS[name]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, generator=g, dtype=torch.float64)
    y = f(x)
    v = torch.randn(y.shape, generator=g, dtype=torch.float64)
    result = vjp(f, x, v)
    assert result.shape == x.shape
    torch.testing.assert_close(result, torch.autograd.functional.vjp(f, x, v)[1])
    J = jacobian(f, x).reshape(y.numel(), x.numel())  # (m, n)
    torch.testing.assert_close(result, (v.reshape(1, -1) @ J).view(x.shape))


def test_vjp_and_jacobian_of_a_constant_function_are_zero():
    x = torch.randn(3, dtype=torch.float64)
    constant = lambda t: torch.ones(2, dtype=t.dtype)  # noqa: E731
    assert torch.equal(vjp(constant, x, torch.ones(2)), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(jacobian(constant, x), torch.zeros(2, 3, dtype=torch.float64))


def test_vjp_and_jacobian_bad_input():
    x = torch.randn(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"v must be a tensor of the output's shape \(3,\), got \(2,\)"):
        vjp(torch.sin, x, torch.ones(2))
    with pytest.raises(TypeError, match="v must be a torch.Tensor, got list"):
        vjp(torch.sin, x, [1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="f must return a torch.Tensor, got float"):
        jacobian(lambda t: 1.0, x)
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        jacobian(torch.sin, [1.0, 2.0])


def test_embedding_grad_matches_autograd_sparse_and_accumulates():
    g = torch.Generator().manual_seed(5)
    V, D = 10, 4
    E = torch.randn(V, D, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[1, 3, 3], [7, 1, 3]])
    upstream = torch.randn(2, 3, D, generator=g, dtype=torch.float64)
    (F.embedding(ids, E) * upstream).sum().backward()
    grad = embedding_grad(ids, upstream, V)
    torch.testing.assert_close(grad, E.grad)
    absent = [t for t in range(V) if t not in (1, 3, 7)]
    assert torch.all(grad[absent] == 0)
    torch.testing.assert_close(grad[3], upstream[0, 1] + upstream[0, 2] + upstream[1, 2])
    one_hot = F.one_hot(ids, V).to(torch.float64)  # (2, 3, V)
    torch.testing.assert_close(grad, one_hot.reshape(-1, V).T @ upstream.reshape(-1, D))


@pytest.mark.parametrize(
    ("ids", "grad_output", "V", "error", "message"),
    [
        (torch.tensor([0.0, 1.0]), torch.zeros(2, 3), 4, TypeError, "ids must be an integer tensor, got dtype"),
        ([0, 1], torch.zeros(2, 3), 4, TypeError, "ids must be a torch.Tensor, got list"),
        (torch.tensor([0, 1]), torch.zeros(2, 3, dtype=torch.long), 4, TypeError,
         "grad_output must be a floating-point tensor"),
        (torch.tensor([0, 1]), torch.zeros(3, 3), 4, ValueError, r"grad_output must have shape ids.shape \+ \(D,\)"),
        (torch.tensor([0, 4]), torch.zeros(2, 3), 4, ValueError, r"ids must lie in \[0, num_embeddings\) = \[0, 4\)"),
        (torch.tensor([0, 1]), torch.zeros(2, 3), 0, ValueError, "num_embeddings must be a positive integer, got 0"),
        (torch.tensor([0, 1]), torch.zeros(2, 3), 4.0, TypeError, "num_embeddings must be an integer, got float 4.0"),
    ],
)
def test_embedding_grad_bad_input(ids, grad_output, V, error, message):
    with pytest.raises(error, match=message):
        embedding_grad(ids, grad_output, V)


def test_embedding_grad_accepts_a_numpy_integer_size():
    ids, upstream = torch.tensor([[0, 2], [2, 2]]), torch.randn(2, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(embedding_grad(ids, upstream, np.int64(5)), embedding_grad(ids, upstream, 5))


def test_count_flops_of_linear_layers_forward_and_backward():
    B, d_in, d_hidden, d_out = 5, 3, 7, 2
    mlp = torch.nn.Sequential(torch.nn.Linear(d_in, d_hidden), torch.nn.Tanh(), torch.nn.Linear(d_hidden, d_out))
    x = torch.randn(B, d_in)
    weights = d_in * d_hidden + d_hidden * d_out
    assert count_flops(lambda: mlp(x)) == 2 * B * weights  # one multiply-add per weight per example
    loss = mlp(x).sum()
    # backward: dL/dW for both layers, dL/dh for the second only (x needs no gradient)
    assert count_flops(loss.backward) == 4 * B * weights - 2 * B * d_in * d_hidden
    x.requires_grad_(True)
    loss = mlp(x).sum()
    assert count_flops(loss.backward) == 4 * B * weights  # with dL/dx: exactly twice the forward
    assert count_flops(lambda: torch.tanh(x)) == 0  # elementwise work is not counted


def test_count_flops_of_vjp_and_jacobian():
    W = torch.randn(4, 6, dtype=torch.float64)
    f = lambda t: torch.tanh(t @ W)  # noqa: E731
    x = torch.randn(3, 4, dtype=torch.float64)
    forward = count_flops(lambda: f(x))
    assert forward == 2 * 3 * 4 * 6
    assert count_flops(lambda: vjp(f, x, torch.ones(3, 6, dtype=torch.float64))) == 2 * forward
    assert count_flops(lambda: jacobian(f, x)) == forward + 18 * forward  # one backward pass per output


def test_count_flops_bad_input():
    with pytest.raises(TypeError, match="fn must be callable with no arguments, got int"):
        count_flops(3)
