"""Training of a cross-encoder reranker initialised from the embedder's encoder.

The encoder's weights already know the languages and the domain's words; only a small scoring
head is new. Loss: softmax cross-entropy over each query's group [positive, hard negatives...]
(FlagEmbedding's reranker loss). The word embeddings stay frozen: they are most of the model's
parameters (250k x 384 for e5-small), and without updates to them the model cannot forget words
that the few training questions never use.

Resumable (a checkpoint every ``checkpoint_every`` steps and at the time limit: weights in
safetensors, optimizer state loaded with ``weights_only``), bounded in time, with progress.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest.files import atomic_write, atomic_write_bytes, atomic_write_text
from rag_app.config import TuningSettings
from rag_app.tuning.training_data import TrainingExample

log = logging.getLogger(__name__)

Progress = Callable[[int, int, float], None]  # (step, total steps, recent mean loss)


@dataclass
class TrainingSummary:
    examples: int
    pairs_per_step: int
    steps: int
    total_steps: int
    epochs: int
    first_loss: float  # mean over the first tenth of the steps
    last_loss: float  # mean over the last tenth
    seconds: float
    stopped_at_time_limit: bool
    resumed_at_step: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _fingerprint(examples: Sequence[TrainingExample], settings: TuningSettings, base: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(settings.training_key(), sort_keys=True).encode())
    h.update(base.encode())
    for ex in examples:
        h.update(ex.to_json().encode())
    return h.hexdigest()[:16]


def build_cross_encoder(base_model: str, layers: int | None) -> tuple[Any, Any]:
    """(model, tokenizer): the encoder's weights (its first ``layers`` layers) under a new
    one-logit scoring head."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(base_model, num_labels=1)
    if layers:
        config.num_hidden_layers = min(layers, config.num_hidden_layers)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the expected "newly initialised classifier / unused layers" notes
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base_model, config=config, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    return model, tokenizer


class CrossEncoderTrainer:
    def __init__(self, settings: TuningSettings, base_model: str, work_dir: Path) -> None:
        self.settings = settings
        self.base_model = base_model
        self.work_dir = work_dir
        self.model: Any = None
        self.tokenizer: Any = None

    # --- batches --------------------------------------------------------------------------------
    def _groups(self, examples: Sequence[TrainingExample]) -> list[tuple[str, list[str]]]:
        """(query, [positive, negatives...]) with a fixed group size: groups short of negatives
        are dropped rather than padded (a padded group teaches nothing new)."""
        k = self.settings.negatives
        rng = random.Random(self.settings.seed)
        out = []
        for ex in examples:
            if len(ex.neg) < k:
                continue
            negs = ex.neg if len(ex.neg) == k else rng.sample(ex.neg, k)
            out.append((ex.query, [rng.choice(ex.pos), *negs]))
        return out

    def _schedule(self, n_groups: int) -> list[list[int]]:
        """Every step's group indices for all epochs, in a seeded order (so a resumed run continues
        with exactly the batches it had not done)."""
        b = self.settings.batch_queries
        steps: list[list[int]] = []
        for epoch in range(self.settings.epochs):
            order = list(range(n_groups))
            random.Random(self.settings.seed * 1000 + epoch).shuffle(order)
            steps.extend(order[i : i + b] for i in range(0, n_groups, b))
        return steps

    # --- training ------------------------------------------------------------------------------
    def train(
        self,
        examples: Sequence[TrainingExample],
        progress: Progress | None = None,
        time_limit_s: float | None = None,
    ) -> TrainingSummary:
        import torch

        s = self.settings
        device = resolve_device(s.device)
        torch.manual_seed(s.seed)
        groups = self._groups(examples)
        if not groups:
            raise ValueError(f"no training example has {s.negatives} negatives: nothing to train on")
        schedule = self._schedule(len(groups))
        model, tokenizer = build_cross_encoder(self.base_model, s.layers)
        model.get_input_embeddings().weight.requires_grad_(False)
        model.to(device).train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.01)
        warmup = max(1, int(0.1 * len(schedule)))

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (len(schedule) - step) / max(1, len(schedule) - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        fingerprint = _fingerprint(examples, s, self.base_model)
        start_step, losses, spent = self._resume(model, optimizer, scheduler, fingerprint)

        loss_fn = torch.nn.CrossEntropyLoss()
        started = time.monotonic()
        budget = None if time_limit_s is None else max(0.0, time_limit_s - spent)
        stopped = False
        step = start_step
        for step in range(start_step, len(schedule)):
            if budget is not None and time.monotonic() - started > budget:
                stopped = True
                break
            batch = [groups[i] for i in schedule[step]]
            queries = [q for q, passages in batch for _ in passages]
            passages = [p for _, ps in batch for p in ps]
            enc = tokenizer(
                queries, passages, padding=True, truncation="only_second", max_length=s.max_tokens, return_tensors="pt"
            ).to(device)
            logits = model(**enc).logits.view(len(batch), -1)
            loss = loss_fn(logits, torch.zeros(len(batch), dtype=torch.long, device=device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.item()))
            if progress:
                progress(step + 1, len(schedule), sum(losses[-20:]) / len(losses[-20:]))
            if (step + 1) % s.checkpoint_every == 0:
                log.info("training step %d/%d, loss %.3f (mean of the last 20)", step + 1, len(schedule),
                         sum(losses[-20:]) / len(losses[-20:]))
                elapsed = spent + time.monotonic() - started
                self._checkpoint(model, optimizer, scheduler, step + 1, losses, elapsed, fingerprint)
        else:
            step = len(schedule)
        seconds = spent + time.monotonic() - started
        self._checkpoint(model, optimizer, scheduler, step, losses, seconds, fingerprint)
        model.eval()
        self.model, self.tokenizer = model, tokenizer
        tenth = max(1, len(losses) // 10)
        return TrainingSummary(
            examples=len(groups),
            pairs_per_step=s.batch_queries * (1 + s.negatives),
            steps=step,
            total_steps=len(schedule),
            epochs=s.epochs,
            first_loss=sum(losses[:tenth]) / tenth if losses else math.nan,
            last_loss=sum(losses[-tenth:]) / tenth if losses else math.nan,
            seconds=round(seconds, 1),
            stopped_at_time_limit=stopped,
            resumed_at_step=start_step,
            device=device,
        )

    # --- checkpoints -----------------------------------------------------------------------------
    @property
    def _checkpoint_dir(self) -> Path:
        return self.work_dir / "checkpoint"

    def _checkpoint(self, model: Any, optimizer: Any, scheduler: Any, step: int, losses: list[float],
                    seconds: float, fingerprint: str) -> None:
        import torch
        from safetensors.torch import save

        ckpt = self._checkpoint_dir
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(ckpt / "model.safetensors", save(weights), fsync=False)
        optimizer_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        atomic_write(ckpt / "optimizer.pt", lambda out: torch.save(optimizer_state, out), fsync=False)
        # Last: a checkpoint counts only once its state names the step the files above hold.
        state = {"step": step, "losses": losses, "seconds": seconds, "fingerprint": fingerprint}
        atomic_write_text(ckpt / "state.json", json.dumps(state), fsync=False)

    def _resume(self, model: Any, optimizer: Any, scheduler: Any, fingerprint: str) -> tuple[int, list[float], float]:
        """(step, losses, seconds) of a checkpoint of this same run, else a fresh start."""
        import torch
        from safetensors.torch import load_file

        state_path = self._checkpoint_dir / "state.json"
        if not state_path.is_file():
            return 0, [], 0.0
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return 0, [], 0.0
        if state.get("fingerprint") != fingerprint:
            log.info("checkpoint in %s is from other data or settings: starting afresh", self._checkpoint_dir)
            return 0, [], 0.0
        model.load_state_dict(load_file(self._checkpoint_dir / "model.safetensors"))
        # weights_only: a restricted unpickler that builds tensors and plain containers, nothing else.
        opt = torch.load(self._checkpoint_dir / "optimizer.pt", weights_only=True)
        optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        log.info("resuming training at step %d", state["step"])
        return int(state["step"]), list(state["losses"]), float(state["seconds"])

    # --- output ----------------------------------------------------------------------------------
    def merge_with_base(self, alpha: float) -> None:
        """Encoder weights = alpha * tuned + (1 - alpha) * base (the scoring head stays tuned):
        a model that keeps more of what the base knew, for a little of what it learnt."""
        import torch

        if alpha >= 1.0:
            return
        base, _ = build_cross_encoder(self.base_model, self.settings.layers)
        base_state = base.state_dict()
        with torch.no_grad():
            for name, p in self.model.state_dict().items():
                if name in base_state and "classifier" not in name and p.dtype.is_floating_point:
                    p.copy_(alpha * p + (1.0 - alpha) * base_state[name].to(p.device))

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.model.to("cpu").save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)
