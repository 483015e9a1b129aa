"""nn.Module API: registration, traversal, state_dict, hooks, conversion, repr, containers."""
from __future__ import annotations

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from _nn_helpers import close, copy_weights, to_j

import jitorch
from jitorch import nn


class Net(nn.Module):
    def __init__(self, lib=nn):
        super().__init__()
        self.conv_like = lib.Linear(4, 8)
        self.block = lib.Sequential(lib.Linear(8, 8), lib.ReLU(), lib.BatchNorm1d(8))
        self.head = lib.Linear(8, 2, bias=False)
        self.register_buffer("scale", jitorch.ones(2) if lib is nn else __import__("torch").ones(2))
        self.register_buffer("scratch", jitorch.zeros(3) if lib is nn else __import__("torch").zeros(3),
                             persistent=False)

    def forward(self, x):
        return self.head(self.block(self.conv_like(x))) * self.scale


def _torch_net():
    torch = pytest.importorskip("torch")

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_like = torch.nn.Linear(4, 8)
            self.block = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.BatchNorm1d(8))
            self.head = torch.nn.Linear(8, 2, bias=False)
            self.register_buffer("scale", torch.ones(2))
            self.register_buffer("scratch", torch.zeros(3), persistent=False)

        def forward(self, x):
            return self.head(self.block(self.conv_like(x))) * self.scale

    return TNet()


# -- registration and traversal ------------------------------------------------------------------------
def test_named_members_and_state_dict_order_match_torch():
    net, tnet = Net(), _torch_net()
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in tnet.named_buffers()]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in tnet.named_modules()]
    assert [n for n, _ in net.named_children()] == [n for n, _ in tnet.named_children()]
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == list(tnet.state_dict())
    assert "scratch" not in sd  # non-persistent buffers stay out
    assert all(not v.requires_grad for v in sd.values())
    assert net.state_dict(keep_vars=True)["head.weight"] is net.head.weight
    assert list(net.state_dict(prefix="m."))[:2] == ["m.scale", "m.conv_like.weight"]
    assert [n for n, _ in net.named_parameters(prefix="p", recurse=False)] == []
    assert len(list(net.parameters())) == 7
    assert len(list(net.block.parameters())) == 4


def test_shared_parameters_counted_once():
    a = nn.Linear(2, 2)
    seq = nn.Sequential(a, a)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.named_parameters(remove_duplicate=False))) == 4
    assert len(list(seq.modules())) == 2
    assert len(list(seq.named_modules(remove_duplicate=False))) == 3


def test_setattr_registers_and_delattr_removes():
    m = nn.Module()
    m.w = nn.Parameter(jitorch.ones(2))
    m.sub = nn.Linear(1, 1)
    m.register_buffer("b", jitorch.zeros(1))
    m.plain = 3
    assert set(m._parameters) == {"w"} and set(m._modules) == {"sub"} and set(m._buffers) == {"b"}
    assert "w" in dir(m) and "sub" in dir(m) and "b" in dir(m)
    m.b = jitorch.ones(1)  # reassigning a buffer keeps it a buffer
    assert m._buffers["b"].tolist() == [1.0]
    with pytest.raises(TypeError, match="cannot assign 'jitorch.FloatTensor' as parameter 'w'"):
        m.w = jitorch.ones(2)
    m.w = None
    assert m.w is None and "w" in m._parameters
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'sub'"):
        m.sub = 5
    del m.sub
    assert "sub" not in m._modules
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'sub'"):
        _ = m.sub
    with pytest.raises(KeyError, match="attribute 'plain' already exists"):
        m.register_buffer("plain", jitorch.ones(1))
    with pytest.raises(KeyError, match=r'contain "\."'):
        m.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="cannot assign 'jitorch.FloatTensor' object to parameter 'q'"):
        m.register_parameter("q", jitorch.ones(1))
    nonleaf = nn.Parameter(jitorch.ones(1))
    nonleaf._grad_fn = (nn.Parameter(jitorch.ones(1)) * 2).grad_fn
    with pytest.raises(ValueError, match="Cannot assign non-leaf Tensor to parameter 'r'"):
        m.register_parameter("r", nonleaf)
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("x", 3)


def test_get_submodule_parameter_buffer():
    net = Net()
    assert net.get_submodule("block.2") is net.block[2]
    assert net.get_submodule("") is net
    assert net.get_parameter("block.0.weight") is net.block[0].weight
    assert net.get_buffer("block.2.running_mean") is net.block[2].running_mean
    with pytest.raises(AttributeError, match="Sequential has no attribute `9`"):
        net.get_submodule("block.9")
    with pytest.raises(AttributeError, match="`scale` is not an nn.Parameter"):
        net.get_parameter("scale")


# -- state_dict loading --------------------------------------------------------------------------------------
def test_load_state_dict_roundtrip_copies_in_place():
    a, b = Net(), Net()
    w = b.head.weight
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"
    assert b.head.weight is w  # copied into the existing parameter
    np.testing.assert_array_equal(w.detach().numpy(), a.head.weight.detach().numpy())
    assert w.requires_grad and w.grad_fn is None


def test_load_state_dict_errors_match_torch_and_load_nothing():
    torch = pytest.importorskip("torch")
    sd = {"weight": jitorch.zeros(2, 3), "bias": jitorch.zeros(4), "foo": jitorch.zeros(1)}
    lin = nn.Linear(3, 4)
    before = lin.bias.detach().numpy().copy()
    with pytest.raises(RuntimeError) as jerr:
        lin.load_state_dict(sd)
    with pytest.raises(RuntimeError) as terr:
        torch.nn.Linear(3, 4).load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in sd.items()})
    assert str(jerr.value) == str(terr.value).replace("torch.Size", "jitorch.Size")
    assert str(jerr.value).startswith("Error(s) in loading state_dict for Linear:\n\tUnexpected key(s) in state_dict:")
    np.testing.assert_array_equal(lin.bias.detach().numpy(), before)  # validated first: bias untouched
    with pytest.raises(RuntimeError) as jerr:
        nn.Sequential(nn.Linear(3, 4)).load_state_dict({"0.weight": jitorch.zeros(4, 3)})
    assert str(jerr.value) == 'Error(s) in loading state_dict for Sequential:\n\tMissing key(s) in state_dict: "0.bias". '


def test_load_state_dict_non_strict_reports_keys():
    lin = nn.Linear(3, 4)
    res = lin.load_state_dict({"weight": jitorch.ones(4, 3), "extra.x": jitorch.ones(1)}, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["extra.x"]
    assert res == (["bias"], ["extra.x"])
    assert lin.weight.detach().numpy().sum() == 12
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        lin.load_state_dict({"weight": jitorch.ones(1, 3)}, strict=False)


def test_load_state_dict_assign_and_batchnorm_legacy_checkpoint():
    lin = nn.Linear(2, 2)
    new_w = jitorch.ones(2, 2)
    lin.load_state_dict({"weight": new_w, "bias": jitorch.zeros(2)}, assign=True)
    assert isinstance(lin.weight, nn.Parameter) and lin.weight.requires_grad
    bn = nn.BatchNorm1d(2)
    sd = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    sd = OrderedDict(sd)
    sd._metadata = OrderedDict({"": {"version": 1}})
    assert bn.load_state_dict(sd).missing_keys == []


def test_extra_state_roundtrip():
    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.value = 1

        def get_extra_state(self):
            return {"value": self.value}

        def set_extra_state(self, state):
            self.value = state["value"]

    a = WithExtra()
    a.value = 7
    sd = a.state_dict()
    assert sd["_extra_state"] == {"value": 7}
    b = WithExtra()
    b.load_state_dict(sd)
    assert b.value == 7


# -- modes and conversions ---------------------------------------------------------------------------------
def test_train_eval_zero_grad_requires_grad_apply():
    net = Net()
    assert net.training and net.block[2].training
    net.eval()
    assert not net.training and not net.block[2].training
    net.train()
    assert net.block[2].training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")
    net(jitorch.randn(4, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"


def test_to_dtype_keeps_parameter_identity():
    net = Net()
    w = net.head.weight
    net(jitorch.randn(3, 4)).sum().backward()
    out = net.double()
    assert out is net and net.head.weight is w
    assert w.dtype == jitorch.float64 and w.grad.dtype == jitorch.float64
    assert net.block[2].num_batches_tracked.dtype == jitorch.int64  # integer buffers keep their dtype
    assert net.block[2].running_mean.dtype == jitorch.float64
    net.to(jitorch.float32)
    assert w.dtype == jitorch.float32
    net.half()
    assert w.dtype == jitorch.float16
    net.float().to("cpu").cpu()
    assert w.dtype == jitorch.float32
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point"):
        net.to(jitorch.int64)
    net.to(jitorch.randn(1, dtype=jitorch.float64))
    assert w.dtype == jitorch.float64


def test_parameter_basics_deepcopy_pickle():
    p = nn.Parameter(jitorch.ones(2))
    assert p.requires_grad and isinstance(p, jitorch.Tensor)
    assert repr(p).startswith("Parameter containing:\ntensor([1., 1.]")
    assert not nn.Parameter(jitorch.ones(1), requires_grad=False).requires_grad
    base = jitorch.zeros(3)
    shared = nn.Parameter(base)
    base.add_(1)
    assert shared.tolist() == [1.0, 1.0, 1.0]  # shares memory with its data
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.requires_grad and q is not p
    r = pickle.loads(pickle.dumps(p))
    assert isinstance(r, nn.Parameter) and r.requires_grad and r.tolist() == [1.0, 1.0]
    net = Net()
    net2 = copy.deepcopy(net)
    assert isinstance(net2.head.weight, nn.Parameter)
    assert net2.head.weight is not net.head.weight
    np.testing.assert_array_equal(net2.head.weight.detach().numpy(), net.head.weight.detach().numpy())
    net3 = pickle.loads(pickle.dumps(net))
    assert list(net3.state_dict()) == list(net.state_dict())


# -- hooks ------------------------------------------------------------------------------------------------
def test_forward_hooks_order_and_replacement():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: calls.append("pre") or (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append("post") or out + 1)
    lin.register_forward_hook(lambda m, args, out: calls.append("first"), prepend=True)
    out = lin(jitorch.ones(1, 2))
    assert calls == ["pre", "first", "post"]
    np.testing.assert_allclose(out.detach().numpy(), (lin.bias.detach() + 1).numpy()[None], rtol=1e-6)
    h1.remove()
    h2.remove()
    calls.clear()
    out = lin(jitorch.ones(1, 2))
    assert calls == ["first"]
    kw = {}
    lin.register_forward_pre_hook(lambda m, args, kwargs: kw.update(kwargs), with_kwargs=True)
    lin.register_forward_hook(lambda m, args, kwargs, out: kw.update(seen=True), with_kwargs=True)
    lin(input=jitorch.ones(1, 2))
    assert "input" in kw and kw["seen"]


def test_global_forward_hook():
    from jitorch.nn.module import register_module_forward_hook
    seen = []
    h = register_module_forward_hook(lambda m, a, o: seen.append(type(m).__name__))
    try:
        nn.Sequential(nn.ReLU())(jitorch.ones(1))
    finally:
        h.remove()
    assert seen == ["ReLU", "Sequential"]


def test_full_backward_hook_matches_torch():
    torch = pytest.importorskip("torch")
    tlin = torch.nn.Linear(3, 2)
    jlin = nn.Linear(3, 2)
    copy_weights(tlin, jlin)
    record = {}

    def hook(name):
        def fn(module, grad_input, grad_output):
            record[name] = (grad_input, grad_output)
            return (grad_input[0] * 2,)
        return fn

    tlin.register_full_backward_hook(hook("t"))
    jlin.register_full_backward_hook(hook("j"))
    pre = []
    jlin.register_full_backward_pre_hook(lambda m, go: pre.append(len(go)))
    x = torch.randn(4, 3, requires_grad=True)
    jx = to_j(x, requires_grad=True)
    tlin(x).pow(2).sum().backward()
    jlin(jx).pow(2).sum().backward()
    close(record["j"][1][0], record["t"][1][0])
    close(record["j"][0][0], record["t"][0][0])
    close(jx.grad, x.grad)  # the hook's replacement grad_input reached the input
    close(jlin.weight.grad, tlin.weight.grad)
    assert pre == [1]
    # inputs that need no gradient: the hook still runs, with grad_input None
    got = []
    m = nn.Linear(3, 2)
    m.register_full_backward_hook(lambda mod, gi, go: got.append(gi))
    m(jitorch.randn(2, 3)).sum().backward()
    assert got == [(None,)]


# -- repr ---------------------------------------------------------------------------------------------------
def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    assert repr(Net()).replace("Net(", "X(") == repr(_torch_net()).replace("TNet(", "X(")
    specs = [
        lambda lib: lib.Sequential(lib.Linear(2, 3), lib.Sequential(lib.ReLU(inplace=True), lib.Dropout(0.1)),
                                   lib.LeakyReLU(0.2), lib.GELU(approximate="tanh"), lib.Softmax(dim=1)),
        lambda lib: lib.ModuleList([lib.Linear(2, 2) for _ in range(3)] + [lib.ReLU(), lib.ReLU(), lib.Tanh()]),
        lambda lib: lib.ModuleDict({"a": lib.LayerNorm(4), "b": lib.Embedding(5, 2, padding_idx=0)}),
        lambda lib: lib.Sequential(OrderedDict([("fc", lib.Linear(1, 1)), ("act", lib.Hardtanh(-2.0, 2.0))])),
        lambda lib: lib.Sequential(lib.Flatten(), lib.Unflatten(1, (2, 2)), lib.PReLU(3), lib.Threshold(0.1, 0.0),
                                   lib.ELU(inplace=True), lib.Softplus(beta=2), lib.GLU(), lib.Identity(),
                                   lib.Bilinear(2, 3, 4), lib.GroupNorm(2, 4), lib.BatchNorm2d(3, momentum=None),
                                   lib.CrossEntropyLoss(), lib.ReLU6(), lib.Hardshrink(), lib.ModuleList()),
    ]
    for make in specs:
        assert repr(make(nn)) == repr(make(torch.nn))


# -- containers ----------------------------------------------------------------------------------------------
def test_sequential_api():
    a, b, c = nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b
    seq.append(c)
    assert list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c] and list(sub._modules) == ["1", "2"]
    seq.insert(0, nn.Identity())
    assert list(seq._modules) == ["0", "1", "2", "3"] and seq[1] is a
    del seq[0]
    assert seq[0] is a and list(seq._modules) == ["0", "1", "2"]
    both = seq + nn.Sequential(nn.Tanh())
    assert len(both) == 4
    seq.extend([nn.Sigmoid()])
    assert len(seq) == 4
    seq[3] = nn.Tanh()
    assert isinstance(seq[3], nn.Tanh)
    with pytest.raises(IndexError, match="index 9 is out of range"):
        seq[9]
    named = nn.Sequential(OrderedDict([("first", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert named.first is named[0]
    y = nn.Sequential(nn.Linear(3, 2), nn.ReLU())(jitorch.randn(4, 3))
    assert y.shape == (4, 2)
    assert len(nn.Sequential(nn.ReLU()) * 3) == 3


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(1, 1), nn.ReLU()])
    ml.append(nn.Tanh())
    ml.insert(1, nn.Sigmoid())
    assert [type(m).__name__ for m in ml] == ["Linear", "Sigmoid", "ReLU", "Tanh"]
    ml.extend([nn.Identity()])
    assert len(ml) == 5 and isinstance(ml[-1], nn.Identity)
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    del ml[0]
    assert type(ml[0]).__name__ == "Sigmoid"
    assert len(list(ml.parameters())) == 0
    md = nn.ModuleDict({"lin": nn.Linear(2, 2), "act": nn.ReLU()})
    assert list(md.keys()) == ["lin", "act"] and "lin" in md
    md["out"] = nn.Linear(2, 1)
    assert len(md) == 3 and len(list(md.parameters())) == 4
    assert isinstance(md.pop("act"), nn.ReLU) and len(md) == 2
    md.update([("z", nn.Tanh())])
    assert list(md) == ["lin", "out", "z"]
    assert list(md.state_dict()) == ["lin.weight", "lin.bias", "out.weight", "out.bias"]


def test_parameter_list_and_dict():
    torch = pytest.importorskip("torch")
    pl = nn.ParameterList([nn.Parameter(jitorch.ones(2)), jitorch.zeros(3)])
    assert all(isinstance(p, nn.Parameter) for p in pl) and len(pl) == 2
    pl.append(jitorch.ones(1))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    tpl = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2)), torch.zeros(3), torch.ones(1)])
    assert repr(pl).replace("jitorch.", "torch.") == repr(tpl)
    pd = nn.ParameterDict({"b": jitorch.ones(1), "a": nn.Parameter(jitorch.zeros(2))})
    assert list(pd.keys()) == ["a", "b"]  # plain dicts are sorted, as in torch
    pd["c"] = jitorch.ones(3)
    assert isinstance(pd["c"], nn.Parameter) and len(list(pd.parameters())) == 3
    assert pd.get("missing") is None and "c" in pd
    del pd["c"]
    assert len(pd) == 2
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        pl(1)


def test_custom_module_end_to_end_training_step():
    net = Net()
    x = jitorch.randn(8, 4)
    loss = net(x).pow(2).mean()
    loss.backward()
    with jitorch.no_grad():
        for p in net.parameters():
            p.sub_(0.1 * p.grad)
    assert net(x).pow(2).mean().item() < loss.item()
