"""Visual-quality metrics of rendered images: LPIPS diversity and FID / KID.

* **LPIPS diversity** (:func:`lpips_diversity`): each source person is rendered into ``T``
  different target contexts; the score is the mean LPIPS distance between the renderings of
  the same person, over all unordered pairs and all persons. Higher means more diverse: a
  renderer that ignores the context scores 0.
* **FID / KID** (:func:`fid_kid`): Frechet and kernel Inception distances between two image
  sets, on the 2048-d pool features of torch-fidelity's Inception-v3 port
  (``inception-v3-compat``, the TensorFlow FID network; torch-fidelity resizes every image to
  299 x 299 inside the network, bilinearly as TensorFlow 1.x did, without keeping the aspect
  ratio). Lower means closer distributions. FID is biased at small sample sizes: compare values
  computed with the same number of images only.

Networks come from the field's libraries: :mod:`lpips` (its calibrated linear layers ship inside
the package) and :mod:`torch_fidelity`. Pretrained backbone weights follow the library rule:
online, the library's own download; offline, an explicit local file (``pretrained_path`` /
``weights_path``); a failed download or a file that does not fit ends in one
:class:`~crgan_lightning.errors.WeightsError` naming the file and the argument. There is never a
silent random initialisation.

All images follow the library convention: float tensors in [-1, 1], RGB, NCHW (the Inception
functions also accept uint8 images in [0, 255]). Nothing here imports ``data``, ``modules`` or
Lightning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import lpips
import torch
import torchvision.models as tvm
from torch_fidelity import FeatureExtractorInceptionV3
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.utils import create_feature_extractor
from tqdm.auto import tqdm

from ..checkpoints import read_state_dict
from ..errors import ConfigError, WeightsError, brief
from .plots import uint8_range

__all__ = [
    "LPIPS_BACKBONES",
    "build_inception",
    "build_lpips",
    "fid_kid",
    "fid_kid_from_features",
    "frechet_distance",
    "inception_features",
    "lpips_diversity",
    "lpips_pairs",
    "to_uint8",
]

#: LPIPS trunk name -> (torchvision network, its ImageNet weights). The weights' file name is
#: what ``pretrained_path`` should point to offline.
LPIPS_BACKBONES = {
    "alex": ("AlexNet", tvm.AlexNet_Weights.IMAGENET1K_V1),
    "vgg": ("VGG-16", tvm.VGG16_Weights.IMAGENET1K_V1),
    "squeeze": ("SqueezeNet 1.1", tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1),
}

INCEPTION_NAME = "inception-v3-compat"
INCEPTION_FEATURE = "2048"
#: Smallest set size for which :func:`fid_kid` computes KID (smaller sets give meaningless subsets).
MIN_KID_SAMPLES = 10
#: Largest KID subset (torch-fidelity's default); smaller sets use all their images per subset.
MAX_KID_SUBSET = 1000


def _weights_file(url: str) -> str:
    return os.path.basename(url)


def _read_state_dict(path: Path, what: str, argument: str) -> dict[str, torch.Tensor]:
    """The state dict of a local weight file, with messages naming the argument that gave it."""
    return read_state_dict(path, what, missing=f"{{what}} weights file {{path}} ({argument}) does not exist",
                           unreadable=f"cannot read {{what}} weights {{path}} ({argument}): {{reason}}",
                           not_a_state_dict=f"{{path}} ({argument}) is not a state dict of {{what}} weights "
                                            "(a dict of tensors)")


# ---------------------------------------------------------------------------------------- LPIPS


def build_lpips(net: str = "alex", pretrained_path: str | os.PathLike | None = None,
                device: str | torch.device = "cpu") -> lpips.LPIPS:
    """The LPIPS v0.1 distance with ImageNet backbone ``net`` (``alex``, ``vgg`` or ``squeeze``).

    The calibrated linear layers ship inside the ``lpips`` package. The backbone's ImageNet
    weights are downloaded by torchvision when ``pretrained_path`` is None; offline,
    ``pretrained_path`` is the local torchvision state dict of that backbone (for ``alex``:
    ``alexnet-owt-7be5be79.pth``, see :data:`LPIPS_BACKBONES`). Its ``features.N.*`` tensors are
    loaded strictly into the LPIPS backbone slices (the ``classifier.*`` head is not used).

    Returns the model in eval mode with frozen weights on ``device``; call it as
    ``model(x, y)`` on (B, 3, H, W) images in [-1, 1] (or use :func:`lpips_pairs`).

    Raises :class:`WeightsError` when the download fails or the file is missing, unreadable or
    not the weights of that backbone.
    """
    if net not in LPIPS_BACKBONES:
        raise ConfigError(f"LPIPS net={net!r}; expected one of {', '.join(LPIPS_BACKBONES)}")
    backbone, weights = LPIPS_BACKBONES[net]
    file_name = _weights_file(weights.url)
    if pretrained_path is None:
        try:
            model = _lpips(net, random_backbone=False)
        except Exception as exc:
            raise WeightsError(
                f"cannot download the ImageNet {backbone} weights of the LPIPS backbone ({file_name}: "
                f"{brief(exc)}); offline, pass the local file as pretrained_path"
            ) from None
    else:
        path = Path(pretrained_path).expanduser()
        state = _read_state_dict(path, f"LPIPS {backbone} backbone", "pretrained_path")
        model = _lpips(net, random_backbone=True)
        _load_lpips_backbone(model, state, path, backbone, file_name)
    return model.to(device).eval().requires_grad_(False)


def _lpips(net: str, random_backbone: bool) -> lpips.LPIPS:
    """``lpips.LPIPS`` with its packaged calibration; the backbone downloaded or left to be loaded."""
    with warnings.catch_warnings():  # lpips still calls torchvision's deprecated ``pretrained=``
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models\._utils")
        return lpips.LPIPS(pretrained=True, net=net, pnet_rand=random_backbone, verbose=False)


def _load_lpips_backbone(model: lpips.LPIPS, state: dict[str, torch.Tensor], path: Path, backbone: str,
                         file_name: str) -> None:
    """Load a torchvision ``features.N.*`` state dict into lpips' ``sliceK.N.*`` modules, strictly."""
    slice_of = {}  # "features.N.weight" -> "sliceK.N.weight"
    for key in model.net.state_dict():
        _, rest = key.split(".", 1)
        slice_of[f"features.{rest}"] = key
    mapped, unknown = {}, []
    for key, value in state.items():
        if key in slice_of:
            mapped[slice_of[key]] = value
        elif not key.startswith("classifier."):
            unknown.append(key)
    hint = f"expected the torchvision ImageNet {backbone} state dict ({file_name})"
    if unknown:
        raise WeightsError(f"{path} (pretrained_path) has keys {unknown[:3]} that are not {backbone} "
                           f"features; {hint}")
    try:
        model.net.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} (pretrained_path) does not fit the LPIPS {backbone} backbone "
                           f"({brief(exc, 200)}); {hint}") from None


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def lpips_pairs(a: torch.Tensor, b: torch.Tensor, model: lpips.LPIPS, batch_size: int = 64) -> torch.Tensor:
    """LPIPS distance of each pair ``(a[i], b[i])``.

    Args:
        a, b: (N, 3, H, W) images in [-1, 1].
        model: from :func:`build_lpips`.
        batch_size: pairs per forward pass.

    Returns:
        (N,) float distances on the CPU (0 for identical images).
    """
    if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
        raise ConfigError(f"LPIPS pairs need two (N, 3, H, W) tensors of one shape; got {tuple(a.shape)} "
                          f"and {tuple(b.shape)}")
    device = _model_device(model)
    out = [model(x.to(device).float(), y.to(device).float()).flatten().cpu()
           for x, y in zip(a.split(batch_size), b.split(batch_size))]
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def lpips_diversity(rendered: torch.Tensor, model: lpips.LPIPS, batch_size: int = 64) -> float:
    """Mean pairwise LPIPS between renderings of the same source image in different contexts.

    Args:
        rendered: (S, T, 3, H, W) in [-1, 1]: ``rendered[i, j] = G(x_s[i], x_t[j])``, source image
            ``i`` rendered into target context ``j`` (the contexts may differ between sources).
        model: from :func:`build_lpips`.
        batch_size: pairs per forward pass.

    Returns:
        The mean over all ``S * T * (T - 1) / 2`` unordered pairs ``j < k`` (every source
        contributes equally): 0 when the T renderings of every source are identical, higher
        when they differ more.
    """
    if rendered.dim() != 5 or rendered.shape[2] != 3:
        raise ConfigError(f"renderings have shape {tuple(rendered.shape)}; expected (S, T, 3, H, W)")
    s, t = rendered.shape[:2]
    if s < 1 or t < 2:
        raise ConfigError(f"LPIPS diversity needs at least one source and two contexts; got S={s}, T={t}")
    j, k = torch.triu_indices(t, t, offset=1)
    num_pairs = len(j)
    total, device = torch.zeros((), dtype=torch.float64), _model_device(model)
    for flat in torch.arange(s * num_pairs).split(batch_size):  # gather one batch of pairs at a time
        src, pair = flat // num_pairs, flat % num_pairs
        a, b = rendered[src, j[pair]].to(device).float(), rendered[src, k[pair]].to(device).float()
        total += model(a, b).double().sum().cpu()
    return float(total / (s * num_pairs))


# ---------------------------------------------------------------------------------------- FID / KID


def build_inception(weights_path: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu") -> FeatureExtractorInceptionV3:
    """torch-fidelity's Inception-v3 feature extractor (``inception-v3-compat``, 2048-d features).

    With ``weights_path`` None torch-fidelity downloads its converted TensorFlow weights
    (``weights-inception-2015-12-05-6726825d.pth``) into the torch hub cache; offline,
    ``weights_path`` is a local copy of that file. The file is first read with
    ``weights_only=True`` (no code runs), then loaded strictly by torch-fidelity.

    Raises :class:`WeightsError` when the download fails or the file is missing, unreadable or
    not an Inception-v3 state dict of torch-fidelity's layout.
    """
    file_name = _weights_file(URL_INCEPTION_V3)
    path = None
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        _read_state_dict(path, "Inception-v3", "weights_path")
    try:
        extractor = create_feature_extractor(
            INCEPTION_NAME, [INCEPTION_FEATURE], cuda=False, verbose=False,
            feature_extractor_weights_path=None if path is None else str(path),
        )
    except Exception as exc:
        if path is None:
            raise WeightsError(
                f"cannot download torch-fidelity's Inception-v3 weights ({file_name}: {brief(exc)}); "
                f"offline, pass the local file as weights_path"
            ) from None
        raise WeightsError(f"{path} (weights_path) does not fit torch-fidelity's Inception-v3 "
                           f"({brief(exc, 200)}); expected {file_name}") from None
    return extractor.to(device)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float images in [-1, 1] -> uint8 in [0, 255] (uint8 input is returned as is)."""
    if images.dtype == torch.uint8:
        return images
    if images.numel() and (images.min() < -1.01 or images.max() > 1.01):
        raise ConfigError(f"images range over [{float(images.min()):.3g}, {float(images.max()):.3g}]; "
                          "expected float images in [-1, 1] (or uint8)")
    return uint8_range(images)


@torch.no_grad()
def inception_features(images: torch.Tensor, extractor: FeatureExtractorInceptionV3, batch_size: int = 32,
                       progress: bool = False) -> torch.Tensor:
    """2048-d Inception pool features of ``images``.

    Args:
        images: (N, 3, H, W), float in [-1, 1] or uint8; any size (the network resizes to 299).
        extractor: from :func:`build_inception`.
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        (N, 2048) float32 features on the CPU.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ConfigError(f"images have shape {tuple(images.shape)}; expected (N, 3, H, W)")
    device = _model_device(extractor)
    out = [extractor(to_uint8(chunk).to(device))[0].float().cpu()
           for chunk in tqdm(images.split(batch_size), disable=not progress, desc="Inception features",
                             leave=False)]
    return torch.cat(out) if out else torch.zeros(0, 2048)


def _covariance_factor(centred: torch.Tensor) -> torch.Tensor:
    """A matrix ``F`` with ``F.T @ F`` the sample covariance of the rows of ``centred`` (N, D)."""
    n, d = centred.shape
    if n <= d:
        return centred / (n - 1) ** 0.5  # (N, D)
    cov = centred.T @ centred / (n - 1)
    evals, evecs = torch.linalg.eigh(cov)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T  # symmetric square root (D, D)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` with the unbiased sample
    covariances, exactly as torch-fidelity's FID. The cross term is computed as the nuclear norm
    of ``F_a F_b^T`` for factors with ``F^T F = S`` (the centred features when N <= D): the
    same value as the eigenvalues of the D x D product that torch-fidelity takes, but symmetric
    and, for the usual N < 2048, an (N_a x N_b) problem instead of a 2048 x 2048 one.
    """
    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ConfigError(f"feature sets have shapes {tuple(features_a.shape)} and "
                          f"{tuple(features_b.shape)}; expected (N_a, D) and (N_b, D)")
    if len(features_a) < 2 or len(features_b) < 2:
        raise ConfigError(f"FID needs at least 2 images per set; got {len(features_a)} and {len(features_b)}")
    a, b = features_a.double(), features_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    f_a, f_b = _covariance_factor(a - mu_a), _covariance_factor(b - mu_b)
    cross = torch.linalg.svdvals(f_a @ f_b.T).sum()
    fid = (mu_a - mu_b).square().sum() + f_a.square().sum() + f_b.square().sum() - 2 * cross
    return float(fid)


def fid_kid_from_features(features_a: torch.Tensor, features_b: torch.Tensor, kid: bool = True,
                          kid_subsets: int = 100, seed: int = 2020) -> dict[str, float | int | str]:
    """FID and KID between two Inception feature sets (N_a, 2048) and (N_b, 2048).

    Returns ``{"fid", "num_a", "num_b"}`` plus, with ``kid``, either ``"kid_mean"``, ``"kid_std"``
    and ``"kid_subset_size"`` (torch-fidelity's polynomial-kernel KID over ``kid_subsets`` random
    subsets of ``min(1000, N_a, N_b)`` images each, drawn with ``seed``) or ``"kid_skipped"``, the
    reason when a set has fewer than :data:`MIN_KID_SAMPLES` images.
    """
    out: dict[str, float | int | str] = {
        "fid": frechet_distance(features_a, features_b), "num_a": len(features_a), "num_b": len(features_b),
    }
    if not kid:
        return out
    subset = min(MAX_KID_SUBSET, len(features_a), len(features_b))
    if subset < MIN_KID_SAMPLES:
        out["kid_skipped"] = (f"KID needs at least {MIN_KID_SAMPLES} images per set; got {len(features_a)} "
                              f"and {len(features_b)}")
        return out
    kid_out = kid_features_to_metric(
        features_a.float().cpu(), features_b.float().cpu(),
        kid_subsets=kid_subsets, kid_subset_size=subset, rng_seed=seed, verbose=False,
    )
    out.update(kid_mean=kid_out[KEY_METRIC_KID_MEAN], kid_std=kid_out[KEY_METRIC_KID_STD],
               kid_subset_size=subset)
    return out


def fid_kid(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    weights_path: str | os.PathLike | None = None,
    kid: bool = True,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    extractor: FeatureExtractorInceptionV3 | None = None,
    progress: bool = False,
) -> dict[str, float | int | str]:
    """FID (and KID) between two image sets.

    Args:
        images_a, images_b: (N_a, 3, H, W) and (N_b, 3, H, W), float in [-1, 1] or uint8; sizes
            may differ (every image is resized to 299 x 299 inside the Inception network).
        weights_path: local Inception weights (see :func:`build_inception`); None downloads them.
        kid: also compute KID (skipped, with the reason, when a set has fewer than 10 images).
        batch_size: images per Inception forward pass.
        device: where the Inception network runs.
        extractor: an already built :func:`build_inception` network (``weights_path`` and
            ``device`` are then ignored), to reuse it across calls.
        progress: show progress bars.

    Returns:
        See :func:`fid_kid_from_features`: ``"fid"``, ``"num_a"``, ``"num_b"`` and the KID keys.
    """
    if extractor is None:
        extractor = build_inception(weights_path, device)
    feats_a = inception_features(images_a, extractor, batch_size, progress)
    feats_b = inception_features(images_b, extractor, batch_size, progress)
    return fid_kid_from_features(feats_a, feats_b, kid=kid)


def feature_diversity(features: torch.Tensor) -> float:
    """The diversity of renderings in a re-id network's feature space (the offline stand-in of
    LPIPS diversity): ``features`` (S, T, D) of S source images each rendered into T contexts;
    the mean over sources of the mean pairwise Euclidean distance between the L2-normalised
    features of one source's T renderings, in [0, 2] (0: every context gives the same feature)."""
    if features.dim() != 3 or features.shape[1] < 2:
        raise ConfigError(f"features have shape {tuple(features.shape)}; expected (S, T >= 2, D)")
    unit = torch.nn.functional.normalize(features.double(), dim=2)
    t = unit.shape[1]
    j, k = torch.triu_indices(t, t, offset=1)
    return float((unit[:, j] - unit[:, k]).norm(dim=2).mean())
