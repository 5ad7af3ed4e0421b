"""torch.distributed plumbing: who this process is, and how workers are started.

Two ways in, one training function:
- `trainer.devices=N` spawns N workers inside the one Hydra job (NCCL on CUDA, Gloo on CPU);
- an external launcher (torchrun, SLURM via submitit) sets RANK / WORLD_SIZE and we join that
  process group instead of spawning.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from resdeep.errors import ResdeepError


@dataclass(frozen=True)
class World:
    """This process's place in the job; a single process is rank 0 of a world of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (in place, returned for chaining); a no-op for one process."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True when any rank's flag is set: ranks must agree to stop at the same step."""
        if not self.distributed:
            return flag
        value = torch.tensor(float(flag), device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast_object(self, obj: Any) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_world() -> World | None:
    """The world set up by an external launcher (torchrun, SLURM), if any."""
    if (
        "RANK" not in os.environ
        and os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
        and int(os.environ.get("SLURM_NTASKS", "1")) > 1
    ):
        # A SLURM job with one task per GPU (the slurm_gpu launcher preset): submitit knows
        # the node list and each task's rank; export them for the env:// rendezvous.
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    return World(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


# Long enough for rank 0 to build a data set or write a checkpoint while the others wait.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)


def join_process_group(world: World, device_type: str | None = None) -> None:
    """Join the launcher's process group (env:// rendezvous), once per process: the only place
    a group is created, so its backend and timeout hold however the job was started.

    Gloo carries CPU tensors and objects (the run dir rank 0 broadcasts), NCCL CUDA tensors.
    """
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)
    if device_type == "cuda":
        torch.cuda.set_device(world.local_rank)


def leave_process_group(finished: bool) -> None:
    """Leave together: a rank exiting while a peer still talks to it can abort that peer."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(
    local_rank: int,
    world_size: int,
    port: int,
    device_type: str,
    target: Callable[..., Any],
    args: tuple,
    errors: Any,
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
    )
    # Share the CPU cores between the workers instead of oversubscribing them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    world = World(rank=local_rank, world_size=world_size, local_rank=local_rank)
    join_process_group(world, device_type)
    finished = False
    try:
        target(*args, world)
        finished = True
    except ResdeepError as error:
        errors.put((type(error).__name__, error.exit_code, str(error)))
        raise SystemExit(error.exit_code) from error
    finally:
        leave_process_group(finished)


def spawn(target: Callable[..., Any], args: tuple, nprocs: int, device_type: str) -> None:
    """Run `target(*args, world)` in `nprocs` fresh processes; user errors come back as one."""
    context = mp.get_context("spawn")
    errors = context.SimpleQueue()
    try:
        mp.start_processes(
            _worker,
            args=(nprocs, free_port(), device_type, target, args, errors),
            nprocs=nprocs,
            start_method="spawn",
        )
    except mp.ProcessExitedException as failure:
        if not errors.empty():
            _, exit_code, message = errors.get()
            error = ResdeepError(message)
            error.exit_code = exit_code
            raise error from failure
        raise ResdeepError(f"a training worker failed: {failure}") from failure
