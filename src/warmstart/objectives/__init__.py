"""Self-supervised objectives. Adding one: a new file with an ``Objective`` subclass and one line below."""
from warmstart.objectives.autoencoder import Autoencoder
from warmstart.objectives.base import Objective
from warmstart.objectives.bpr import BPR
from warmstart.objectives.clm import CausalLM
from warmstart.objectives.denoising import DenoisingAutoencoder
from warmstart.objectives.dense_contrast import DenseContrast
from warmstart.objectives.dense_masked import DenseMaskedAutoencoder
from warmstart.objectives.gan import GAN
from warmstart.objectives.lightgcn import LightGCN
from warmstart.objectives.masked import MaskedAutoencoder
from warmstart.objectives.mlm import MaskedLM
from warmstart.objectives.scarf import SCARF
from warmstart.objectives.simclr import SimCLR
from warmstart.objectives.simcse import SimCSE
from warmstart.objectives.simgcl import SimGCL
from warmstart.objectives.vae import VAE
from warmstart.objectives.vime import VIME
from warmstart.registry import Registry

OBJECTIVES: Registry[type[Objective]] = Registry("objective")

OBJECTIVES.register("autoencoder")(Autoencoder)
OBJECTIVES.register("denoising")(DenoisingAutoencoder)
OBJECTIVES.register("gan")(GAN)
OBJECTIVES.register("masked")(MaskedAutoencoder)
OBJECTIVES.register("simclr")(SimCLR)
OBJECTIVES.register("vae")(VAE)
OBJECTIVES.register("mlm")(MaskedLM)
OBJECTIVES.register("clm")(CausalLM)
OBJECTIVES.register("simcse")(SimCSE)
OBJECTIVES.register("bpr")(BPR)
OBJECTIVES.register("lightgcn")(LightGCN)
OBJECTIVES.register("simgcl")(SimGCL)
OBJECTIVES.register("scarf")(SCARF)
OBJECTIVES.register("vime")(VIME)
OBJECTIVES.register("masked-dense")(DenseMaskedAutoencoder)
OBJECTIVES.register("dense-contrast")(DenseContrast)

__all__ = ["OBJECTIVES", "Objective"]
