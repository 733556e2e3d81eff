"""The training loop: AdamW, warm-up + cosine, accumulation, checkpoints, resume, JSONL log.

One step: a batch of (image, caption, hard negatives) -> both towers -> loss
-> backward; every ``val_every`` steps, held-out Recall@K and binding probes.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from clipdex.errors import ClipdexError, SourceError
from clipdex.train.adapters import Adapter, make_adapter
from clipdex.train.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint
from clipdex.train.config import TrainConfig, load_train_config
from clipdex.train.data import SourceData, SynthData, prefetch
from clipdex.train.losses import binding_loss, clip_loss, siglip_loss, twin_separation_loss
from clipdex.train.model import ImageTower
from clipdex.train.scene import SceneHeads, scene_loss

__all__ = ["TrainResult", "export_trained", "train", "validate"]


@dataclass
class TrainResult:
    steps: int
    seconds: float
    last_loss: float
    validation: dict[str, float]
    skipped_samples: int


LogFn = Callable[[dict[str, Any]], None]


def lr_at(step: int, cfg: TrainConfig, total: int) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, total - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(cfg: TrainConfig, resume: bool = False, on_log: LogFn | None = None) -> TrainResult:
    """Train (or fine-tune) a dual encoder; see :class:`TrainConfig`.

    Raises:
        ClipdexError: bad configuration, or a resume that does not match.
    """
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not resume:
        raise ClipdexError(f"{out} is not empty; pass --resume to continue that run or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    adapter = make_adapter(cfg.model, cfg.freeze, cfg.stem, cfg.text_conv, cfg.grid_readout, cfg.embed_dim)
    data = _data(cfg, adapter)
    if cfg.scene_weight > 0:
        if not isinstance(data, SynthData) or not isinstance(adapter.image_tower, ImageTower):
            raise ClipdexError("--scene-weight needs the synthetic world's scene graphs (--data synth) "
                               "and the built-in model")
        # part of the module, so checkpoints and resume carry the heads; export leaves them out
        adapter.module.scene_heads = SceneHeads(adapter.runtime.dim, adapter.image_tower.width)
    if cfg.init and not resume:  # on resume the run's own checkpoint already holds the stage-one weights
        load_weights(Path(cfg.init), adapter.module, adapter.arch)
    total = cfg.steps
    if cfg.epochs is not None and isinstance(data, SourceData):
        total = cfg.epochs * data.steps_per_epoch() // cfg.accum
    params = [p for p in adapter.module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    # a run killed before its first checkpoint resumes from step 0, with its recorded settings
    start = load_checkpoint(out, adapter.module, optimizer, adapter.arch) \
        if resume and (out / "latest.json").exists() else 0
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    _truncate_log(out / "log.jsonl", start)
    log = (out / "log.jsonl").open("a")
    t0, loss_value, validation, skipped = time.perf_counter(), float("nan"), {}, 0
    micro = range(start * cfg.accum, total * cfg.accum)
    adapter.module.train()
    try:
        for micro_step, batch in prefetch(data.batch, micro):
            step = micro_step // cfg.accum
            skipped += batch.skipped
            if len(batch.captions) < 2:
                continue
            loss = _loss(adapter, batch, cfg) / cfg.accum
            loss.backward()
            loss_value = float(loss.detach()) * cfg.accum
            if (micro_step + 1) % cfg.accum:
                continue
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg, total)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            record = {"step": step + 1, "loss": round(loss_value, 5), "lr": optimizer.param_groups[0]["lr"],
                      "temperature": round(float(adapter.logit_scale.detach().exp()), 4),
                      "elapsed_s": round(time.perf_counter() - t0, 2)}
            if cfg.val_every and ((step + 1) % cfg.val_every == 0 or step + 1 == total):
                validation = validate(adapter, cfg.val_size)
                record.update(validation)
                adapter.module.train()
            log.write(json.dumps(record) + "\n")
            log.flush()
            if on_log:
                on_log({**record, "total": total})
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
                save_checkpoint(out, adapter.module, optimizer, step + 1, {"arch": adapter.arch})
    finally:
        log.close()
    return TrainResult(total, time.perf_counter() - t0, loss_value, validation, skipped)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records past the checkpoint we resume from (they are about to be redone)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _data(cfg: TrainConfig, adapter: Adapter) -> SynthData | SourceData:
    if cfg.data == "synth":
        return SynthData(cfg.seed, cfg.batch_size, adapter.runtime, cfg.hard_negatives, p_relation=cfg.p_relation,
                         counterfactuals=cfg.counterfactuals, p_cross=cfg.p_cross,
                         p_position=cfg.p_position, styles=cfg.styles)
    from clipdex.media.sources import SourceOptions

    options = SourceOptions(image_col=cfg.image_col, caption_col=cfg.caption_col)
    return SourceData(cfg.data, cfg.seed, cfg.batch_size, adapter.runtime, cfg.hard_negatives, options)


def _loss(adapter: Adapter, batch: Any, cfg: TrainConfig) -> torch.Tensor:
    pixels = torch.from_numpy(batch.pixels)
    negatives = [n for negs in batch.negatives for n in negs]
    per = len(negatives) // len(batch.captions) if negatives else 0
    negatives = negatives if per and len(negatives) == per * len(batch.captions) else []
    scene = cfg.scene_weight > 0 and batch.cells is not None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        if scene:
            projected, grid = cast(ImageTower, adapter.image_tower).features(pixels)
            image = torch.nn.functional.normalize(projected, dim=-1)
        else:
            image = adapter.encode_image(pixels)
        text_all = adapter.encode_text(list(batch.captions) + negatives)
    image, text_all = image.float(), text_all.float()
    text, hard = text_all[: len(batch.captions)], text_all[len(batch.captions):]
    hard_t = hard if len(hard) else None
    if cfg.loss == "siglip":
        loss = siglip_loss(image, text, adapter.logit_scale, adapter.logit_bias, hard_t)
    else:
        loss = clip_loss(image, text, adapter.logit_scale, hard_t)
    if hard_t is not None and cfg.binding_weight > 0:
        loss = loss + cfg.binding_weight * binding_loss(image, text, hard_t, adapter.logit_scale)
    if hard_t is not None and cfg.twin_margin is not None:
        loss = loss + twin_separation_loss(text, hard_t, cfg.twin_margin)
    if scene:
        heads = cast(SceneHeads, adapter.module.scene_heads)
        loss = loss + cfg.scene_weight * scene_loss(heads, grid.float(), image, text, batch.cells, batch.pairs,
                                                    batch.roles, batch.has_roles, cfg.role_weight,
                                                    batch.places, batch.counts, cfg.place_weight)
    return loss


@torch.no_grad()
def validate(adapter: Adapter, n: int = 500) -> dict[str, float]:
    """Held-out synthetic Recall@K and binding probes (seeds never used in training)."""
    from clipdex.encoders.preprocess import preprocess_image
    from clipdex.synth.probes import binding_probes, synth_retrieval

    adapter.module.eval()

    def images(ims: list[Any]) -> np.ndarray:
        pixels = torch.from_numpy(np.stack([preprocess_image(im, adapter.runtime) for im in ims]))
        return torch.cat([adapter.encode_image(pixels[i:i + 256]) for i in range(0, len(pixels), 256)]).numpy()

    def texts(ts: list[str]) -> np.ndarray:
        return torch.cat([adapter.encode_text(ts[i:i + 512]) for i in range(0, len(ts), 512)]).numpy()

    size = adapter.runtime.image_size
    out = synth_retrieval(images, texts, n=n, seed=424_242, captions_per_image=1, image_size=size)
    probes = binding_probes(images, texts, n=n, seed=515_151, image_size=size)
    return {"val_t2i_R@1": out["t2i_R@1"], "val_t2i_R@5": out["t2i_R@5"],
            "val_color_swap": probes["color_swap"], "val_relation_flip": probes["relation_flip"]}


def export_trained(run: str | Path, out: str | Path, force: bool = False) -> Path:
    """Export a run's checkpoint to an ``onnx:`` folder."""
    from safetensors.torch import load_file

    from clipdex.encoders.export import export_onnx_folder

    run = Path(run)
    cfg_path = run / "train_config.json"
    if not cfg_path.exists():
        raise SourceError(f"{run} is not a training run (expected train_config.json)")
    checkpoint = latest_checkpoint(run)
    cfg = load_train_config(cfg_path)
    adapter = make_adapter(cfg.model, stem=cfg.stem, text_conv=cfg.text_conv, grid_readout=cfg.grid_readout,
                           embed_dim=cfg.embed_dim)
    weights = load_file(str(checkpoint / "model.safetensors"))
    adapter.module.load_state_dict({k: v for k, v in weights.items() if not k.startswith("scene_heads.")})
    adapter.module.eval()
    tok = adapter.tokenizer
    tok.no_padding()
    return export_onnx_folder(adapter.image_tower, adapter.text_tower, tok, adapter.runtime, out, force=force)


