"""Plain `nn.Module`s: the paper's CNN and other target architectures, the frozen target, the detector."""

from mint.models.build import build_classifier, readable_layers
from mint.models.detector import CNNPath, Detector, MLPPath
from mint.models.exported import ExportedNetwork, ExportedTarget
from mint.models.external import ExternalTarget, WeightsTarget
from mint.models.factory import FactoryTarget
from mint.models.hf_target import HuggingFaceNetwork, HuggingFaceTarget
from mint.models.module_target import ModuleTarget
from mint.models.paper_cnn import PAPER_LAYERS, PaperCNN
from mint.models.scripted import ScriptedNetwork, ScriptTarget
from mint.models.target import LOGITS, Target
from mint.models.timm_target import TimmTarget
from mint.models.torchvision_target import TorchvisionTarget

__all__ = [
    "LOGITS",
    "PAPER_LAYERS",
    "CNNPath",
    "Detector",
    "ExportedNetwork",
    "ExportedTarget",
    "ExternalTarget",
    "FactoryTarget",
    "HuggingFaceNetwork",
    "HuggingFaceTarget",
    "MLPPath",
    "ModuleTarget",
    "PaperCNN",
    "ScriptTarget",
    "ScriptedNetwork",
    "Target",
    "TimmTarget",
    "TorchvisionTarget",
    "WeightsTarget",
    "build_classifier",
    "readable_layers",
]
