"""Plain `nn.Module` networks: the audited classifier and the MINT detectors."""

from mint.models.build import build_classifier, readable_layers
from mint.models.paper_cnn import PAPER_LAYERS, PaperCNN

__all__ = ["PAPER_LAYERS", "PaperCNN", "build_classifier", "readable_layers"]
