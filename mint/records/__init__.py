"""Every record mint writes to disk, read and written in one place: checkpoints, test reports, trust."""

from mint.records.checkpoint import DetectorRecord, TargetRecord, load_target_checkpoint

__all__ = ["DetectorRecord", "TargetRecord", "load_target_checkpoint"]
