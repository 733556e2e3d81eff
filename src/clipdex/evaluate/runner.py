"""Evaluation runs: embed with the shared encoder and media code, score, bootstrap.

Each ``run_*`` returns an :class:`EvalResult` holding the means, their 95%
bootstrap intervals, the per-query values (for ``compare``) and the facts
needed to reproduce it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipdex import metrics as M
from clipdex.encode import embed_images
from clipdex.errors import SourceError
from clipdex.evaluate.bootstrap import bootstrap_ci
from clipdex.evaluate.datasets import (
    load_alignment,
    load_classes,
    load_composed,
    load_ranking,
    load_retrieval,
)
from clipdex.linalg import l2_normalize
from clipdex.search.composed import ComposedParams, caption_means, composed_queries, fusion_scores

if TYPE_CHECKING:
    from clipdex.collection import Collection
    from clipdex.encoders.base import Encoder

__all__ = ["DEFINITIONS", "EvalResult", "run_alignment", "run_composed", "run_ranking",
           "run_retrieval", "run_zeroshot"]

DEFINITIONS = {
    "color_swap": "two-object scenes: the true caption outscores it with the two colours swapped",
    "color_shape_mAP": "mean over colour+shape queries of average precision: images holding that object are "
                       "relevant",
    "relation_flip": "two-object scenes: the true caption outscores it with the relation flipped (left of -> "
                     "right of)",
    "t2i_R@K": "text->image: share of captions whose image ranks in the top K (ties favour the target)",
    "i2t_R@K": "image->text: share of images with any of their captions in the top K",
    "datacomp_retrieval": "mean of t2i_R@1 and i2t_R@1",
    "topK": "zero-shot: share of images whose class ranks in the top K; classes are the mean of "
            "normalised template embeddings",
    "mean_per_class_recall": "zero-shot: top-1 recall averaged over classes",
    "AP@K": "INQUIRE: sum over relevant ranks r<=K of precision@r, divided by min(#relevant, K)",
    "nDCG@K": "binary gains, log2 discounts, ideal = relevant items first",
    "P@K": "relevant share of the first K results",
    "cirr_R@K": "composed: target in the top K, the reference image removed from the gallery",
    "fashioniq_R@K": "composed: target in the top K of the category's gallery (two captions joined by 'and')",
    "circo_mAP@K": "composed: AP@K over the ground-truth set (denominator min(#gt, K)), reference removed",
    "cirr_Rsubset@K": "composed: target in the top K within the triplet's image set, reference removed",
    "clipscore": "2.5 * max(cos(image, prompt), 0), averaged over images",
    "ranking_accuracy": "share of prompts whose marked best image has the highest CLIPScore",
}


@dataclass
class EvalResult:
    kind: str
    metrics: dict[str, dict[str, Any]]
    per_query: dict[str, list[float]]
    meta: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> float:
        return float(self.metrics[name]["value"])


def file_hash(path: str | Path) -> str:
    """sha256 of a file, or of every file under a folder (sorted), first 16 hex digits."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def _meta(kind: str, encoder: Encoder | None, data: str | Path, seed: int, **extra: Any) -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            return "not installed"

    folder = getattr(encoder, "folder", None)
    return {
        "kind": kind, "model": getattr(encoder, "spec", None),
        "model_hash": file_hash(folder) if folder else None,
        "data": str(data), "data_hash": file_hash(data) if Path(data).exists() else None, "seed": seed,
        "versions": {n: version(n) for n in ("clipdex", "onnxruntime", "numpy")},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra,
    }


def _summarise(kind: str, per_query: dict[str, np.ndarray], seed: int, meta: dict[str, Any],
               extra: dict[str, float] | None = None) -> EvalResult:
    out: dict[str, dict[str, Any]] = {}
    for name, values in per_query.items():
        lo, hi = bootstrap_ci(values, seed=seed)
        out[name] = {"value": float(np.mean(values)), "ci95": [lo, hi], "n": int(len(values))}
    for name, value in (extra or {}).items():
        out[name] = {"value": float(value), "ci95": None, "n": None}
    definitions = {k: v for k, v in DEFINITIONS.items() if any(k.split("@")[0] in m for m in out)}
    meta["definitions"] = definitions
    return EvalResult(kind, out, {k: [float(x) for x in v] for k, v in per_query.items()}, meta)


def run_retrieval(data: str | Path, encoder: Encoder, images_root: str | Path | None = None,
                  split: str | None = "test", ks: tuple[int, ...] = (1, 5, 10), seed: int = 0) -> EvalResult:
    """Image-text retrieval on a Karpathy-split JSON."""
    ds = load_retrieval(data, images_root, split)
    image_emb, ok = embed_images(encoder, ds.images)
    skipped = dict(ds.skipped, undecodable_image=int((~ok).sum()))
    keep_img = np.flatnonzero(ok)
    remap = -np.ones(len(ds.images), np.int64)
    remap[keep_img] = np.arange(len(keep_img))
    owner = remap[np.asarray(ds.caption_image)]
    keep_cap = owner >= 0
    texts = [c for c, k in zip(ds.captions, keep_cap, strict=True) if k]
    text_emb = encoder.encode_texts(texts)
    per = M.retrieval_recalls(text_emb, image_emb[keep_img], owner[keep_cap], ks)
    extra = {"datacomp_retrieval": (per["t2i_R@1"].mean() + per["i2t_R@1"].mean()) / 2}
    meta = _meta("retrieval", encoder, data, seed, images=len(keep_img), captions=len(texts), split=split,
                 skipped=skipped, ks=list(ks), unknown_fields=ds.unknown_fields)
    return _summarise("retrieval", per, seed, meta, extra)


def run_retrieval_embeddings(emb: str | Path, ks: tuple[int, ...] = (1, 5, 10), seed: int = 0) -> EvalResult:
    """Image-text retrieval from an embedding folder (clip-retrieval's layout), with no model run.

    Rows with the same ``image_path`` (else ``key``) are one image with several captions, as a
    pool of 5 captions per image is written; a row's caption (its ``text_emb`` row) targets its image.
    """
    import pyarrow.parquet as pq

    from clipdex.embeddings.layout import read_model_card, read_parts

    parts, skipped = read_parts(emb)
    image_of: dict[str, int] = {}
    image_rows: list[np.ndarray] = []
    texts: list[np.ndarray] = []
    owner: list[int] = []
    for part in parts:
        meta = pq.read_table(part.metadata).to_pylist()
        images = np.load(part.npy).astype(np.float32)
        text_file = Path(emb) / "text_emb" / part.npy.name.replace("img_emb", "text_emb")
        text = np.load(text_file).astype(np.float32) if text_file.exists() else np.zeros_like(images)
        for i, row in enumerate(meta):
            identity = str(row.get("image_path") or row.get("key") or f"{part.npy.name}:{i}")
            if identity not in image_of:
                image_of[identity] = len(image_rows)
                image_rows.append(images[i])
            if row.get("caption") and np.any(text[i]):
                texts.append(text[i])
                owner.append(image_of[identity])
    if not texts:
        raise SourceError(f"{emb}: no caption vectors (text_emb/) to evaluate retrieval with")
    per = M.retrieval_recalls(l2_normalize(np.stack(texts)), l2_normalize(np.stack(image_rows)), np.asarray(owner),
                              ks)
    extra = {"datacomp_retrieval": (per["t2i_R@1"].mean() + per["i2t_R@1"].mean()) / 2}
    meta_out = _meta("retrieval", None, emb, seed, model=read_model_card(emb), images=len(image_rows),
                     captions=len(texts), skipped=skipped, ks=list(ks))
    return _summarise("retrieval", per, seed, meta_out, extra)


def run_zeroshot(data: str | Path, encoder: Encoder, templates: list[str] | None = None,
                 ks: tuple[int, ...] = (1, 5), seed: int = 0) -> EvalResult:
    """Zero-shot classification; class embeddings average the normalised template prompts."""
    ds = load_classes(data)
    templates = templates or ["a photo of a {}.", "{}", "a picture of a {}."]
    class_emb = np.stack([encoder.encode_texts([t.format(c) for t in templates]).mean(axis=0)
                          for c in ds.classnames])
    class_emb /= np.linalg.norm(class_emb, axis=1, keepdims=True)
    image_emb, ok = embed_images(encoder, ds.paths)
    labels = np.asarray(ds.labels)[ok]
    ks = tuple(k for k in ks if k <= len(ds.classnames)) or (1,)
    res = M.zero_shot_accuracy(image_emb[ok], class_emb, labels, ks)
    per = {k: v for k, v in res.items() if isinstance(v, np.ndarray)}
    extra = {"mean_per_class_recall": float(res["mean_per_class_recall"])}  # type: ignore[arg-type]
    meta = _meta("zeroshot", encoder, data, seed, images=int(ok.sum()), classes=len(ds.classnames),
                 templates=templates, skipped={"undecodable_image": int((~ok).sum())})
    return _summarise("zeroshot", per, seed, meta, extra)


def run_ranking(data: str | Path, collection: Collection, k: int = 50, seed: int = 0) -> EvalResult:
    """INQUIRE-style ranking: full-rank over a collection, or rerank of each query's candidates."""
    from clipdex.search.query import Query
    from clipdex.search.searcher import search

    ds = load_ranking(data)
    encoder = collection.encoder()
    view = collection.vectors("image")
    paths = {i: os.path.abspath(r.path) for i, r in collection.items(view.item_ids.tolist()).items()}
    row_of_path = {paths[int(item)]: row for row, item in enumerate(view.item_ids) if int(item) in paths}
    # stored paths are absolute; the file's are taken from the working directory, as `index` takes them
    relevant_sets = [{os.path.abspath(p) for p in rel} for rel in ds.relevant]
    candidate_lists = [None if c is None else [os.path.abspath(p) for p in c] for c in ds.candidates]
    named = set().union(*relevant_sets) if relevant_sets else set()
    if not named & set(paths.values()):
        raise SourceError(f"{data}: none of its {len(named)} relevant paths is an image of {collection.path} "
                          "(they are compared as absolute paths); check the paths against `clipdex info`")
    ranked = np.zeros((len(ds.queries), k))
    n_rel = np.zeros(len(ds.queries))
    for q, (text, relevant, cands) in enumerate(zip(ds.queries, relevant_sets, candidate_lists, strict=True)):
        if cands is None:
            order = [os.path.abspath(h.path) for h in search(collection, Query(text=text, k=k), encoder)]
            n_rel[q] = len(relevant)
        else:  # rerank mode: score only the given candidates
            vec = encoder.encode_texts([text])[0]
            rows = [row_of_path[c] for c in cands if c in row_of_path]
            scores = view.matrix[rows] @ vec
            order = [paths[int(view.item_ids[rows[j]])] for j in np.argsort(-scores, kind="stable")][:k]
            n_rel[q] = len(relevant & set(cands))
        ranked[q, : len(order)] = [p in relevant for p in order]
    gains = [np.ones(int(n)) for n in n_rel]
    per = {f"AP@{k}": M.ap_at_k(ranked, n_rel, k), f"nDCG@{k}": M.ndcg_at_k(ranked, gains, k),
           "P@10": M.precision_at_k(ranked, 10), f"P@{k}": M.precision_at_k(ranked, k)}
    meta = _meta("ranking", encoder, data, seed, collection=str(collection.path), queries=len(ds.queries),
                 mode="rerank" if any(c is not None for c in ds.candidates) else "full",
                 unknown_fields=ds.unknown_fields)
    result = _summarise("ranking", per, seed, meta)
    result.metrics[f"mAP@{k}"] = result.metrics[f"AP@{k}"]
    return result


def run_composed(data: str | Path, encoder: Encoder, method: str = "sum", images_root: str | Path | None = None,
                 ks: tuple[int, ...] = (1, 5, 10, 50), seed: int = 0,
                 params: ComposedParams = ComposedParams()) -> EvalResult:
    """Composed retrieval in the format's own metrics (the reference image is never retrieved).

    CIRR: Recall@K and Recall_subset@1/2/3; FashionIQ: Recall@10/50; CIRCO: mAP@5/10/25/50.
    """
    ds = load_composed(data, images_root)
    names = list(ds.gallery)
    index = {n: i for i, n in enumerate(names)}
    gallery, ok = embed_images(encoder, [ds.gallery[n] for n in names])
    ref_rows = np.asarray([index[r] for r in ds.references])
    queries = composed_queries(method, encoder, gallery[ref_rows], ds.texts, _reference_captions(ds, method), params)
    if method == "caption-fusion":
        means, has = gallery_caption_means(encoder, names, ds.gallery_captions)
        scores = fusion_scores(queries, gallery, means, has, params.fusion_beta)
    else:
        scores = queries @ gallery.T
    scores[:, ~ok] = -np.inf
    scores[np.arange(len(queries)), ref_rows] = -np.inf  # never retrieve the reference itself
    if ds.fmt == "circo":
        per = _circo_map(scores, ds, index)
    else:
        targets = np.asarray([index[t[0]] for t in ds.targets])
        rank = M.rank_of_targets(scores, targets)
        if ds.fmt == "fashioniq":
            ks = (10, 50)
        per = {f"{ds.fmt}_R@{k}": (rank < k).astype(np.float64) for k in ks}
        if ds.fmt == "cirr":
            per.update(_cirr_subset(scores, ds, index, targets))
    meta = _meta("composed", encoder, data, seed, format=ds.fmt, method=method, queries=len(ds.texts),
                 gallery=len(names), skipped={"undecodable_image": int((~ok).sum())})
    return _summarise("composed", per, seed, meta)


def _reference_captions(ds: Any, method: str) -> list[str] | None:
    if method != "pdv":
        return None
    if any(c is None for c in ds.reference_captions) or not ds.reference_captions:
        raise SourceError("pdv needs a caption of each reference image ('reference_caption' in the annotations)")
    return list(ds.reference_captions)


def gallery_caption_means(encoder: Encoder, names: list[str], captions: dict[str, list[str]]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per gallery image, the mean of its unit caption vectors, and whether it has any."""
    if not captions:
        raise SourceError("caption-fusion needs the gallery's captions (captions/gallery_captions.json)")
    flat = [(i, c) for i, n in enumerate(names) for c in captions.get(n, [])]
    vectors = encoder.encode_texts([c for _, c in flat])
    return caption_means(vectors, np.asarray([i for i, _ in flat], np.int64), len(names))


def _cirr_subset(scores: np.ndarray, ds: Any, index: dict[str, int], targets: np.ndarray) -> dict[str, np.ndarray]:
    ranks = []
    for q, members in enumerate(ds.subsets):
        cols = [index[m] for m in members if m != ds.references[q]] or [int(targets[q])]
        ranks.append(int((scores[q, cols] > scores[q, targets[q]]).sum()))
    return {f"cirr_Rsubset@{k}": (np.asarray(ranks) < k).astype(np.float64) for k in (1, 2, 3)}


def _circo_map(scores: np.ndarray, ds: Any, index: dict[str, int]) -> dict[str, np.ndarray]:
    top = M.topk_indices(scores, 50)
    relevant = np.zeros(top.shape)
    for q, gts in enumerate(ds.targets):
        relevant[q] = np.isin(top[q], [index[g] for g in gts])
    n_rel = np.asarray([len(g) for g in ds.targets])
    return {f"circo_mAP@{k}": M.ap_at_k(relevant, n_rel, k) for k in (5, 10, 25, 50)}


def run_alignment(data: str | Path, encoder: Encoder, images_root: str | Path | None = None,
                  seed: int = 0) -> EvalResult:
    """CLIPScore of generated images against their prompts, and best-image ranking accuracy."""
    ds = load_alignment(data, images_root)
    flat = [p for images in ds.images for p in images]
    image_emb, ok = embed_images(encoder, flat)
    if not ok.any():
        raise SourceError(f"{data}: none of its {len(flat)} images could be read (check the paths and --images)")
    text_emb = encoder.encode_texts(ds.prompts)
    owner = np.repeat(np.arange(len(ds.prompts)), [len(i) for i in ds.images])
    scores = M.clipscore(image_emb, text_emb[owner])
    per: dict[str, np.ndarray] = {"clipscore": scores[ok]}
    judged = [q for q, b in enumerate(ds.best) if b is not None]
    if judged:
        hits = []
        for q in judged:
            s = np.where(ok[owner == q], scores[owner == q], -np.inf)
            hits.append(float(int(np.argmax(s)) == int(ds.best[q])))  # type: ignore[arg-type]
        per["ranking_accuracy"] = np.asarray(hits)
    meta = _meta("alignment", encoder, data, seed, prompts=len(ds.prompts), images=int(ok.sum()),
                 skipped={"undecodable_image": int((~ok).sum())}, unknown_fields=ds.unknown_fields)
    return _summarise("alignment", per, seed, meta)


def run_binding(encoder: Encoder, n: int = 500, seed: int = 99_001, styles: str = "held-out", boot_seed: int = 0,
                retrieval_n: int = 500) -> EvalResult:
    """Attribute and relation binding on the training renderer and on other rendering styles, side by side.

    ``[in]`` is the synthetic world's own renderer; ``[STYLES]`` draws the same probe scenes in the chosen
    styles (:mod:`clipdex.synth.styles`; ``held-out`` by default: never seen in training), one style per
    scene in turn, each also reported alone. Text->image R@5 over ``retrieval_n`` images of each.

    Raises:
        UsageError: an unknown style.
    """
    from clipdex.errors import UsageError
    from clipdex.synth.probes import binding_outcomes, color_shape_ap, synth_retrieval
    from clipdex.synth.styles import STYLES, render_styled, style_names

    try:
        names = style_names(styles)
    except ValueError as e:
        raise UsageError(str(e)) from e

    def encode(images: list[Any]) -> np.ndarray:
        return encoder.encode_pixels(np.stack([encoder.preprocess(im) for im in images]))

    def styled(scene: Any, i: int) -> Any:
        return render_styled(scene, STYLES[names[i % len(names)]], 64, seed=i)

    per: dict[str, np.ndarray] = {}
    extra: dict[str, float] = {}
    label = styles if styles in ("held-out", "train", "all") else "styles"
    for tag, render in (("in", None), (label, styled)):
        swap, flip = binding_outcomes(encode, encoder.encode_texts, n, seed, render=render)
        per[f"color_swap[{tag}]"], per[f"relation_flip[{tag}]"] = swap.astype(float), flip.astype(float)
        extra[f"t2i_R@5[{tag}]"] = synth_retrieval(encode, encoder.encode_texts, retrieval_n, seed + 1,
                                                   captions_per_image=1, render=render)["t2i_R@5"]
        per[f"color_shape_mAP[{tag}]"] = color_shape_ap(encode, encoder.encode_texts, retrieval_n, seed + 2, render)
        if render is not None and len(names) > 1:
            which = np.arange(len(swap)) % len(names)
            for k, name in enumerate(names):
                per[f"relation_flip[{name}]"] = flip[which == k].astype(float)
                per[f"color_swap[{name}]"] = swap[which == k].astype(float)
    meta = _meta("binding", encoder, f"synthetic world, probe seed {seed}", boot_seed, styles=list(names),
                 probe_scenes=int(len(per["color_swap[in]"])), retrieval_images=retrieval_n)
    return _summarise("binding", per, boot_seed, meta, extra)
