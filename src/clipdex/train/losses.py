"""Contrastive losses: CLIP's InfoNCE (with optional hard negatives) and SigLIP's sigmoid loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["binding_loss", "clip_loss", "siglip_loss", "twin_separation_loss"]


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
              hard_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched pairs.

    Args:
        image: ``(b, d)`` unit image embeddings.
        text: ``(b, d)`` unit embeddings of the matching captions.
        logit_scale: log of the temperature's inverse (learned, clamped at 100).
        hard_negatives: ``(m, d)`` unit embeddings of wrong captions; they join
            the image -> text softmax as extra columns (NegCLIP), so the model
            must tell "red circle left of blue star" from its colour-swapped twin.
    """
    scale = logit_scale.exp().clamp(max=100.0)
    candidates = text if hard_negatives is None else torch.cat([text, hard_negatives])
    logits_i = scale * image @ candidates.t()
    logits_t = scale * text @ image.t()
    labels = torch.arange(len(image), device=image.device)
    return 0.5 * (F.cross_entropy(logits_i, labels) + F.cross_entropy(logits_t, labels))


def siglip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor,
                hard_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss; hard negatives add negative pairs with their image."""
    scale = logit_scale.exp().clamp(max=100.0)
    logits = scale * image @ text.t() + logit_bias
    labels = 2 * torch.eye(len(image), device=image.device) - 1
    loss = -F.logsigmoid(labels * logits).sum() / len(image)
    if hard_negatives is not None and len(hard_negatives):
        per = len(hard_negatives) // len(image)
        neg = hard_negatives.reshape(len(image), per, -1)
        neg_logits = scale * (neg @ image[:, :, None]).squeeze(-1) + logit_bias
        loss = loss - F.logsigmoid(-neg_logits).sum() / len(image)
    return loss


def binding_loss(image: torch.Tensor, text: torch.Tensor, hard_negatives: torch.Tensor,
                 logit_scale: torch.Tensor) -> torch.Tensor:
    """Each image against its own caption and its own hard negatives only.

    In the batch-wide softmax a sample's few twins are drowned by hundreds of
    easy captions; this term puts the whole gradient on "which of these
    near-identical captions is mine", which is what teaches attribute binding.
    """
    b = len(image)
    per = len(hard_negatives) // b
    scale = logit_scale.exp().clamp(max=100.0)
    own = (image * text).sum(-1, keepdim=True)
    twins = torch.einsum("bd,bkd->bk", image, hard_negatives.reshape(b, per, -1))
    logits = scale * torch.cat([own, twins], dim=1)
    return F.cross_entropy(logits, torch.zeros(b, dtype=torch.long, device=image.device))


def twin_separation_loss(text: torch.Tensor, hard_negatives: torch.Tensor, margin: float = 0.8) -> torch.Tensor:
    """Push each caption away from its own word-swapped twins, in the text space alone.

    Contrastive training starts in a symmetric trap: the text tower has no
    reason to tell "red circle left of blue star" from its twin until the image
    tower encodes the difference, and vice versa. This term breaks the text
    side out of it (cosine to each twin must fall below ``margin``), which
    gives the image tower a consistent target.
    """
    b = len(text)
    twins = hard_negatives.reshape(b, len(hard_negatives) // b, -1)
    cos = torch.einsum("bd,bkd->bk", text, twins)
    return F.relu(cos - margin).mean()
