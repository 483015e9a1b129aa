"""jitorch.distributed, DistributedDataParallel, FSDP and DistributedSampler.

Multi-process checks start ``mpiexec -n N python tests/dist_scripts/<script>.py OUT``;
each script batches many checks into one launch and writes per-rank results
to OUT, which these tests compare with NumPy or single-process references.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="jitorch.distributed needs mpi4py and MPI: pip install -e '.[distributed]'")
MPIEXEC = shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (the `mpich` wheel provides it)")

import jitorch

SCRIPTS = Path(__file__).resolve().parent / "dist_scripts"
REPO = SCRIPTS.parents[1]
sys.path.insert(0, str(SCRIPTS))
import _models as M
from _common import rank_values

_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "MPI_", "MPICH_", "HYDRA_", "OMPI_", "I_MPI_")
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def clean_env(extra=None) -> dict:
    """This process's environment without variables of an enclosing MPI job or torchrun."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_LAUNCHER_PREFIXES) and k not in _TORCHRUN_VARS}
    env.update(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.update(extra or {})
    return env


def launch(script: str, out: Path, n: int = 2, args=(), mpiexec_args=(), timeout: float = 120):
    cmd = [MPIEXEC, *mpiexec_args, "-n", str(n), sys.executable, str(SCRIPTS / script), str(out), *args]
    return subprocess.run(cmd, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def check_ok(proc) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def load(out: Path, name: str, n: int):
    npz = [dict(np.load(out / f"{name}_rank{r}.npz")) for r in range(n)]
    js = [json.loads((out / f"{name}_rank{r}.json").read_text()) for r in range(n)]
    return npz, js


# ------------------------------------------------------------------------------------------------
# collectives (3 ranks, so that a subgroup has a non-member and splits are uneven)
# ------------------------------------------------------------------------------------------------
W3 = 3


@pytest.fixture(scope="module")
def collectives(tmp_path_factory):
    out = tmp_path_factory.mktemp("collectives")
    check_ok(launch("collectives.py", out, n=W3))
    return load(out, "collectives", W3)


def test_all_reduce_ops_match_numpy(collectives):
    res, info = collectives
    inputs = np.stack([rank_values(r) for r in range(W3)]).astype(np.float64)
    want = {"sum": inputs.sum(0), "avg": inputs.mean(0), "max": inputs.max(0), "min": inputs.min(0),
            "product": inputs.prod(0)}
    for r in range(W3):
        for op, ref in want.items():
            for mode in ("sync", "async"):
                np.testing.assert_allclose(res[r][f"all_reduce_{op}_{mode}"], ref, rtol=1e-6, err_msg=f"{op} {mode}")
            assert info[r][f"work_result_is_output_{op}"] and info[r][f"completed_{op}"]
        np.testing.assert_array_equal(res[r]["all_reduce_int64"],
                                      sum(rank_values(q, dtype=np.int64) for q in range(W3)))
        np.testing.assert_array_equal(res[r]["all_reduce_float16"],
                                      sum(rank_values(q, dtype=np.float16) for q in range(W3)))
        np.testing.assert_array_equal(res[r]["all_reduce_noncontig"],
                                      sum(rank_values(q, (3, 4), np.float64) for q in range(W3)))
        assert info[r]["version_bumped"]


def test_rooted_collectives_match_numpy(collectives):
    res, _ = collectives
    vals = [rank_values(r) for r in range(W3)]
    for r in range(W3):
        for mode in ("sync", "async"):
            np.testing.assert_array_equal(res[r][f"broadcast_{mode}"], rank_values(W3 - 1, (3, 4), np.float64).T)
            np.testing.assert_array_equal(res[r][f"reduce_{mode}"], sum(vals) if r == 0 else vals[r])
            np.testing.assert_array_equal(res[r][f"scatter_{mode}"], rank_values(0, salt=10 * r))
            if r == W3 - 1:
                np.testing.assert_array_equal(res[r][f"gather_{mode}"], np.stack(vals))
            else:
                assert f"gather_{mode}" not in res[r]


def test_gather_and_scatter_style_collectives_match_numpy(collectives):
    res, _ = collectives
    vals = [rank_values(r) for r in range(W3)]
    tall = [rank_values(q, (2 * W3, 3)) for q in range(W3)]
    for r in range(W3):
        for mode in ("sync", "async"):
            np.testing.assert_array_equal(res[r][f"all_gather_{mode}"], np.stack(vals))
            np.testing.assert_array_equal(res[r][f"all_gather_into_tensor_{mode}"], np.concatenate(vals))
            np.testing.assert_allclose(res[r][f"reduce_scatter_{mode}"],
                                       sum(rank_values(q, salt=r) for q in range(W3)), rtol=1e-6)
            np.testing.assert_allclose(res[r][f"reduce_scatter_tensor_avg_{mode}"],
                                       (sum(tall) / W3)[2 * r:2 * r + 2], rtol=1e-6)
            np.testing.assert_array_equal(res[r][f"all_to_all_single_{mode}"],
                                          np.concatenate([tall[q][2 * r:2 * r + 2] for q in range(W3)]))


def test_all_to_all_with_uneven_splits(collectives):
    res, _ = collectives
    for r in range(W3):
        blocks = []
        for q in range(W3):
            splits = [q + k + 1 for k in range(W3)]
            src = rank_values(q, (sum(splits), 2), np.int64)
            start = sum(splits[:r])
            blocks.append(src[start:start + splits[r]])
        np.testing.assert_array_equal(res[r]["all_to_all_single_uneven"], np.concatenate(blocks))
        np.testing.assert_array_equal(res[r]["all_to_all_concat"],
                                      np.concatenate([np.full(k + 1, 100 * k + r) for k in range(W3)]))


def test_point_to_point_groups_and_objects(collectives):
    res, info = collectives
    for r in range(W3):
        prev = (r - 1) % W3
        np.testing.assert_array_equal(res[r]["recv"], rank_values(prev))
        assert info[r]["recv_source"] == prev
        np.testing.assert_array_equal(res[r]["irecv"], rank_values(prev, salt=1))
        member = r < 2
        assert info[r]["subgroup_rank"] == (r if member else -1)
        assert info[r]["subgroup_size"] == (2 if member else -1)
        assert info[r]["subgroup_call_returned_none"]
        want = rank_values(0) + rank_values(1) if member else rank_values(r)
        np.testing.assert_array_equal(res[r]["subgroup_all_reduce"], want)
        assert info[r]["all_gather_object"] == [{"rank": q, "word": "r" * (q + 1)} for q in range(W3)]
        assert info[r]["broadcast_object_list"] == [0, "from", 0]
        assert (info[r]["rank"], info[r]["world"], info[r]["backend"]) == (r, W3, "mpi")
        assert info[r]["initialized"] and not info[r]["initialized_after_destroy"]


# ------------------------------------------------------------------------------------------------
# DistributedDataParallel (2 ranks) against single-process training on the whole batch
# ------------------------------------------------------------------------------------------------
W = 2


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    check_ok(launch("ddp_train.py", out, n=W))
    return load(out, "ddp", W)


def t(a):
    return jitorch.from_numpy(np.ascontiguousarray(a))


def reference_training(model, loss_of_step, steps, momentum=0.9):
    opt = jitorch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    for step in range(steps):
        opt.zero_grad()
        loss_of_step(model, step).backward()
        opt.step()
    return {k: p.detach().numpy().astype(np.float64) for k, p in model.named_parameters()}


def full_batch_loss(model, step):
    x, y = M.batch(step)
    return M.mse(model(t(x)), t(y))


def assert_params_close(res, prefix, ref):
    for r in range(W):
        for name, value in ref.items():
            np.testing.assert_allclose(res[r][f"{prefix}/{name}"], value, rtol=2e-5, atol=2e-6,
                                       err_msg=f"rank {r} {prefix}/{name}")


@pytest.mark.parametrize("variant", ["default", "small_buckets", "grad_view", "compiled"])
def test_ddp_equals_full_batch_training(ddp_run, variant):
    res, info = ddp_run
    ref = reference_training(M.make_mlp(seed=0), full_batch_loss, M.STEPS)
    assert_params_close(res, variant, ref)
    if variant == "small_buckets":
        assert info[0]["small_buckets_buckets"] > 1
    if variant in ("default", "grad_view"):  # .grad is a copy, or (gradient_as_bucket_view) a bucket view
        assert all(i[f"{variant}_grads_in_buckets"] == (variant == "grad_view") for i in info)


def test_ddp_existing_grads_keep_their_identity(ddp_run):
    res, info = ddp_run
    model = M.make_mlp(seed=0)
    full_batch_loss(model, 0).backward()
    for r in range(W):
        assert info[r]["grad_identity_kept"]
        np.testing.assert_allclose(res[r]["keep_grad_weight0"], model[0].weight.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_ddp_no_sync_accumulates_locally(ddp_run):
    res, _ = ddp_run

    def accumulated_loss(model, step):
        # DDP averages over ranks the sum of each rank's two micro-batch losses
        x, y = M.batch(step)
        total = 0
        for r in range(W):
            xr, yr = M.shard(x, r, W), M.shard(y, r, W)
            for m in range(2):
                total = total + M.mse(model(t(M.shard(xr, m, 2))), t(M.shard(yr, m, 2)))
        return total / W
    ref = reference_training(M.make_mlp(seed=0), accumulated_loss, 3)
    assert_params_close(res, "no_sync", ref)


def test_ddp_find_unused_parameters(ddp_run):
    res, info = ddp_run

    def per_rank_loss(model, step):
        x, y = M.batch(step)
        losses = [M.mse(model(t(M.shard(x, r, W)), use_b=r == 0), t(M.shard(y, r, W))) for r in range(W)]
        return sum(losses) / W
    model = M.TwoHeads(seed=0)
    per_rank_loss(model, 0).backward()
    grads0 = {k: p.grad.numpy() for k, p in model.named_parameters() if p.grad is not None}
    assert "never.weight" not in grads0 and "head_b.weight" in grads0
    for r in range(W):
        assert info[r]["never_grad_is_none"]
        assert {k.split("/", 1)[1] for k in res[r] if k.startswith("unused_grad0/")} == set(grads0)
        for k, g in grads0.items():
            np.testing.assert_allclose(res[r][f"unused_grad0/{k}"], g, rtol=1e-5, atol=1e-7)
    ref = reference_training(M.TwoHeads(seed=0), per_rank_loss, 3, momentum=0.0)
    assert_params_close(res, "unused", ref)


def test_ddp_unused_parameter_without_detection_raises(ddp_run):
    _, info = ddp_run
    for r in range(W):
        msg = info[r]["unused_error"]
        assert msg is not None and "Expected to have finished reduction in the prior iteration" in msg
        assert "head_b.weight" in msg


def test_ddp_state_dict_and_broadcast_buffers(ddp_run):
    res, info = ddp_run
    assert info[0]["state_dict_keys"] == ["module." + k for k in M.make_mlp(0).state_dict()]
    for r in range(W):
        # rank 0's running_mean (1.0) was broadcast before the forward updated it with this rank's batch
        np.testing.assert_allclose(res[r]["bn_running_mean"], 0.9 * 1.0 + 0.1 * res[r]["bn_batch_mean"],
                                   rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# FullyShardedDataParallel (2 ranks) against DDP with Adam
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    check_ok(launch("fsdp_train.py", out, n=W))
    return load(out, "fsdp", W)


def _ddp_params(res, r):
    return {k.split("/", 1)[1]: v for k, v in res[r].items() if k.startswith("ddp/")}


@pytest.mark.parametrize("variant", ["nested", "sized", "manual"])
def test_fsdp_matches_ddp_with_adam(fsdp_run, variant):
    res, _ = fsdp_run
    for r in range(W):
        ddp = _ddp_params(res, r)
        assert set(ddp) == set(M.Deep(seed=0).state_dict())
        for name, value in ddp.items():
            np.testing.assert_allclose(res[r][f"{variant}/{name}"], value, rtol=1e-5, atol=1e-7,
                                       err_msg=f"rank {r} {variant}/{name}")


def test_fsdp_ranks_hold_only_their_shard(fsdp_run):
    _, info = fsdp_run
    model = M.Deep(seed=0)
    block_numels = [sum(p.numel() for p in b.parameters()) for b in model.blocks]
    rest = sum(p.numel() for p in model.parameters()) - sum(block_numels)
    want = -(-rest // W) + sum(-(-n // W) for n in block_numels)  # ceil: each unit is padded to W shards
    for r in range(W):
        assert info[r]["units"] == 1 + len(model.blocks)
        assert info[r]["local_numel"] == want
        assert all(name.endswith("_flat_param") for name in info[r]["param_names"])
        # one block unit gathered at a time in forward; everything freed after backward and after eval
        assert info[r]["max_blocks_gathered_in_forward"] == 1
        assert all(state == "sharded" for step in info[r]["states_after_backward"] for state in step)
        assert all(state == "sharded" for state in info[r]["states_after_eval"])
        assert info[r]["summoned_shape"] == [10, 6]
        assert info[r]["sized_units"] == 1 + len(model.blocks)


def test_fsdp_eval_and_grad_clipping_match_ddp(fsdp_run):
    res, info = fsdp_run
    for r in range(W):
        np.testing.assert_allclose(res[r]["eval_fsdp"], res[r]["eval_ddp"], rtol=1e-5, atol=1e-7)
        assert info[r]["clip_norm_fsdp"] == pytest.approx(info[r]["clip_norm_ddp"], rel=1e-5)


def test_fsdp_full_state_dict_on_rank0_and_scattered_load(fsdp_run):
    res, info = fsdp_run
    keys = list(M.Deep(seed=0).state_dict())
    assert info[0]["rank0_state_dict_keys"] == keys
    assert info[1]["rank0_state_dict_keys"] == []
    ddp = _ddp_params(res, 0)
    for k in keys:
        np.testing.assert_allclose(res[0][f"sd/{k}"], ddp[k], rtol=1e-5, atol=1e-7)
        for r in range(W):
            np.testing.assert_array_equal(res[r][f"loaded/{k}"], res[0][f"sd/{k}"])


# ------------------------------------------------------------------------------------------------
# errors: before init, bad backend, RANK/WORLD_SIZE mismatches, failing ranks
# ------------------------------------------------------------------------------------------------
NOT_INIT = "Default process group has not been initialized"


def test_calls_before_init_raise_in_process():
    import jitorch.distributed as dist
    assert dist.is_available() and not dist.is_initialized()
    for fn in (lambda: dist.all_reduce(jitorch.ones(2)), dist.get_rank, dist.barrier,
               lambda: jitorch.nn.parallel.DistributedDataParallel(jitorch.nn.Linear(2, 2))):
        with pytest.raises(ValueError, match=NOT_INIT):
            fn()
    with pytest.raises(RuntimeError, match="only the 'mpi' backend"):
        dist.init_process_group("nccl")


def test_imports_and_init_errors_and_environment_consistency(tmp_path):
    check_ok(launch("init_errors.py", tmp_path, n=W, mpiexec_args=("-genv", "WORLD_SIZE", "3")))
    for r in range(W):
        info = json.loads((tmp_path / f"init_errors_rank{r}.json").read_text())
        assert info["mpi4py_imported_by_import"] is False  # import jitorch(.distributed, .nn...) leaves MPI alone
        for key in ("all_reduce_before_init", "get_world_size_before_init", "ddp_before_init"):
            assert info[key] == ["ValueError", NOT_INIT + ", please make sure to call init_process_group."]
        assert info["gloo_backend"][0] == "RuntimeError" and "'mpi'" in info["gloo_backend"][1]
        assert info["env_world_size"][0] == "RuntimeError" and "WORLD_SIZE=3" in info["env_world_size"][1]
        assert info["env_rank"][0] == "RuntimeError" and f"RANK={1 - r}" in info["env_rank"][1]
        assert info["rank_argument"][0] == "ValueError"
        assert info["consistent_init"] is None and info["initialized"]
        assert info["init_twice"] == ["RuntimeError", "trying to initialize the default process group twice!"]


def test_a_rank_that_raises_aborts_the_job(tmp_path):
    proc = launch("failure.py", tmp_path, n=W, args=("raise",), timeout=60)
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stderr
    assert "calling MPI_Abort" in proc.stderr
    assert not list(tmp_path.glob("failure_rank*.json"))  # rank 0 never got past its all_reduce


def test_a_rank_that_never_joins_times_out(tmp_path):
    proc = launch("failure.py", tmp_path, n=W, args=("hang",), timeout=60)
    assert proc.returncode != 0
    info = json.loads((tmp_path / "failure_rank0.json").read_text())
    assert "all_reduce timed out after 1 s" in info["timeout_error"]
    assert "finished" not in info


# ------------------------------------------------------------------------------------------------
# DistributedSampler (no MPI needed: num_replicas and rank are given)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 7, False)])
def test_distributed_sampler_matches_torch_without_shuffle(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    from jitorch.utils.data import DistributedSampler
    for rank in range(replicas):
        mine = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        ref = torch.utils.data.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(mine) == list(ref) and len(mine) == len(ref)


@pytest.mark.parametrize("n,replicas", [(10, 3), (16, 4), (5, 7)])
def test_distributed_sampler_shuffle_partitions_pads_and_reshuffles(n, replicas):
    torch = pytest.importorskip("torch")
    from jitorch.utils.data import DistributedSampler

    def shares(epoch, drop_last=False, seed=0):
        samplers = [DistributedSampler(range(n), replicas, r, shuffle=True, seed=seed, drop_last=drop_last)
                    for r in range(replicas)]
        for s in samplers:
            s.set_epoch(epoch)
        return [list(s) for s in samplers]
    first = shares(0)
    ref_len = len(torch.utils.data.DistributedSampler(range(n), replicas, 0, shuffle=True))
    assert all(len(s) == ref_len for s in first)
    flat = [i for s in first for i in s]
    assert set(flat) == set(range(n))                     # every index is read
    assert len(flat) - len(set(flat)) == ref_len * replicas - n  # only the padding repeats
    assert shares(0) == first                             # same seed and epoch: same order
    assert shares(1) != first or n < 3                    # set_epoch reshuffles
    assert shares(0, seed=1) != first or n < 3
    dropped = shares(0, drop_last=True)
    flat = [i for s in dropped for i in s]
    assert len(flat) == len(set(flat)) == (n // replicas) * replicas  # disjoint, the tail dropped
    for r, s in enumerate(dropped):
        assert len(s) == len(torch.utils.data.DistributedSampler(range(n), replicas, r, drop_last=True))


def test_distributed_sampler_needs_a_process_group_without_num_replicas():
    from jitorch.utils.data import DistributedSampler
    with pytest.raises(ValueError, match=NOT_INIT):
        DistributedSampler(range(4))


# ------------------------------------------------------------------------------------------------
# the example
# ------------------------------------------------------------------------------------------------
def test_ddp_digits_example_trains(tmp_path):
    pytest.importorskip("sklearn")
    cmd = [MPIEXEC, "-n", str(W), sys.executable, str(REPO / "examples" / "ddp_digits.py"), "--epochs", "1",
           "--subset", "600", "--save", str(tmp_path / "digits.pt")]
    proc = subprocess.run(cmd, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=180, check=False)
    check_ok(proc)
    assert proc.stdout.count("final test accuracy") == 1  # printed by rank 0 only
    acc = float(proc.stdout.split("final test accuracy")[1].split("%")[0])
    assert acc > 30.0  # well above chance (10%) after one short epoch
    state = jitorch.load(tmp_path / "digits.pt")
    assert "fc2.weight" in state


def test_fsdp_over_a_compiled_module_matches_ddp(tmp_path):
    check_ok(launch("fsdp_compiled.py", tmp_path))
    res = dict(np.load(tmp_path / "fsdp_compiled.npz"))
    names = [k[4:] for k in res if k.startswith("ddp/")]
    assert names
    for name in names:
        np.testing.assert_allclose(res[f"fsdp/{name}"], res[f"ddp/{name}"], rtol=1e-5, atol=1e-7, err_msg=name)
