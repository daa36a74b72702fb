"""A history of generated images for the discriminator (Shrivastava et al., 2017; CycleGAN)."""

from __future__ import annotations

import torch

from ..errors import ConfigError


class ImagePool:
    """Keeps up to ``size`` past generated images; :meth:`query` returns a batch in which each
    image is, with probability 1/2, swapped for a stored older one (the new one is stored in its
    place). The discriminator then also sees older generator outputs, which damps oscillation.
    ``size=0`` returns the batch unchanged. Images are stored detached.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ConfigError(f"image pool size={size} must be >= 0")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        """The stored images (on the CPU) and the random state, for checkpoints."""
        return {"images": [im.cpu() for im in self.images], "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state["images"])
        self.generator.set_state(state["rng"])

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W) -> (B, C, H, W) mix of new and pooled images (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                j = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[j].to(image.device))
                self.images[j] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)
