"""Self-supervised objectives. Adding one: a new file with an ``Objective`` subclass and one line below."""
from warmstart.objectives.autoencoder import Autoencoder
from warmstart.objectives.base import Objective
from warmstart.objectives.clm import CausalLM
from warmstart.objectives.denoising import DenoisingAutoencoder
from warmstart.objectives.mlm import MaskedLM
from warmstart.objectives.simcse import SimCSE
from warmstart.registry import Registry

OBJECTIVES: Registry[type[Objective]] = Registry("objective")

OBJECTIVES.register("autoencoder")(Autoencoder)
OBJECTIVES.register("denoising")(DenoisingAutoencoder)
OBJECTIVES.register("mlm")(MaskedLM)
OBJECTIVES.register("clm")(CausalLM)
OBJECTIVES.register("simcse")(SimCSE)

__all__ = ["OBJECTIVES", "Objective"]
