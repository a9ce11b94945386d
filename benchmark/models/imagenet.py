"""Pre-trained weights for ``init: imagenet``, copied into a freshly built backbone; its ``head`` stays random.

Lookup order for backbone ``B``: a local copy in ``weights_dir`` (the runner passes ``<data_dir>/weights``),
then the library's own download (cached by that library), else :class:`WeightsUnavailableError` saying what
to fetch and where to put it.

* ``resnet18_cifar`` / ``resnet34_cifar``: torchvision's ``IMAGENET1K_V1`` ResNet-18/34 (local:
  ``B-imagenet.pth`` or ``.safetensors``, a torchvision state dict). Every block, shortcut and batch norm maps
  one to one onto our stages. Our stem is a 3x3 stride-1 conv where torchvision's is 7x7 stride 2: the stem
  gets the centre 3x3 of each 7x7 kernel (summed over RGB for 1-channel inputs), the stem batch norm its
  affine weights but fresh running statistics (ImageNet's describe the 7x7 conv's outputs, not the crop's).
  The max-pool and the classifier ``fc`` are not used.
* ``vit_small`` / ``swin``: timm's default ImageNet weights of ``vit_small_patch16_224`` (augreg, in21k
  fine-tuned on in1k) and ``swin_tiny_patch4_window7_224`` (in1k) (local: ``B-imagenet.pth`` or
  ``.safetensors``, a state dict of that timm model). timm's checkpoint filter resamples them to our 32x32
  configuration: the patch-embedding kernels 16x16 -> 4x4 (ViT) and 4x4 -> 2x2 (Swin) by FlexiViT's
  pseudo-inverse resize, the ViT position embeddings 14x14 -> 8x8 (bicubic) and Swin's relative position
  bias tables 13x13 -> 7x7 / 3x3 for windows 7 -> 4 / 2. Every other tensor is copied as is.
* ``dinov2_small``: ``facebook/dinov2-small`` (DINOv2, self-supervised on LVD-142M, not ImageNet labels;
  local: the directory ``dinov2_small-imagenet`` holding its ``config.json`` and ``model.safetensors``).
  Its 14x14 patches are kept (the backbone upsamples inputs to 112x112, see ``transformer_nets``), its
  position embeddings interpolated from 37x37 to 8x8 as transformers does for a 112 px input.

The weights expect their own input normalisation (ImageNet mean/std, 0.5/0.5 for the ViT); alb normalises
with the dataset's statistics, which fine-tuning absorbs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import timm
import torch
from transformers import Dinov2Model

from benchmark.errors import AlbError, ConfigError
from benchmark.models.base import Backbone
from benchmark.models.resnet_cifar import ResNetCifar
from benchmark.models.transformer_nets import DINOV2_INPUT, DINOV2_PATCH, TIMM_MODELS, Dinov2Backbone, TimmBackbone

DINOV2_HUB = "facebook/dinov2-small"
TORCHVISION_WEIGHTS = {"resnet18_cifar": "ResNet18_Weights.IMAGENET1K_V1",
                       "resnet34_cifar": "ResNet34_Weights.IMAGENET1K_V1"}
_FILE_SUFFIXES = (".pth", ".safetensors")
T = TypeVar("T")


class WeightsUnavailableError(AlbError):
    """Pre-trained weights are neither in the weights folder nor downloadable."""


class WeightsMismatchError(AlbError):
    """A pre-trained weights file does not fit the backbone it is meant for."""


def supported_backbones() -> list[str]:
    return sorted(_LOADERS)


def local_weights(weights_dir: Path, backbone: str) -> Path | None:
    """The local copy of ``backbone``'s weights in ``weights_dir``, if there is one."""
    if backbone == "dinov2_small":
        folder = weights_dir / f"{backbone}-imagenet"
        return folder if folder.is_dir() else None
    for suffix in _FILE_SUFFIXES:
        path = weights_dir / f"{backbone}-imagenet{suffix}"
        if path.is_file():
            return path
    return None


def load_imagenet_weights(model: Backbone, backbone: str, weights_dir: Path) -> None:
    """Copy ``backbone``'s pre-trained weights into ``model`` (built by its factory) in place, all but ``head``."""
    loader = _LOADERS.get(backbone)
    if loader is None:
        raise ConfigError(f"alb has no ImageNet weights for backbone '{backbone}'; "
                          f"backbones with them: {', '.join(supported_backbones())}")
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    loader(model, backbone, Path(weights_dir))
    model.head.load_state_dict(head)  # the classifier always starts fresh, whatever a loader touched


def _unavailable(backbone: str, origin: str, local: Path, error: Exception) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"init 'imagenet': no pre-trained weights for backbone '{backbone}' on disk and the download failed "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Without internet, "
        f"download {origin} on another machine and copy to {local}")


def _download(backbone: str, origin: str, local: Path, fetch: Callable[[], T]) -> T:
    try:
        return fetch()
    except Exception as error:  # the libraries raise many kinds (OSError, HTTP, hub errors) when offline
        raise _unavailable(backbone, origin, local, error) from error


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsMismatchError(f"{path} does not hold a state dict (a dict of tensors); save one with "
                                   "torch.save(model.state_dict(), path)")
    return state


# --------------------------------------------------------------------------- torchvision ResNets

def _download_torchvision(weights_name: str) -> dict[str, torch.Tensor]:
    from torchvision.models import get_weight

    return get_weight(weights_name).get_state_dict(progress=False)


def _torchvision_url(weights_name: str) -> str:
    from torchvision.models import get_weight

    return str(get_weight(weights_name).url)


def _stem_kernel(kernel: torch.Tensor, in_channels: int) -> torch.Tensor:
    """The centre 3x3 of torchvision's 7x7 stem kernels, summed over RGB for 1-channel inputs."""
    centre = kernel[:, :, 2:5, 2:5]
    if in_channels == 1:
        return centre.sum(dim=1, keepdim=True)
    if in_channels != 3:
        raise ConfigError(f"ImageNet ResNet weights need 1- or 3-channel images, the dataset has {in_channels}; "
                          "use init: scratch")
    return centre


def map_torchvision_resnet(source: dict[str, torch.Tensor], model: ResNetCifar) -> dict[str, torch.Tensor]:
    """``model``'s state dict with every tensor but the head's taken from torchvision ResNet weights."""
    target = model.state_dict()
    blocks = sorted({_block_of(k) for k in source if k.startswith("layer")})
    if len(blocks) != len(model.stages):
        raise WeightsMismatchError(f"the weights have {len(blocks)} residual blocks, the backbone {len(model.stages)}: "
                                   "they belong to another ResNet depth")
    flat = {block: i for i, block in enumerate(blocks)}  # torchvision layerI.J -> our flat stage index
    mapped: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key.startswith("layer"):
            stage, block, rest = key.split(".", 2)
            ours = f"stages.{flat[(int(stage[5:]), int(block))]}.{rest.replace('downsample.', 'shortcut.')}"
            mapped[ours] = value
        elif key == "conv1.weight":
            mapped["stem.0.weight"] = _stem_kernel(value, target["stem.0.weight"].shape[1])
        elif key in ("bn1.weight", "bn1.bias"):
            mapped[f"stem.1.{key[4:]}"] = value
    expected = {k for k in target if not k.startswith("head.")}
    missing = expected - mapped.keys() - {"stem.1.running_mean", "stem.1.running_var", "stem.1.num_batches_tracked"}
    unknown = mapped.keys() - target.keys()
    if missing or unknown:
        raise WeightsMismatchError(f"the weights are not a torchvision ResNet of this depth: missing "
                                   f"{sorted(missing)[:5]}, unexpected {sorted(unknown)[:5]}")
    for key, value in mapped.items():
        if value.shape != target[key].shape:
            raise WeightsMismatchError(f"weight {key}: shape {tuple(value.shape)} in the weights, "
                                       f"{tuple(target[key].shape)} in the backbone")
        target[key] = value.to(target[key].dtype)
    return target


def _block_of(key: str) -> tuple[int, int]:
    stage, block, _ = key.split(".", 2)
    return int(stage[5:]), int(block)


def _load_resnet(model: Backbone, backbone: str, weights_dir: Path) -> None:
    if not isinstance(model, ResNetCifar):
        raise TypeError(f"backbone '{backbone}' should be a ResNetCifar, got {type(model).__name__}")
    weights_name = TORCHVISION_WEIGHTS[backbone]
    path = local_weights(weights_dir, backbone)
    if path is not None:
        source = _read_state_dict(path)
    else:
        local = weights_dir / f"{backbone}-imagenet.pth"
        source = _download(backbone, _torchvision_url(weights_name), local,
                           lambda: _download_torchvision(weights_name))
    try:
        model.load_state_dict(map_torchvision_resnet(source, model))
    except WeightsMismatchError as error:
        raise WeightsMismatchError(f"{path or weights_name} for backbone '{backbone}': {error}") from None


# --------------------------------------------------------------------------- timm ViT / Swin

def _timm_hub_id(backbone: str) -> str:
    return str(timm.models.get_pretrained_cfg(TIMM_MODELS[backbone][0]).hf_hub_id)


def _download_timm(backbone: str) -> Path:
    """timm's weights file from the HuggingFace hub (cached there), the same file timm itself would use."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(_timm_hub_id(backbone), "model.safetensors"))
    except LocalEntryNotFoundError:  # offline: trying another file would only repeat the network timeouts
        raise
    except EntryNotFoundError:  # older timm repositories hold only the pickled state dict
        return Path(hf_hub_download(_timm_hub_id(backbone), "pytorch_model.bin"))


def resample_timm_weights(source: dict[str, torch.Tensor], model: TimmBackbone,
                          backbone: str) -> dict[str, torch.Tensor]:
    """timm's state dict of the 224px model -> ``model.net``'s: patch and position embeddings and relative
    position tables resampled by timm's checkpoint filter, the input conv adapted to the channel count and
    the ImageNet classifier dropped."""
    from timm.models import swin_transformer, vision_transformer

    filters = {"vit_small": vision_transformer.checkpoint_filter_fn, "swin": swin_transformer.checkpoint_filter_fn}
    state = filters[backbone](source, model.net)
    if model.in_channels != 3:  # timm's rule for grey/multi-band inputs: sum RGB and rescale
        key = "patch_embed.proj.weight"
        state[key] = timm.models.adapt_input_conv(model.in_channels, state[key])
    classifier = timm.models.get_pretrained_cfg(TIMM_MODELS[backbone][0]).classifier
    return {k: v for k, v in state.items() if not k.startswith(f"{classifier}.")}


def _load_timm(model: Backbone, backbone: str, weights_dir: Path) -> None:
    if not isinstance(model, TimmBackbone):
        raise TypeError(f"backbone '{backbone}' should be a TimmBackbone, got {type(model).__name__}")
    path = local_weights(weights_dir, backbone)
    if path is None:
        origin = f"model.safetensors of https://huggingface.co/{_timm_hub_id(backbone)}"
        local = weights_dir / f"{backbone}-imagenet.safetensors"
        source = _read_state_dict(_download(backbone, origin, local, lambda: _download_timm(backbone)))
    else:
        source = _read_state_dict(path)
    try:
        # strict: timm's own loader tolerates missing keys, which would leave a wrong file's model random
        model.net.load_state_dict(resample_timm_weights(source, model, backbone))
    except (RuntimeError, KeyError) as error:
        raise WeightsMismatchError(
            f"{path or _timm_hub_id(backbone)} does not hold weights of timm's {TIMM_MODELS[backbone][0]} for "
            f"backbone '{backbone}': {' '.join(str(error).split())[:300]}") from error


# --------------------------------------------------------------------------- DINOv2 (transformers)

def _dinov2_from(name_or_path: str) -> Dinov2Model:
    net, info = Dinov2Model.from_pretrained(name_or_path, dtype=torch.float32, output_loading_info=True)
    if info["missing_keys"] or info["mismatched_keys"]:  # transformers would leave them random
        raise WeightsMismatchError(f"missing {sorted(info['missing_keys'])[:5]}, "
                                   f"wrong shape {sorted(info['mismatched_keys'])[:5]}")
    return net


def _download_dinov2() -> Dinov2Model:
    return _dinov2_from(DINOV2_HUB)


def dinov2_weights(pretrained: Dinov2Model, model: Dinov2Backbone) -> dict[str, torch.Tensor]:
    """The pre-trained state dict for ``model.net``: position embeddings interpolated to the 8x8 grid of
    112 px inputs (by transformers' own run-time interpolation, so the result equals the original model
    run at 112 px), the patch-embedding conv adapted to the channel count, the mask token dropped."""
    config = pretrained.config
    if config.hidden_size != model.embedding_dim or config.patch_size != DINOV2_PATCH:
        raise WeightsMismatchError(f"hidden size {config.hidden_size} and patch size {config.patch_size}, "
                                   f"the backbone has {model.embedding_dim} and {DINOV2_PATCH}")
    # the mask token serves masked pre-training only: alb's backbone has none (it would get no gradient)
    state = {k: v for k, v in pretrained.state_dict().items() if k != "embeddings.mask_token"}
    grid = DINOV2_INPUT // DINOV2_PATCH
    with torch.no_grad():
        tokens = torch.zeros(1, 1 + grid * grid, config.hidden_size)  # only its shape is read
        positions = pretrained.embeddings.interpolate_pos_encoding(tokens, DINOV2_INPUT, DINOV2_INPUT)
    state["embeddings.position_embeddings"] = positions.clone()
    if model.in_channels != 3:
        key = "embeddings.patch_embeddings.projection.weight"
        state[key] = timm.models.adapt_input_conv(model.in_channels, state[key])
    return state


def _load_dinov2(model: Backbone, backbone: str, weights_dir: Path) -> None:
    if not isinstance(model, Dinov2Backbone):
        raise TypeError(f"backbone '{backbone}' should be a Dinov2Backbone, got {type(model).__name__}")
    path = local_weights(weights_dir, backbone)
    origin = f"the files config.json and model.safetensors of https://huggingface.co/{DINOV2_HUB}"
    try:
        if path is None:
            pretrained = _download(backbone, origin, weights_dir / f"{backbone}-imagenet", _download_dinov2)
        else:
            pretrained = _dinov2_from(str(path))
        model.net.load_state_dict(dinov2_weights(pretrained, model))
    except (OSError, ValueError, RuntimeError, WeightsMismatchError) as error:
        raise WeightsMismatchError(f"{path or DINOV2_HUB} does not hold {origin} for backbone '{backbone}': "
                                   f"{' '.join(str(error).split())[:300]}") from error


_LOADERS: dict[str, Callable[[Backbone, str, Path], None]] = {
    "resnet18_cifar": _load_resnet, "resnet34_cifar": _load_resnet,
    "vit_small": _load_timm, "swin": _load_timm, "dinov2_small": _load_dinov2,
}
