"""Federated pretraining and fine-tuning with Flower: each simulated client runs the engine on its own shard.

``train(...)`` takes what ``pretrain`` or ``finetune`` would give ``engine.fit`` (the module, the stage's
config, the data, and for fine-tuning the labeled rows), splits the rows over ``federated.clients``
clients (``partition``: IID, or each class's rows shared out by a Dirichlet(α) draw, as in NIID-Bench,
Li et al., 2022), and runs Flower's FedAvg or FedProx (McMahan et al., 2017; Li et al., 2020) for
``rounds`` rounds. A client round is one ``engine.fit`` of ``local_epochs`` passes over the client's rows,
starting from the global weights; with ``fedprox`` its loss adds ``mu/2 · ||w − w_global||²``. Pretraining
rows never leave their client (the class labels only decide the simulated non-IID split); fine-tuning
clients hold the labeled rows of their shard. Client-level DP (``noise_multiplier``) wraps the strategy in
Flower's server-side fixed clipping: each update is clipped to ``clipping_norm``, the clients are averaged
with equal weights and Gaussian noise is added; ε comes from Opacus' RDP accountant with no sampling
amplification (every round counts as a full Gaussian release, whatever ``fraction`` is).

The clients run on Flower's simulation engine (Ray actors, one CPU each, as many as the cores). Ray's
startup is paid once per run (about 15 s here). Flower's deployment mode — a ``flower-superlink`` and one
``flower-supernode`` process per client on localhost, driven by ``flwr run`` on a packaged app — needs no
Ray but one process and one gRPC link per client and an app directory; it is not wired in here.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from warmstart.config import FederatedSettings
from warmstart.errors import UserError

DATA_FILE = "federated_data.npz"


def require_flower():
    try:
        import flwr  # noqa: F401
        from flwr.simulation import run_simulation  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        raise UserError("federated training needs Flower's simulation engine: pip install 'warmstart[federated]'") \
            from None


# --- partitions --------------------------------------------------------------------------------------

def partition(strata: np.ndarray, settings: FederatedSettings, seed: int, what: str) -> np.ndarray:
    """The client (0..clients-1) of each of the ``len(strata)`` rows: IID, or Dirichlet(α) shares of each
    class (``strata``) over the clients, redrawn until every client holds at least one row."""
    rows, clients = len(strata), settings.clients
    if clients > rows:
        raise UserError(f"federated.clients={clients} is more than the {rows} {what}; give each client at least "
                        f"one row: federated.clients={rows} or fewer")
    rng = np.random.default_rng([seed, clients, 7])
    owner = np.empty(rows, dtype=np.int64)
    if settings.partition == "iid":
        owner[rng.permutation(rows)] = np.arange(rows) % clients
        return owner
    for _attempt in range(100):
        for label in np.unique(strata):
            members = rng.permutation(np.flatnonzero(strata == label))
            shares = rng.dirichlet(np.full(clients, settings.alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, part in enumerate(np.split(members, cuts)):
                owner[part] = client
        if len(np.unique(owner)) == clients:
            return owner
    raise UserError(f"federated.alpha={settings.alpha:g} left a client without rows in 100 draws of {rows} {what} "
                    f"over {clients} clients; raise federated.alpha or lower federated.clients")


def client_delta(settings: FederatedSettings) -> float:
    from warmstart.privacy import default_delta

    delta = settings.delta if settings.delta is not None else default_delta(settings.clients)
    if delta >= 1.0 / settings.clients:
        raise UserError(f"federated.delta={delta:g} is not below 1/clients = {1.0 / settings.clients:.3g}; use "
                        f"federated.delta={default_delta(settings.clients):g} or smaller (the default)")
    return delta


def client_epsilon(settings: FederatedSettings, rounds: int) -> float:
    """Client-level ε after ``rounds`` Gaussian releases of noise ``noise_multiplier`` (no amplification)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(settings.noise_multiplier, 1.0, rounds)]
    return float(accountant.get_epsilon(client_delta(settings)))


# --- the client ---------------------------------------------------------------------------------------

_DATA: dict[str, Any] = {}  # per client process: the shared arrays, loaded once


def _client_data(job: dict[str, Any]):
    from warmstart.data import DataBundle

    path = job["data"]
    if path not in _DATA:
        arrays = np.load(path, mmap_mode="r", allow_pickle=False)
        bundle = DataBundle(job["name"], arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                            job["modality"], list(job["class_names"]), scale=job["scale"], task=job["task"],
                            target_names=list(job["target_names"]), spec=job["spec"])
        _DATA.clear()
        _DATA[path] = (bundle, np.asarray(arrays["client"]))
    return _DATA[path]


def _build(job: dict[str, Any], data) -> tuple[nn.Module, Any]:
    """The stage's module (an objective, or a task model), as the server built it, and its config."""
    from warmstart.config import FinetuneConfig, PretrainConfig
    from warmstart.models.build import build_encoder
    from warmstart.objectives import OBJECTIVES
    from warmstart.tasks import TASKS

    spec = job["encoder"]
    encoder = build_encoder(spec["encoder"], tuple(spec["input_shape"]), spec["encoder_args"], data.modality)
    if job["stage"] == "pretrain":
        config = PretrainConfig(**job["config"])
        module = OBJECTIVES.build(config.objective, encoder, **config.objective_args)
    else:
        config = FinetuneConfig(**job["config"])
        module = TASKS.get(job["task"]).build_model(encoder, job["info"])
    return module, config


def _proximal(loss_fn, module: nn.Module, mu: float):
    """FedProx: ``loss + mu/2 · ||w − w_global||²`` over the trainable weights, w_global as the round began."""
    if mu <= 0:
        return loss_fn
    anchor = [p.detach().clone() for p in module.parameters()]

    def loss(*batches):
        value, logs = loss_fn(*batches)
        drift = sum(((p - a) ** 2).sum() for p, a in zip(module.parameters(), anchor) if p.requires_grad)
        return value + 0.5 * mu * drift, logs
    return loss


def client_round(job: dict[str, Any], arrays: dict[str, torch.Tensor], client: int, server_round: int,
                 mu: float) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """One client's round: the global ``arrays`` in, ``local_epochs`` of ``engine.fit`` on its rows, weights out."""
    from warmstart.engine import fit
    from warmstart.pipeline import seed_everything
    from warmstart.strategies import STRATEGIES, FinetuneContext
    from warmstart.tasks import TASKS

    data, owner = _client_data(job)
    rows = np.flatnonzero(owner == client)
    seed = int(np.random.SeedSequence([job["config"]["seed"], client, server_round]).generate_state(1)[0] % 2**31)
    seed_everything(seed)
    module, config = _build(job, data)
    module.load_state_dict(arrays)
    settings = config.model_copy(update={"epochs": job["local_epochs"], "seed": seed, "threads": 1,
                                         "federated": None})
    if job["stage"] == "pretrain":
        loss_fn = _proximal(lambda batch: module.loss(batch[0]), module, mu)
        history = fit(module, loss_fn, [data.input_stream(rows, config.batch_size)], settings,
                      desc=f"client {client}")
    else:
        task = TASKS.get(job["task"])
        strategy = STRATEGIES.build(config.strategy, **config.strategy_args)
        ctx = FinetuneContext(settings, data, task, rows, np.array([], dtype=np.int64), module)
        trained = strategy.setup(ctx)
        loss_fn = _proximal(lambda *b: strategy.loss(module, *b), module, mu)
        history = fit(trained, loss_fn, strategy.streams(ctx), settings, param_groups=strategy.param_groups(module),
                      desc=f"client {client}")
    weight = 1.0 if job["equal_weights"] else float(len(rows))
    return module.state_dict(), {"num-examples": weight, "loss": float(history[-1]["loss"])}


def _make_client_app():
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        job = json.loads(msg.content["config"]["warmstart"])
        mu = float(msg.content["config"].get("proximal-mu", 0.0))
        arrays = msg.content["arrays"].to_torch_state_dict()
        state, metrics = client_round(job, arrays, int(context.node_config["partition-id"]),
                                      int(msg.content["config"]["server-round"]), mu)
        return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


# --- the server ---------------------------------------------------------------------------------------

def _strategy(settings: FederatedSettings):
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, FedProx

    common = {"fraction_train": settings.fraction, "fraction_evaluate": 0.0,
              "min_train_nodes": max(1, math.ceil(settings.fraction * settings.clients)),
              "min_available_nodes": settings.clients}
    strategy = (FedProx(proximal_mu=settings.proximal_mu, **common) if settings.algorithm == "fedprox"
                else FedAvg(**common))
    if settings.noise_multiplier is not None:
        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy, settings.noise_multiplier, settings.clipping_norm,
            max(1, math.ceil(settings.fraction * settings.clients)))
    return strategy


def check(config, resume: bool) -> None:
    """What federated training cannot combine with, refused before any work."""
    require_flower()
    if resume:
        raise UserError("a federated run cannot be resumed; run it again into a new --out")
    if getattr(config, "privacy", None) is not None:
        raise UserError("privacy.* (DP-SGD on one process's rows) does not combine with federated; use "
                        "federated.noise_multiplier=S for client-level DP")
    if config.federated.noise_multiplier is not None:
        client_delta(config.federated)


def train(stage: str, module: nn.Module, config, data, rows: np.ndarray, strata: np.ndarray, run_dir: Path | None,
          what: str, info: dict | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train ``module`` (the objective, or the task model) federatedly on training rows ``rows``; return the
    per-round records and a summary (clients' sizes, wall time per round, client-level ε)."""
    from flwr.app import ArrayRecord, ConfigRecord, Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    settings: FederatedSettings = config.federated
    owner_of_rows = partition(strata, settings, config.seed, what)
    owner = np.full(len(data.x_train), -1, dtype=np.int64)
    owner[rows] = owner_of_rows
    scratch = tempfile.TemporaryDirectory(prefix="warmstart-federated-")
    path = Path(scratch.name) / DATA_FILE
    np.savez(path, x_train=np.asarray(data.x_train), y_train=np.asarray(data.y_train), x_test=data.x_test[:1],
             y_test=data.y_test[:1], client=owner)  # uncompressed: memory-mapped by every client
    job = {"stage": stage, "config": config.model_dump(mode="json"), "encoder": module_encoder(module).spec,
           "data": str(path), "name": data.name, "modality": data.modality, "class_names": list(data.class_names),
           "scale": data.scale, "target_names": list(data.target_names), "task": data.task, "spec": data.spec,
           "info": info, "local_epochs": settings.local_epochs,
           "equal_weights": settings.noise_multiplier is not None}
    rounds: list[dict[str, Any]] = []
    outcome: dict[str, Any] = {}
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        started = [time.perf_counter()]

        def timed(server_round: int, arrays) -> None:
            if server_round > 0:
                now = time.perf_counter()
                rounds.append({"round": server_round, "seconds": round(now - started[0], 3)})
                started[0] = now
            return None

        result = _strategy(settings).start(grid=grid, initial_arrays=ArrayRecord(module.state_dict()),
                                           num_rounds=settings.rounds, evaluate_fn=timed,
                                           train_config=ConfigRecord({"warmstart": json.dumps(job)}))
        outcome["arrays"] = result.arrays.to_torch_state_dict()
        for server_round, metrics in result.train_metrics_clientapp.items():
            rounds[server_round - 1]["loss"] = float(metrics.get("loss", float("nan")))

    # Flower's note that run_simulation will give way to `flwr run` (deployment), and Ray's about GPU variables.
    logging.getLogger("flwr").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    cpus = max(1, min(settings.clients, os.cpu_count() or 1))
    started = time.perf_counter()
    try:
        run_simulation(server_app=server, client_app=_make_client_app(), num_supernodes=settings.clients,
                       backend_config={"client_resources": {"num_cpus": 1},
                                       "init_args": {"num_cpus": cpus, "include_dashboard": False,
                                                     "log_to_driver": False}})
    finally:
        scratch.cleanup()
    if "arrays" not in outcome or len(rounds) != settings.rounds:
        raise RuntimeError("the Flower simulation ended before its last round; see the log above")
    module.load_state_dict(outcome["arrays"])
    module.eval()
    sizes = np.bincount(owner_of_rows, minlength=settings.clients)
    summary = {"clients": settings.clients, "rounds": settings.rounds, "partition": settings.partition,
               "client_rows": sizes.tolist(), "seconds": round(time.perf_counter() - started, 2),
               "seconds_per_round": round(float(np.median([r["seconds"] for r in rounds])), 3)}
    if settings.noise_multiplier is not None:
        summary.update({"client_epsilon": round(client_epsilon(settings, settings.rounds), 4),
                        "client_delta": client_delta(settings)})
    if run_dir is not None:
        with open(run_dir / "metrics.jsonl", "a") as f:
            for record in rounds:
                f.write(json.dumps(record) + "\n")
    return rounds, summary


def module_encoder(module: nn.Module) -> nn.Module:
    return module.encoder
